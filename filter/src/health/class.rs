//! What a response says about the pool that answered: its class, from the
//! `:status` and, for a 5xx, Envoy's response flags. Gateway-level failures
//! are what pool health counts.

/// Response classes counted per pool; `Gateway` is a 5xx that Envoy itself
/// produced because it could not reach the pool, apart from the
/// application's own 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    Gateway,
}

impl Class {
    pub const COUNTED: [Class; 5] = [
        Class::Success,
        Class::Redirection,
        Class::ClientError,
        Class::ServerError,
        Class::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Informational => "1xx",
            Class::Success => "2xx",
            Class::Redirection => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::Gateway => "gateway",
        }
    }

    /// Position in [`Class::COUNTED`]; `None` for what is not counted.
    pub fn index(self) -> Option<usize> {
        Class::COUNTED.iter().position(|&c| c == self)
    }

    /// The class of a response with this status and, for a 5xx, Envoy's
    /// response flags.
    pub fn of(status: u16, flags: u64) -> Class {
        match status {
            100..=199 => Class::Informational,
            200..=299 => Class::Success,
            300..=399 => Class::Redirection,
            400..=499 => Class::ClientError,
            _ if flags & GATEWAY_FLAGS != 0 => Class::Gateway,
            _ => Class::ServerError,
        }
    }
}

/// Envoy's response flags (the `response.flags` attribute, legacy bit
/// positions) that mean Envoy could not get a response from the pool: UH no
/// healthy upstream, UR upstream reset before the response, UF connection
/// failure (refused, connect timeout), UC connection terminated, UO overflow
/// (circuit breaker). An application's own 5xx carries none of them.
pub const GATEWAY_FLAGS: u64 = 0x2 | 0x10 | 0x20 | 0x40 | 0x80;

/// The status code of a response's `:status` value; 0 when it is missing or
/// not a number (Envoy always sends one: a host that does not is counted
/// with the 5xx, as an answer nobody can use).
pub fn status_code(value: Option<&[u8]>) -> u16 {
    value
        .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok())
        .unwrap_or(0)
}

/// Whether a response with this status needs Envoy's response flags to be
/// classed: only a 5xx can be a gateway-level failure.
pub fn needs_flags(status: u16) -> bool {
    status >= 500
}
