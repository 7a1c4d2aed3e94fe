//! Every host call the filter makes, each through `proxy_wasm::hostcalls`
//! with the statuses it returns handled: a call that fails is logged and the
//! stream goes on with nothing (no header, no flags, time 0). The SDK's trait
//! helpers unwrap those instead, and a panic traps the VM, taking the
//! worker's later requests with it. (`hostcalls` itself still panics on a
//! status the ABI does not define for that call.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

use sticky_split_core::health::{HealthStore, Stored};

use sticky_split_core::request::Headers;

fn failed(what: &str, status: Status) {
    log::warn!("host call {what} failed ({status:?}); continuing without it");
}

fn or_log<T>(what: &str, result: Result<T, Status>) -> Option<T> {
    result.map_err(|status| failed(what, status)).ok()
}

/// The first value of request header `name`.
pub(super) fn request_header(name: &str) -> Option<Vec<u8>> {
    or_log(
        "get request header",
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name),
    )
    .flatten()
}

/// Every request header, in order.
pub(super) fn request_headers() -> Headers {
    or_log(
        "get request headers",
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders),
    )
    .unwrap_or_default()
}

/// The first value of response header `name`.
pub(super) fn response_header(name: &str) -> Option<Vec<u8>> {
    or_log(
        "get response header",
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name),
    )
    .flatten()
}

/// The first value of response trailer `name`.
pub(super) fn response_trailer(name: &str) -> Option<Vec<u8>> {
    or_log(
        "get response trailer",
        hostcalls::get_map_value_bytes(MapType::HttpResponseTrailers, name),
    )
    .flatten()
}

/// Replaces every value of request header `name`.
pub(super) fn set_request_header(name: &str, value: &str) {
    or_log(
        "set request header",
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)),
    );
}

/// Replaces every value of response header `name`.
pub(super) fn set_response_header(name: &str, value: &str) {
    or_log(
        "set response header",
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value)),
    );
}

/// Adds a value of response header `name`, keeping the others.
pub(super) fn add_response_header(name: &str, value: &str) {
    or_log(
        "add response header",
        hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value),
    );
}

/// An attribute of the stream or the plugin (`plugin_name`, ...).
pub(super) fn property(path: &[&str]) -> Option<Vec<u8>> {
    or_log("get property", hostcalls::get_property(path.to_vec())).flatten()
}

/// Envoy's response flags (`response.flags`, a little-endian integer); 0
/// when the host has none.
pub(super) fn response_flags() -> u64 {
    property(&["response", "flags"])
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Makes Envoy match the route again now that the routing headers are set.
///
/// Envoy picks the route before the filter chain runs and drops that choice
/// when a filter of Proxy-Wasm ABI 0.2.1 or older changes request headers;
/// since envoyproxy/envoy#36671 (Envoy 1.33) it keeps it for newer ABIs
/// unless the filter calls this foreign function. This module's ABI is
/// 0.2.1, so the call is made only when the config asks for it; an Envoy
/// without the function answers NotFound.
pub(super) fn clear_route_cache() {
    match hostcalls::call_foreign_function("clear_route_cache", None) {
        Ok(_) | Err(Status::NotFound) => {}
        Err(status) => failed("clear_route_cache", status),
    }
}

/// Logs at critical level: what the filter says just before the VM traps.
pub(super) fn log_critical(message: &str) {
    // nothing is left to do if even the log fails
    let _ = hostcalls::log(LogLevel::Critical, message);
}

/// Sets a property of the stream: Envoy keeps it as filter state
/// `wasm.<path>`.
pub(super) fn set_property(path: &str, value: &str) {
    or_log(
        "set property",
        hostcalls::set_property(vec![path], Some(value.as_bytes())),
    );
}

/// The host's clock.
pub(super) fn now() -> SystemTime {
    or_log("get current time", hostcalls::get_current_time()).unwrap_or(UNIX_EPOCH)
}

/// Seconds since the Unix epoch; 0 when the clock fails.
pub(super) fn now_seconds() -> u64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The plugin configuration bytes; empty when there are none.
pub(super) fn plugin_configuration() -> Vec<u8> {
    or_log(
        "get plugin configuration",
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX),
    )
    .flatten()
    .unwrap_or_default()
}

pub(super) fn set_tick_period(period: Duration) {
    or_log("set tick period", hostcalls::set_tick_period(period));
}

pub(super) fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    hostcalls::define_metric(kind, name)
}

pub(super) fn increment_metric(id: u32, by: i64) {
    or_log("increment metric", hostcalls::increment_metric(id, by));
}

/// Proxy-wasm shared data under one key: the process-wide store of the pool
/// health board.
pub(super) struct SharedData {
    pub(super) key: String,
}

impl HealthStore for SharedData {
    fn load(&mut self) -> Option<(Vec<u8>, u32)> {
        match or_log("get shared data", hostcalls::get_shared_data(&self.key))? {
            (Some(bytes), Some(version)) => Some((bytes, version)),
            (Some(bytes), None) => Some((bytes, 0)),
            (None, _) => None,
        }
    }

    fn store(&mut self, bytes: &[u8], version: u32) -> Stored {
        let cas = (version != 0).then_some(version);
        match hostcalls::set_shared_data(&self.key, Some(bytes), cas) {
            Ok(()) => Stored::Yes,
            Err(Status::CasMismatch) => Stored::Conflict,
            Err(status) => {
                failed("set shared data", status);
                Stored::Failed
            }
        }
    }
}
