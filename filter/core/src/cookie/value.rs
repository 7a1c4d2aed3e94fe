//! The affinity cookie's value: what it pins, which generation wrote it, and
//! (with a signing key) a MAC that proves the gateway wrote it.
//!
//! ```text
//! value   = [generation "."] [stamp "."] payload ["." mac]
//! payload = pool-name | "@" ramp-key
//! ```
//! - With neither generation nor signing, the value is the plain pool name,
//!   as the hand-written Istio pattern writes it.
//! - `ramp-key`: 64 random bits, base64url (11 characters); the pool is
//!   recomputed from it on every request (`"affinity": "ramp"`).
//! - `generation`: `[A-Za-z0-9_-]`, so the first `.` ends it.
//! - `stamp`: only when a server-side timeout is configured: when the pool
//!   was assigned and when the value was issued, two 32-bit counts of seconds
//!   since the Unix epoch, base64url (11 characters, no `.`).
//! - `mac`: HMAC-SHA256 over `cookie-name NUL generation NUL [stamp "."]
//!   payload`, truncated to 128 bits, base64url (22 characters), so the last
//!   `.` starts it. Pool names may contain dots; these rules keep parsing
//!   unambiguous.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const MAC_BYTES: usize = 16;
const RAMP_KEY_CHARS: usize = 11;
const STAMP_CHARS: usize = 11;

/// When a value's pool was assigned and when the value was issued, in
/// seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub assigned: u32,
    pub issued: u32,
}

/// What a cookie pins, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Index of a configured pool.
    Pool(usize),
    /// A per-user key; the pool is a function of it and the current weights.
    RampKey(u64),
}

/// The verdict on one cookie value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid(Payload),
    /// Valid, with a MAC of a previous signing key: to be issued again under
    /// the current one.
    ValidUnderPreviousKey(Payload),
    /// Written under another generation (or before generations were used).
    Stale,
    /// Signing is on and the MAC is missing or wrong.
    Forged,
    /// Names no configured pool, or is not a well-formed key.
    Unknown,
}

#[derive(Clone)]
pub struct Codec {
    cookie_name: String,
    generation: Option<String>,
    /// Keyed once at config time; cloned per use.
    signer: Option<Hmac<Sha256>>,
    /// Keys of earlier values, tried in order only when `signer` refuses a
    /// MAC.
    previous: Vec<Hmac<Sha256>>,
    /// Values carry a [`Stamp`] (a server-side timeout is configured).
    stamped: bool,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print key material
        f.debug_struct("Codec")
            .field("cookie_name", &self.cookie_name)
            .field("generation", &self.generation)
            .field("signed", &self.signer.is_some())
            .field("previous_keys", &self.previous.len())
            .field("stamped", &self.stamped)
            .finish()
    }
}

