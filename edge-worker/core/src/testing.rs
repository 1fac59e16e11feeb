//! In-memory fakes of the ports, for tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::Error;
use crate::http::Headers;
use crate::ports::{Clock, HttpClient, HttpRequest, HttpResponse, Kv, Random};

/// KV in a map, honouring TTLs against a shared clock.
#[derive(Default)]
pub struct MemKv {
    pub map: RefCell<BTreeMap<String, (String, Option<u64>)>>,
    pub now: std::rc::Rc<Cell<u64>>,
    /// When set, every operation fails.
    pub broken: Cell<bool>,
    /// Writes to keys with these prefixes fail, as KV does for a second write to one key
    /// within a second.
    pub refuse_writes: RefCell<Vec<String>>,
}

impl Kv for MemKv {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        if self.broken.get() {
            return Err(Error::Kv("broken".into()));
        }
        let now = self.now.get();
        Ok(self
            .map
            .borrow()
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|at| at > now))
            .map(|(v, _)| v.clone()))
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), Error> {
        if self.broken.get() {
            return Err(Error::Kv("broken".into()));
        }
        assert!(ttl.is_none_or(|t| t >= 60), "KV TTLs must be at least 60 s");
        if self
            .refuse_writes
            .borrow()
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            return Err(Error::Kv("429 too many writes to one key".into()));
        }
        let expires = ttl.map(|t| self.now.get() + t);
        self.map
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), expires));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        if self.broken.get() {
            return Err(Error::Kv("broken".into()));
        }
        self.map.borrow_mut().remove(key);
        Ok(())
    }
}

/// A clock the test moves by hand.
#[derive(Default, Clone)]
pub struct FakeClock(pub std::rc::Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

/// Deterministic, never-repeating "randomness".
#[derive(Default)]
pub struct SeqRandom(Cell<u64>);

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), Error> {
        for chunk in buf.chunks_mut(8) {
            let n = self.0.get().wrapping_add(1);
            self.0.set(n);
            // A cheap mix so consecutive values don't share prefixes.
            let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ n;
            let bytes = mixed.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Outbound HTTP answered from a table of URL → response; records every request.
#[derive(Default)]
pub struct FakeHttp {
    pub routes: RefCell<BTreeMap<String, HttpResponse>>,
    pub requests: RefCell<Vec<HttpRequest>>,
}

impl FakeHttp {
    pub fn route(&self, url: &str, status: u16, body: &str) {
        self.routes.borrow_mut().insert(
            url.to_owned(),
            HttpResponse {
                status,
                headers: [("content-type", "application/json")]
                    .into_iter()
                    .collect::<Headers>(),
                body: body.as_bytes().to_vec(),
            },
        );
    }

    pub fn count(&self, url: &str) -> usize {
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.url == url)
            .count()
    }
}

impl HttpClient for FakeHttp {
    async fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, Error> {
        let url = request.url.clone();
        self.requests.borrow_mut().push(request);
        self.routes
            .borrow()
            .get(&url)
            .cloned()
            .ok_or_else(|| Error::Http(format!("no route for {url}")))
    }
}
