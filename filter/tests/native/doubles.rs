//! The host as the core sees it, for tests: a request's headers and a
//! response's headers and flags, with a settable clock, counting every read.

use sticky_split::request::Headers;
use sticky_split::stream::HeaderSource;

#[derive(Debug, Clone, Default)]
pub struct ListedHeaders {
    pub headers: Headers,
    pub now: u64,
    /// Whether the request has a body.
    pub has_body: bool,
    /// The response's `:status` value; `None` when the host has none.
    pub status: Option<Vec<u8>>,
    /// The response's other headers (`grpc-status`).
    pub response: Headers,
    pub flags: u64,
    pub full_reads: usize,
    pub single_reads: usize,
    pub clock_reads: usize,
    pub status_reads: usize,
    /// Reads of response headers other than `:status`.
    pub response_reads: usize,
    pub body_checks: usize,
    pub flag_reads: usize,
}

impl ListedHeaders {
    pub fn new(headers: Headers) -> Self {
        ListedHeaders {
            headers,
            ..ListedHeaders::default()
        }
    }

    /// Sets the response: a status code and Envoy's response flags.
    pub fn answer(&mut self, status: u16, flags: u64) -> &mut Self {
        self.status = Some(status.to_string().into_bytes());
        self.flags = flags;
        self
    }
}

impl HeaderSource for ListedHeaders {
    fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        self.single_reads += 1;
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&mut self) -> Headers {
        self.full_reads += 1;
        self.headers.clone()
    }

    fn now(&mut self) -> u64 {
        self.clock_reads += 1;
        self.now
    }

    fn has_body(&mut self) -> bool {
        self.body_checks += 1;
        self.has_body
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        if name == ":status" {
            self.status_reads += 1;
            return self.status.clone();
        }
        self.response_reads += 1;
        self.response
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn response_flags(&mut self) -> u64 {
        self.flag_reads += 1;
        self.flags
    }
}
