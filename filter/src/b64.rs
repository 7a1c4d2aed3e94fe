//! Unpadded base64url (RFC 4648 section 5): the alphabet of ramp keys and
//! cookie MACs, all of it valid in a cookie value.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 63;
            if let Some(&c) = ALPHABET.get(sextet as usize) {
                out.push(char::from(c));
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    }))
}

/// Decodes into `out`, returning the number of bytes written; `None` for a
/// character outside the alphabet, an impossible length, non-zero padding
/// bits, or output that would not fit.
pub fn decode_into(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut written = 0;
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = chunk.len() - 1;
        // the bits below the last whole byte must be zero (one encoding per value)
        if n & ((1u32 << (24 - 8 * bytes)) - 1) != 0 {
            return None;
        }
        for i in 0..bytes {
            *out.get_mut(written)? = (n >> (16 - 8 * i)) as u8;
            written += 1;
        }
    }
    Some(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_without_padding() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "-_-_"),
        ];
        for (raw, text) in cases {
            assert_eq!(encode(raw), *text);
            let mut buf = [0u8; 8];
            let n = decode_into(text.as_bytes(), &mut buf).unwrap();
            assert_eq!(&buf[..n], *raw);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut buf = [0u8; 8];
        for bad in [
            &b"Zg=="[..],
            b"Z",
            b"Zh",
            b"Zm9v+",
            b"Zm/v",
            b"\xff\xff",
            b"Zm9vYmFyYmF6Zm9v",
        ] {
            assert_eq!(decode_into(bad, &mut buf), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let mut buf = [0u8; 40];
            let text = encode(&data[..len]);
            assert_eq!(decode_into(text.as_bytes(), &mut buf), Some(len));
            assert_eq!(&buf[..len], &data[..len]);
        }
    }
}
