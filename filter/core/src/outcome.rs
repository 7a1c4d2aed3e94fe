//! What a response says about the pool that answered: its class, from the
//! `:status` (or a gRPC call's `grpc-status`), and what Envoy's response
//! flags say about reaching the pool. Gateway-level failures are what pool
//! health counts; the classes are what the response counters count.

/// Response classes counted per pool; `Gateway` is an answer Envoy itself
/// produced because it could not get one from the pool, apart from the
/// application's own errors.
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
    pub const COUNTED: [Class; 6] = [
        Class::Informational,
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

    /// Position in [`Class::COUNTED`].
    pub fn index(self) -> usize {
        match self {
            Class::Informational => 0,
            Class::Success => 1,
            Class::Redirection => 2,
            Class::ClientError => 3,
            Class::ServerError => 4,
            Class::Gateway => 5,
        }
    }

    /// The class of an HTTP response with this status and, for a 5xx,
    /// Envoy's response flags.
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

    /// The class of a gRPC call with this `grpc-status` (`None`: the call
    /// ended with none, a reset stream) and Envoy's response flags. Envoy's
    /// own failure replies are gateway-level whatever the code; other codes
    /// take the class of the HTTP status Envoy maps them to; a call the
    /// client cancelled is a `4xx`, any other without a status a `5xx`.
    pub fn of_grpc(code: Option<u32>, flags: u64) -> Class {
        if flags & GATEWAY_FLAGS != 0 {
            return Class::Gateway;
        }
        // no status because the client went away (DC) or reset the stream
        // (DR): a cancel, as CANCELLED is, not the pool's failure
        if code.is_none() && flags & (DC | DR) != 0 {
            return Class::ClientError;
        }
        match code {
            Some(0) => Class::Success,
            // CANCELLED 499, INVALID_ARGUMENT 400, NOT_FOUND 404,
            // ALREADY_EXISTS 409, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429,
            // FAILED_PRECONDITION 400, ABORTED 409, OUT_OF_RANGE 400,
            // UNAUTHENTICATED 401
            Some(1 | 3 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 16) => Class::ClientError,
            // UNKNOWN 500, DEADLINE_EXCEEDED 504, UNIMPLEMENTED 501,
            // INTERNAL 500, UNAVAILABLE 503, DATA_LOSS 500, any other 500;
            // and no status at all
            _ => Class::ServerError,
        }
    }
}

/// Envoy's response flags (the `response.flags` attribute, legacy bit
/// positions) that mean Envoy could not get a response from the pool: UH no
/// healthy upstream, UR upstream reset before the response, UF connection
/// failure (refused, connect timeout), UC connection terminated, UO overflow
/// (circuit breaker). An application's own errors carry none of them.
pub const GATEWAY_FLAGS: u64 = UH | UR | UF | UC | UO;

const UH: u64 = 0x2;
const UR: u64 = 0x10;
const UF: u64 = 0x20;
const UC: u64 = 0x40;
const UO: u64 = 0x80;
/// Downstream connection termination and downstream remote reset: the
/// client ended the stream.
const DC: u64 = 0x4000;
const DR: u64 = 0x1000_0000;

/// What a gateway-level failure says about the pool, and so what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// UF, UH: the pool cannot be reached. Counts toward ejection and moves
    /// the user at once: a dead pool costs each user one failed response.
    Unreachable,
    /// UR, UC: a stream or connection was cut. Counts toward ejection, but
    /// moves the user only once the pool is ejected or when it follows
    /// another gateway-level failure of the pool with no answer between (a
    /// pool dying under its requests): one keep-alive connection closed
    /// under a request is routine, not a dead pool.
    Reset,
    /// UO: Envoy's circuit breaker shed the request. Neither counts nor
    /// moves: the pool is busy, not dead, and moving its users for good
    /// would spoil the split.
    Overflow,
}

impl Failure {
    /// The failure the flags name, the gravest first; `None` for none.
    pub fn of(flags: u64) -> Option<Failure> {
        if flags & (UF | UH) != 0 {
            Some(Failure::Unreachable)
        } else if flags & (UR | UC) != 0 {
            Some(Failure::Reset)
        } else if flags & UO != 0 {
            Some(Failure::Overflow)
        } else {
            None
        }
    }
}

/// A number in a response header (`:status`, `grpc-status`); `None` when it
/// is missing or not a number.
pub fn header_number<T: std::str::FromStr>(value: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

/// The status code of a response's `:status` value; 0 when it is missing or
/// not a number (Envoy always sends one: a host that does not is counted
/// with the 5xx, as an answer nobody can use).
pub fn status_code(value: Option<&[u8]>) -> u16 {
    header_number(value).unwrap_or(0)
}

/// Whether an HTTP response needs Envoy's response flags to be classed:
/// only a 5xx can be a gateway-level failure. (A gRPC call's error status
/// needs them too: Envoy's failure replies to gRPC are HTTP 200.)
pub fn needs_flags(status: u16) -> bool {
    status >= 500
}
