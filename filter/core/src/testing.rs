//! The one test double of the host, for the native tests, the fuzz
//! harness and the native cost example (feature `testing`; never in the
//! module): a stream's request and response as lists, a settable clock, and
//! a count of every read, so tests can hold the filter to what it fetches.
//!
//! ```
//! use sticky_split_core::testing::FakeStream;
//! let stream = FakeStream::request(&[("cookie", "s=p1")]).at(1_800_000_000).answer(503, 0x20);
//! assert_eq!(stream.full_reads, 0);
//! ```

use crate::request::Headers;
use crate::stream::StreamHost;

#[derive(Debug, Clone, Default)]
pub struct FakeStream {
    /// The request headers, in order.
    pub headers: Headers,
    /// Whether the request has a body (a fact of the request headers'
    /// callback, not a read: pass it to `route` or `Exchange::on_request`).
    pub has_body: bool,
    pub now: u64,
    /// The response's `:status` value; `None` when the host has none.
    pub status: Option<Vec<u8>>,
    /// The response's other headers (`grpc-status`).
    pub response: Headers,
    /// The response trailers.
    pub trailers: Headers,
    /// Envoy's response flags.
    pub flags: u64,
    /// Envoy answered without sending the request to any pool.
    pub local_reply: bool,
    /// Reads of the whole request header map.
    pub full_reads: usize,
    /// Reads of one request header.
    pub single_reads: usize,
    pub clock_reads: usize,
    pub status_reads: usize,
    /// Reads of response headers other than `:status`.
    pub response_reads: usize,
    pub trailer_reads: usize,
    pub flag_reads: usize,
    pub upstream_reads: usize,
}

fn find(list: &Headers, name: &str) -> Option<Vec<u8>> {
    list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn listed(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

impl FakeStream {
    /// A stream whose request has these headers.
    pub fn new(headers: Headers) -> Self {
        FakeStream {
            headers,
            ..FakeStream::default()
        }
    }

    /// A stream whose request has these (name, text value) headers.
    pub fn request(pairs: &[(&str, &str)]) -> Self {
        FakeStream::new(listed(pairs))
    }

    /// The request has a body.
    pub fn body(mut self) -> Self {
        self.has_body = true;
        self
    }

    /// The clock reads `now` (seconds since the Unix epoch).
    pub fn at(mut self, now: u64) -> Self {
        self.now = now;
        self
    }

    /// The response: a status code and Envoy's response flags.
    pub fn answer(mut self, status: u16, flags: u64) -> Self {
        self.set_answer(status, flags);
        self
    }

    /// Sets the response of a stream already in use.
    pub fn set_answer(&mut self, status: u16, flags: u64) -> &mut Self {
        self.status = Some(status.to_string().into_bytes());
        self.flags = flags;
        self
    }

    /// Envoy answers itself, asking no pool (no route, `direct_response`).
    pub fn local_reply(mut self) -> Self {
        self.local_reply = true;
        self
    }

    /// A response header besides `:status`.
    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// A response trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Every read so far, of any kind.
    pub fn reads(&self) -> usize {
        self.full_reads
            + self.single_reads
            + self.clock_reads
            + self.status_reads
            + self.response_reads
            + self.trailer_reads
            + self.flag_reads
            + self.upstream_reads
    }
}

impl StreamHost for FakeStream {
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.single_reads += 1;
        find(&self.headers, name)
    }

    fn request_headers(&mut self) -> Headers {
        self.full_reads += 1;
        self.headers.clone()
    }

    fn now(&mut self) -> u64 {
        self.clock_reads += 1;
        self.now
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        if name == ":status" {
            self.status_reads += 1;
            return self.status.clone();
        }
        self.response_reads += 1;
        find(&self.response, name)
    }

    fn response_trailer(&mut self, name: &str) -> Option<Vec<u8>> {
        self.trailer_reads += 1;
        find(&self.trailers, name)
    }

    fn response_flags(&mut self) -> u64 {
        self.flag_reads += 1;
        self.flags
    }

    fn sent_upstream(&mut self) -> bool {
        self.upstream_reads += 1;
        !self.local_reply
    }
}
