//! The header names the filter writes or reads (`routeHeader`,
//! `clusterHeader`, `debugHeader`, `sessionHeader`), validated.

use super::check::check_token;
use super::{ConfigError, DEFAULT_ROUTE_HEADER};

/// The headers the filter writes or reads by name, validated.
pub(super) struct HeaderNames {
    pub(super) route: String,
    pub(super) cluster: Option<String>,
    pub(super) debug: Option<String>,
    pub(super) session: Option<String>,
}

/// routeHeader, clusterHeader, debugHeader and sessionHeader: lowercase,
/// not reserved, and all different.
pub(super) fn headers(
    route: Option<String>,
    cluster: Option<String>,
    debug: Option<String>,
    session: Option<String>,
) -> Result<HeaderNames, ConfigError> {
    let route = check_header_name(
        "routeHeader",
        Side::Request,
        route.as_deref().unwrap_or(DEFAULT_ROUTE_HEADER),
    )?;
    let cluster = cluster
        .map(|h| check_header_name("clusterHeader", Side::Request, &h))
        .transpose()?;
    if cluster.as_deref() == Some(route.as_str()) {
        return Err(ConfigError::new(
            "clusterHeader",
            format!("must differ from routeHeader ({route:?})"),
        ));
    }
    let debug = debug
        .map(|h| check_header_name("debugHeader", Side::Response, &h))
        .transpose()?;
    if let Some(d) = &debug {
        if *d == route || cluster.as_ref() == Some(d) {
            return Err(ConfigError::new(
                "debugHeader",
                "must differ from routeHeader and clusterHeader",
            ));
        }
    }
    let session = session
        .map(|h| check_header_name("sessionHeader", Side::Both, &h))
        .transpose()?;
    if let Some(s) = &session {
        if *s == route || cluster.as_ref() == Some(s) || debug.as_ref() == Some(s) {
            return Err(ConfigError::new(
                "sessionHeader",
                "must differ from routeHeader, clusterHeader and debugHeader",
            ));
        }
    }
    Ok(HeaderNames {
        route,
        cluster,
        debug,
        session,
    })
}

/// Which messages a configured header name appears in: the routing and
/// cluster headers are request headers, the debug header a response header,
/// the session header both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
    Both,
}

/// Names the filter must not take over, on either side: the cookie headers
/// themselves, framing and hop-by-hop headers, and Envoy's own. A trailing
/// `*` makes a prefix. Each with the meaning it already has.
pub const RESERVED_ANYWHERE: &[(&str, &str)] = &[
    ("cookie", "the cookies, the affinity cookie among them"),
    ("set-cookie", "the cookies the response sets"),
    ("host", "the request's authority"),
    ("authorization", "the client's credentials"),
    ("content-length", "the body's framing"),
    ("content-type", "the body's media type"),
    ("transfer-encoding", "the body's framing"),
    ("connection", "hop-by-hop connection options"),
    ("keep-alive", "hop-by-hop connection options"),
    ("proxy-connection", "hop-by-hop connection options"),
    ("te", "the transfer codings and trailers the client accepts"),
    ("upgrade", "a protocol switch (WebSocket)"),
    ("x-forwarded-for", "the client's address, as proxies see it"),
    (
        "x-forwarded-proto",
        "the client's scheme, as proxies see it",
    ),
    ("x-request-id", "Envoy's request id"),
    ("x-envoy-*", "Envoy's own information"),
];

