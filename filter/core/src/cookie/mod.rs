//! The affinity cookie: the value it holds (pool or ramp key, generation,
//! MAC) and the `Set-Cookie` header that carries it.

pub mod set_cookie;
pub mod value;

pub use set_cookie::{CookieSpec, SameSite, Secure, SetCookieTemplate};
pub use value::{is_generation, Codec, Payload, Stamp, Verdict};