/// Whether `s` is a valid generation string.
pub fn is_generation(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Codec {
    /// `key`: the signing key bytes (any length; HMAC accepts all).
    pub fn new(cookie_name: &str, generation: Option<String>, key: Option<&[u8]>) -> Self {
        Codec {
            cookie_name: cookie_name.to_string(),
            generation,
            signer: key.and_then(|k| Hmac::<Sha256>::new_from_slice(k).ok()),
            previous: Vec::new(),
            stamped: false,
        }
    }

    /// The same codec, also accepting values signed with these keys.
    pub fn with_previous_keys(mut self, keys: &[Vec<u8>]) -> Self {
        self.previous = keys
            .iter()
            .filter_map(|k| Hmac::<Sha256>::new_from_slice(k).ok())
            .collect();
        self
    }

    /// The same codec, with values that carry a [`Stamp`].
    pub fn stamped(mut self) -> Self {
        self.stamped = true;
        self
    }

    pub fn encode<'n>(
        &self,
        payload: Payload,
        pool_name: impl Fn(usize) -> Option<&'n str>,
    ) -> Option<String> {
        self.encode_stamped(payload, None, pool_name)
    }

    /// Encodes a value; a stamped codec writes `stamp` (a value written
    /// without one reads back unstamped, which a timeout treats as expired).
    pub fn encode_stamped<'n>(
        &self,
        payload: Payload,
        stamp: Option<Stamp>,
        pool_name: impl Fn(usize) -> Option<&'n str>,
    ) -> Option<String> {
        let payload: Cow<'n, str> = match payload {
            Payload::Pool(i) => Cow::Borrowed(pool_name(i)?),
            Payload::RampKey(k) => {
                Cow::Owned(format!("@{}", URL_SAFE_NO_PAD.encode(k.to_be_bytes())))
            }
        };
        let body: Cow<'n, str> = match (self.stamped, stamp) {
            (true, Some(st)) => {
                let [a0, a1, a2, a3] = st.assigned.to_be_bytes();
                let [i0, i1, i2, i3] = st.issued.to_be_bytes();
                let bytes = [a0, a1, a2, a3, i0, i1, i2, i3];
                Cow::Owned(format!("{}.{payload}", URL_SAFE_NO_PAD.encode(bytes)))
            }
            _ => payload,
        };
        let mut out = String::with_capacity(body.len() + 48);
        if let Some(g) = &self.generation {
            out.push_str(g);
            out.push('.');
        }
        out.push_str(&body);
        if let Some(signer) = &self.signer {
            let generation = self.generation.as_deref().unwrap_or("");
            let tag = self
                .mac(signer.clone(), generation.as_bytes(), body.as_bytes())
                .finalize()
                .into_bytes();
            out.push('.');
            out.push_str(&URL_SAFE_NO_PAD.encode(tag.get(..MAC_BYTES).unwrap_or_default()));
        }
        Some(out)
    }

    fn mac(&self, mut m: Hmac<Sha256>, generation: &[u8], body: &[u8]) -> Hmac<Sha256> {
        m.update(self.cookie_name.as_bytes());
        m.update(&[0]);
        m.update(generation);
        m.update(&[0]);
        m.update(body);
        m
    }

    /// Checks a cookie value: MAC first (it covers the rest), then the
    /// generation, then the payload. `pool_index` resolves pool names.
    pub fn decode(&self, value: &[u8], pool_index: impl Fn(&[u8]) -> Option<usize>) -> Verdict {
        self.decode_stamped(value, pool_index).0
    }

    /// As [`Codec::decode`], with the value's stamp when the codec is stamped
    /// and the value carries one.
    pub fn decode_stamped(
        &self,
        value: &[u8],
        pool_index: impl Fn(&[u8]) -> Option<usize>,
    ) -> (Verdict, Option<Stamp>) {
        let mut rest = value;
        let mut tag = [0u8; MAC_BYTES];
        if self.signer.is_some() {
            let Some(dot) = rest.iter().rposition(|&b| b == b'.') else {
                return (Verdict::Forged, None);
            };
            let (body, mac_text) = rest.split_at(dot);
            if decode_exact(mac_text.get(1..).unwrap_or_default(), &mut tag).is_none() {
                return (Verdict::Forged, None);
            }
            rest = body;
        }
        let (generation, body) = if self.generation.is_some() {
            match rest.iter().position(|&b| b == b'.') {
                Some(dot) => (
                    rest.get(..dot).unwrap_or_default(),
                    rest.get(dot + 1..).unwrap_or_default(),
                ),
                None => (&b""[..], rest),
            }
        } else {
            (&b""[..], rest)
        };
        let mut previous_key = false;
        if let Some(signer) = &self.signer {
            let verifies = |key: &Hmac<Sha256>| {
                self.mac(key.clone(), generation, body)
                    .verify_truncated_left(&tag)
                    .is_ok()
            };
            if !verifies(signer) {
                // earlier keys only for what the current key refuses: values
                // already re-signed cost nothing more
                if !self.previous.iter().any(verifies) {
                    return (Verdict::Forged, None);
                }
                previous_key = true;
            }
        }
        if let Some(g) = &self.generation {
            if generation != g.as_bytes() {
                return (Verdict::Stale, None);
            }
        }
        let (stamp, payload) = match self.stamped {
            true => split_stamp(body),
            false => (None, body),
        };
        let verdict = match payload {
            [b'@', key @ ..] if key.len() == RAMP_KEY_CHARS => {
                let mut bytes = [0u8; 8];
                match decode_exact(key, &mut bytes) {
                    Some(()) => Verdict::Valid(Payload::RampKey(u64::from_be_bytes(bytes))),
                    None => Verdict::Unknown,
                }
            }
            _ => pool_index(payload).map_or(Verdict::Unknown, |i| Verdict::Valid(Payload::Pool(i))),
        };
        match verdict {
            Verdict::Valid(p) if previous_key => (Verdict::ValidUnderPreviousKey(p), stamp),
            v => (v, stamp),
        }
    }
}

/// The stamp at the start of a stamped value's body and the payload after
/// it; no stamp (and the whole body) when the body does not start with one.
fn split_stamp(body: &[u8]) -> (Option<Stamp>, &[u8]) {
    let (Some(head), Some(b'.'), Some(rest)) = (
        body.get(..STAMP_CHARS),
        body.get(STAMP_CHARS),
        body.get(STAMP_CHARS + 1..),
    ) else {
        return (None, body);
    };
    let mut bytes = [0u8; 8];
    match decode_exact(head, &mut bytes) {
        Some(()) => {
            let [a0, a1, a2, a3, i0, i1, i2, i3] = bytes;
            let stamp = Stamp {
                assigned: u32::from_be_bytes([a0, a1, a2, a3]),
                issued: u32::from_be_bytes([i0, i1, i2, i3]),
            };
            (Some(stamp), rest)
        }
        None => (None, body),
    }
}

/// Decodes unpadded base64url that fills `out` exactly. Non-zero trailing
/// bits are refused, so every value has one spelling (a MAC cannot be
/// varied in its last character).
fn decode_exact<const N: usize>(text: &[u8], out: &mut [u8; N]) -> Option<()> {
    // room for the decoder's conservative length estimate
    let mut buf = [0u8; 24];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut buf).ok()?;
    let decoded = buf.get(..n)?;
    (n == N).then(|| out.copy_from_slice(decoded))
}
