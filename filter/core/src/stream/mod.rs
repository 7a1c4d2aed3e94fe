//! One HTTP stream as the core sees it: what to read from the host and
//! when, and what to write back. [`Exchange`] holds what the stream knows
//! and answers each of Envoy's callbacks with a plan: [`route`] decides for
//! the request, [`respond`] judges the response, [`conclude`] counts a gRPC
//! call whose status comes later. The glue answers the reads and applies
//! the plans verbatim.
//!
//! Envoy's single-value getter returns the first header of a name; reading
//! the whole map costs more. A request rarely repeats Cookie (Envoy joins
//! HTTP/2 and HTTP/3 cookie crumbs; HTTP/1.1 clients must send one header,
//! and Envoy does not join theirs), so the policy is:
//! - the whole map when rules or `hashOn` read other headers, or a session
//!   header is configured;
//! - otherwise the first Cookie header (and `:path` for path rules), and the
//!   whole map only when that first header cannot settle the decision;
//! - `:scheme` only when a cookie is issued and `Secure` follows the request;
//! - the clock only when a server-side timeout is configured or a pool is
//!   out of service;
//! - on the response, `:status` when counters or failover need it; a gRPC
//!   call's `grpc-status` (headers, then trailers); Envoy's response flags
//!   only for a 5xx, a gRPC error status or a call that ends with none;
//!   whether a pool answered at all only when the request (re)assigned its
//!   user and the response is an error or a redirect (a reply Envoy made
//!   alone gets no value and counts nothing).
//!
//! Either way there is one decision and at most one random draw per request
//! (a response that fails over takes one more).

mod exchange;
mod respond;
mod route;

use crate::request::Headers;
pub use exchange::{Ended, Exchange, RequestPlan};
pub use respond::{conclude, respond, Concluded, Counts, ResponsePlan};
pub use route::{route, Routed, EXPORTED_POOL, EXPORTED_REASON};

/// What the filter reads from Envoy about one stream, on demand: request and
/// response headers, the response trailers, Envoy's response flags and the
/// clock. The glue answers from the host; `testing::FakeStream` from lists.
pub trait StreamHost {
    /// The first value of request header `name` (lowercase), as bytes.
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Every request header, in order.
    fn request_headers(&mut self) -> Headers;
    /// Seconds since the Unix epoch.
    fn now(&mut self) -> u64;
    /// The first value of response header `name` (`:status`, `grpc-status`).
    fn response_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// The first value of response trailer `name` (`grpc-status`).
    fn response_trailer(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Envoy's response flags (the `response.flags` attribute); 0 when the
    /// host has none.
    fn response_flags(&mut self) -> u64;
    /// Whether Envoy sent the request to a host of a pool (the
    /// `upstream.address` attribute is set): `false` for a reply Envoy made
    /// without asking any pool (no route, `direct_response`, a rejected
    /// CONNECT, another filter's local reply).
    fn sent_upstream(&mut self) -> bool;
}
