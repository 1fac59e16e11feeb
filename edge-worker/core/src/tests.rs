//! Flow tests through Edge::handle.