/// Request headers that clients, proxies or backends give meaning to:
/// refused for `routeHeader`, `clusterHeader` and `sessionHeader`, whose
/// value the filter replaces or reads.
pub const RESERVED_IN_REQUESTS: &[(&str, &str)] = &[
    ("user-agent", "the client's software"),
    (
        "forwarded",
        "the proxies a request passed, as RFC 7239 records them",
    ),
    ("via", "the proxies a request passed"),
    ("proxy-*", "credentials and options for proxies"),
    ("content-*", "the body and how it is encoded"),
    ("accept*", "the content the client accepts"),
    ("referer", "the page that linked here"),
    (
        "origin",
        "the origin of a cross-site request (CORS, CSRF checks)",
    ),
    ("range", "the byte ranges asked for"),
    ("if-*", "a request's conditions"),
    ("expect", "what the client expects before sending a body"),
    ("max-forwards", "how many proxies may still forward it"),
    ("cache-control", "caching directives"),
    ("pragma", "caching directives"),
    ("x-forwarded-*", "what proxies saw of the client"),
    ("x-real-ip", "the client's address, as proxies see it"),
    ("traceparent", "the trace context"),
    ("tracestate", "the trace context"),
    ("b3", "the trace context"),
    ("x-b3-*", "the trace context"),
    ("grpc-*", "gRPC's own metadata"),
    (
        "sec-*",
        "what only a browser sets (fetch metadata, WebSocket keys)",
    ),
    ("http2-settings", "an HTTP/2 upgrade's settings"),
];

/// Response headers that clients, caches or browsers give meaning to:
/// refused for `debugHeader` and `sessionHeader`, which the filter sets on
/// the response.
pub const RESERVED_IN_RESPONSES: &[(&str, &str)] = &[
    ("location", "a redirect's target"),
    ("content-*", "the body and how it is encoded"),
    ("cache-control", "caching directives"),
    ("expires", "caching directives"),
    ("vary", "what a cached response depends on"),
    ("age", "caching directives"),
    ("etag", "the version a cache validates"),
    ("last-modified", "the version a cache validates"),
    ("www-authenticate", "how to authenticate"),
    ("proxy-authenticate", "how to authenticate to a proxy"),
    ("retry-after", "when to try again"),
    ("strict-transport-security", "the site's HTTPS-only policy"),
    ("alt-svc", "other places the service is"),
    ("access-control-*", "what cross-site requests may do (CORS)"),
    ("link", "related resources and preloads"),
    ("refresh", "a timed redirect"),
    ("accept-ranges", "whether partial requests work"),
    ("trailer", "the trailers that follow"),
    ("server", "the server's software"),
    ("date", "when the response was made"),
    ("grpc-*", "gRPC's status and metadata"),
    ("x-frame-options", "whether the page may be framed"),
    ("x-content-type-options", "the no-sniff directive"),
];

/// The first entry of `table` that `name` (lowercase) matches.
fn reserved_in<'a>(table: &'a [(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    table.iter().find_map(|&(pattern, meaning)| {
        let hit = match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        };
        hit.then_some(meaning)
    })
}

/// A name of the filter's own for each field.
fn suggestion(field: &str) -> &'static str {
    match field {
        "clusterHeader" => "x-sticky-split-cluster",
        "debugHeader" => "x-sticky-split-debug",
        "sessionHeader" => "x-sticky-split-session",
        _ => "x-sticky-split-pool",
    }
}

fn check_header_name(field: &str, side: Side, name: &str) -> Result<String, ConfigError> {
    check_token(field, name, "header name")?;
    let lower = name.to_ascii_lowercase();
    let request = matches!(side, Side::Request | Side::Both);
    let response = matches!(side, Side::Response | Side::Both);
    let reserved = reserved_in(RESERVED_ANYWHERE, &lower)
        .map(|m| ("header", m))
        .or_else(|| {
            request
                .then(|| reserved_in(RESERVED_IN_REQUESTS, &lower))
                .flatten()
                .map(|m| ("request header", m))
        })
        .or_else(|| {
            response
                .then(|| reserved_in(RESERVED_IN_RESPONSES, &lower))
                .flatten()
                .map(|m| ("response header", m))
        });
    if let Some((kind, meaning)) = reserved {
        return Err(ConfigError::new(
            field,
            format!(
                "{name:?} is reserved: as a {kind} it carries {meaning}; choose a header of your own such as {}",
                suggestion(field)
            ),
        ));
    }
    Ok(lower)
}
