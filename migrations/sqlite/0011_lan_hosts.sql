-- LAN hosts: a network request is for a public host (the default, as before) or for a LAN
-- host. A LAN request always names a port, and approved it lets the server's tools reach
-- exactly that host and port even at a private address (access::allowed_hosts writes it as a
-- `lan:host:port` entry; contract::network has the address rules). Public requests stay
-- public-only: a public name that resolves to a private address is still refused.

ALTER TABLE access_requests ADD COLUMN scope TEXT NOT NULL DEFAULT 'public'
    CHECK (scope IN ('public', 'lan'));
