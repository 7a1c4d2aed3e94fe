//! The affinity cookie's value: what it pins, which generation wrote it, and
//! (with a signing key) a MAC that proves the gateway wrote it.
//!
//! ```text
//! value   = [generation "."] payload ["." mac]
//! payload = pool-name | "@" ramp-key
//! ```
//! - With neither generation nor signing, the value is the plain pool name,
//!   as the hand-written Istio pattern writes it.
//! - `ramp-key`: 64 random bits, base64url (11 characters); the pool is
//!   recomputed from it on every request (`"affinity": "ramp"`).
//! - `generation`: `[A-Za-z0-9_-]`, so the first `.` ends it.
//! - `mac`: HMAC-SHA256 over `cookie-name NUL generation NUL payload`,
//!   truncated to 128 bits, base64url (22 characters), so the last `.` starts
//!   it. Pool names may contain dots; those two rules keep parsing unambiguous.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::b64;

pub const MAC_BYTES: usize = 16;
const RAMP_KEY_CHARS: usize = 11;

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
pub enum Parsed {
    Valid(Payload),
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
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print key material
        f.debug_struct("Codec")
            .field("cookie_name", &self.cookie_name)
            .field("generation", &self.generation)
            .field("signed", &self.signer.is_some())
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
        }
    }

    pub fn encode<'n>(
        &self,
        payload: Payload,
        pool_name: impl Fn(usize) -> Option<&'n str>,
    ) -> Option<String> {
        let body: Cow<'n, str> = match payload {
            Payload::Pool(i) => Cow::Borrowed(pool_name(i)?),
            Payload::RampKey(k) => Cow::Owned(format!("@{}", b64::encode(&k.to_be_bytes()))),
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
            out.push_str(&b64::encode(tag.get(..MAC_BYTES).unwrap_or_default()));
        }
        Some(out)
    }

    fn mac(&self, mut m: Hmac<Sha256>, generation: &[u8], payload: &[u8]) -> Hmac<Sha256> {
        m.update(self.cookie_name.as_bytes());
        m.update(&[0]);
        m.update(generation);
        m.update(&[0]);
        m.update(payload);
        m
    }

    /// Checks a cookie value: MAC first (it covers the rest), then the
    /// generation, then the payload. `pool_index` resolves pool names.
    pub fn decode(&self, value: &[u8], pool_index: impl Fn(&[u8]) -> Option<usize>) -> Parsed {
        let mut rest = value;
        let mut tag = [0u8; MAC_BYTES];
        if self.signer.is_some() {
            let Some(dot) = rest.iter().rposition(|&b| b == b'.') else {
                return Parsed::Forged;
            };
            let (body, mac_text) = rest.split_at(dot);
            match b64::decode_into(mac_text.get(1..).unwrap_or_default(), &mut tag) {
                Some(MAC_BYTES) => {}
                _ => return Parsed::Forged,
            }
            rest = body;
        }
        let (generation, payload) = if self.generation.is_some() {
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
        if let Some(signer) = &self.signer {
            if self
                .mac(signer.clone(), generation, payload)
                .verify_truncated_left(&tag)
                .is_err()
            {
                return Parsed::Forged;
            }
        }
        if let Some(g) = &self.generation {
            if generation != g.as_bytes() {
                return Parsed::Stale;
            }
        }
        match payload {
            [b'@', key @ ..] if key.len() == RAMP_KEY_CHARS => {
                let mut bytes = [0u8; 8];
                match b64::decode_into(key, &mut bytes) {
                    Some(8) => Parsed::Valid(Payload::RampKey(u64::from_be_bytes(bytes))),
                    _ => Parsed::Unknown,
                }
            }
            _ => pool_index(payload).map_or(Parsed::Unknown, |i| Parsed::Valid(Payload::Pool(i))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOLS: [&str; 3] = ["pool1", "pool2", "v1.2"];

    fn index(name: &[u8]) -> Option<usize> {
        POOLS.iter().position(|p| p.as_bytes() == name)
    }

    fn name(i: usize) -> Option<&'static str> {
        POOLS.get(i).copied()
    }

    fn codec(generation: Option<&str>, key: Option<&[u8]>) -> Codec {
        Codec::new("s", generation.map(str::to_string), key)
    }

    #[test]
    fn plain_values_are_pool_names() {
        let c = codec(None, None);
        assert_eq!(c.encode(Payload::Pool(1), name).unwrap(), "pool2");
        assert_eq!(c.decode(b"pool2", index), Parsed::Valid(Payload::Pool(1)));
        assert_eq!(c.decode(b"v1.2", index), Parsed::Valid(Payload::Pool(2)));
        assert_eq!(c.decode(b"pool9", index), Parsed::Unknown);
        assert_eq!(c.decode(b"g1.pool2", index), Parsed::Unknown);
    }

    #[test]
    fn round_trips_in_every_mode() {
        let key = b"0123456789abcdef0123";
        for generation in [None, Some("g7"), Some("2026-11-rollback_2")] {
            for signing in [None, Some(&key[..])] {
                let c = codec(generation, signing);
                for payload in [
                    Payload::Pool(0),
                    Payload::Pool(2),
                    Payload::RampKey(0),
                    Payload::RampKey(u64::MAX),
                ] {
                    let v = c.encode(payload, name).unwrap();
                    assert!(
                        v.bytes().all(crate::token::is_tchar) || v.contains('@'),
                        "{v}"
                    );
                    assert_eq!(
                        c.decode(v.as_bytes(), index),
                        Parsed::Valid(payload),
                        "{v} {generation:?} {signing:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn generations() {
        let old = codec(Some("g1"), None);
        let new = codec(Some("g2"), None);
        let v = old.encode(Payload::Pool(0), name).unwrap();
        assert_eq!(v, "g1.pool1");
        assert_eq!(new.decode(v.as_bytes(), index), Parsed::Stale);
        // a cookie from before generations were configured
        assert_eq!(new.decode(b"pool1", index), Parsed::Stale);
        assert_eq!(
            new.decode(b"g2.pool1", index),
            Parsed::Valid(Payload::Pool(0))
        );
        assert_eq!(new.decode(b"g2.nope", index), Parsed::Unknown);
    }

    #[test]
    fn signatures() {
        let c = codec(Some("g1"), Some(b"0123456789abcdef"));
        let v = c.encode(Payload::Pool(0), name).unwrap();
        let (body, mac) = v.rsplit_once('.').unwrap();
        assert_eq!(body, "g1.pool1");
        assert_eq!(mac.len(), 22);
        assert_eq!(
            c.decode(v.as_bytes(), index),
            Parsed::Valid(Payload::Pool(0))
        );
        let forged: &[&[u8]] = &[
            b"g1.pool1",
            b"pool1",
            b"g1.pool2.AAAAAAAAAAAAAAAAAAAAAA",
            format!("g1.pool2.{mac}").as_bytes().to_vec().leak(),
            format!("{body}.{}", &mac[..21]).as_bytes().to_vec().leak(),
            format!("{body}.{mac}A").as_bytes().to_vec().leak(),
            format!("{body}.{mac}=").as_bytes().to_vec().leak(),
            b"",
            b".",
            b"\xff.\xff",
        ];
        for f in forged {
            assert_eq!(
                c.decode(f, index),
                Parsed::Forged,
                "{:?}",
                String::from_utf8_lossy(f)
            );
        }
        // another key's MAC is a forgery
        let other = codec(Some("g1"), Some(b"fedcba9876543210"));
        assert_eq!(other.decode(v.as_bytes(), index), Parsed::Forged);
        // another cookie name's MAC too (the name is in the MAC input)
        let renamed = Codec::new("t", Some("g1".into()), Some(b"0123456789abcdef"));
        assert_eq!(renamed.decode(v.as_bytes(), index), Parsed::Forged);
        // a genuine MAC under an old generation is stale, not forged
        let next = codec(Some("g2"), Some(b"0123456789abcdef"));
        assert_eq!(next.decode(v.as_bytes(), index), Parsed::Stale);
    }

    /// HMAC-SHA256 test case 2 of RFC 4231, through the same code path.
    #[test]
    fn hmac_is_hmac_sha256() {
        let m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        let mut m = m;
        m.update(b"what do ya want for nothing?");
        let out = m.finalize().into_bytes();
        assert_eq!(
            b64::encode(&out),
            b64::encode(&[
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43
            ])
        );
    }

    #[test]
    fn ramp_keys() {
        let c = codec(None, None);
        let v = c
            .encode(Payload::RampKey(0x0123_4567_89ab_cdef), name)
            .unwrap();
        assert_eq!(v.len(), 12);
        assert_eq!(
            c.decode(v.as_bytes(), index),
            Parsed::Valid(Payload::RampKey(0x0123_4567_89ab_cdef))
        );
        for bad in [
            &b"@"[..],
            b"@short",
            b"@AAAAAAAAAAAA",
            b"@AAAAAAAAAA!",
            b"@AAAAAAAAAAB",
        ] {
            assert_eq!(c.decode(bad, index), Parsed::Unknown, "{bad:?}");
        }
    }
}
