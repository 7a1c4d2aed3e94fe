//! The header names the filter writes or reads (`routeHeader`,
//! `clusterHeader`, `debugHeader`, `sessionHeader`), validated.

use super::validate::check_token;
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
        route.as_deref().unwrap_or(DEFAULT_ROUTE_HEADER),
    )?;
    let cluster = cluster
        .map(|h| check_header_name("clusterHeader", &h))
        .transpose()?;
    if cluster.as_deref() == Some(route.as_str()) {
        return Err(ConfigError::new(
            "clusterHeader",
            format!("must differ from routeHeader ({route:?})"),
        ));
    }
    let debug = debug
        .map(|h| check_header_name("debugHeader", &h))
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
        .map(|h| check_header_name("sessionHeader", &h))
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

/// Request headers a filter must not take over: framing, hop-by-hop, the
/// cookie headers themselves, and Envoy's own.
const RESERVED_HEADERS: &[&str] = &[
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
];

fn check_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    check_token(field, name, "header name")?;
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-envoy-") {
        return Err(ConfigError::new(
            field,
            format!(
                "{name:?} is reserved; choose a header of your own such as x-sticky-split-pool"
            ),
        ));
    }
    Ok(lower)
}
