//! The affinity cookie's value: plain pool names, generations, MACs, ramp
//! keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sticky_split_core::cookie::{Codec, Payload, Verdict};

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
    assert_eq!(c.decode(b"pool2", index), Verdict::Valid(Payload::Pool(1)));
    assert_eq!(c.decode(b"v1.2", index), Verdict::Valid(Payload::Pool(2)));
    assert_eq!(c.decode(b"pool9", index), Verdict::Unknown);
    assert_eq!(c.decode(b"g1.pool2", index), Verdict::Unknown);
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
                    v.bytes().all(sticky_split_core::token::is_tchar) || v.contains('@'),
                    "{v}"
                );
                assert_eq!(
                    c.decode(v.as_bytes(), index),
                    Verdict::Valid(payload),
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
    assert_eq!(new.decode(v.as_bytes(), index), Verdict::Stale);
    // a cookie from before generations were configured
    assert_eq!(new.decode(b"pool1", index), Verdict::Stale);
    assert_eq!(
        new.decode(b"g2.pool1", index),
        Verdict::Valid(Payload::Pool(0))
    );
    assert_eq!(new.decode(b"g2.nope", index), Verdict::Unknown);
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
        Verdict::Valid(Payload::Pool(0))
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
            Verdict::Forged,
            "{:?}",
            String::from_utf8_lossy(f)
        );
    }
    // another key's MAC is a forgery
    let other = codec(Some("g1"), Some(b"fedcba9876543210"));
    assert_eq!(other.decode(v.as_bytes(), index), Verdict::Forged);
    // another cookie name's MAC too (the name is in the MAC input)
    let renamed = Codec::new("t", Some("g1".into()), Some(b"0123456789abcdef"));
    assert_eq!(renamed.decode(v.as_bytes(), index), Verdict::Forged);
    // a genuine MAC under an old generation is stale, not forged
    let next = codec(Some("g2"), Some(b"0123456789abcdef"));
    assert_eq!(next.decode(v.as_bytes(), index), Verdict::Stale);
}

/// HMAC-SHA256 test case 2 of RFC 4231, through the same code path.
#[test]
fn hmac_is_hmac_sha256() {
    let m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    let mut m = m;
    m.update(b"what do ya want for nothing?");
    let out = m.finalize().into_bytes();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(out),
        URL_SAFE_NO_PAD.encode([
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
        Verdict::Valid(Payload::RampKey(0x0123_4567_89ab_cdef))
    );
    for bad in [
        &b"@"[..],
        b"@short",
        b"@AAAAAAAAAAAA",
        b"@AAAAAAAAAA!",
        b"@AAAAAAAAAAB",
    ] {
        assert_eq!(c.decode(bad, index), Verdict::Unknown, "{bad:?}");
    }
}
