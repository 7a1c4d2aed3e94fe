//! Finding a cookie's values in a Cookie header: bytes in, never a panic.

/// Every value of the cookie called `name` in one Cookie header, in order.
///
/// The header is treated as bytes: `;`-separated pairs, optional whitespace
/// around names and values, an optional pair of double quotes around a value
/// (RFC 6265 allows them; they are not part of the value). Pairs without `=`
/// and pairs whose bytes are not UTF-8 are skipped as other cookies would be.
/// Names compare exactly (cookie names are case-sensitive); an empty name
/// has no values.
///
/// Headers run to kilobytes of other cookies, so the scan does not split
/// every pair: it jumps between occurrences of the name's first byte (eight
/// bytes per step) and looks at the pair only where the name starts one.
pub fn values<'h, 'n>(
    header: &'h [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let first = *name.first()?;
        loop {
            let at = from + find_byte(header.get(from..)?, first)?;
            from = at + 1;
            if let Some((value, end)) = pair_at(header, at, name) {
                from = end;
                return Some(value);
            }
        }
    })
}

/// The value of the pair whose name is `name` starting at `at`, and where the
/// pair ends; `None` when `name` does not start a pair there.
fn pair_at<'h>(header: &'h [u8], at: usize, name: &[u8]) -> Option<(&'h [u8], usize)> {
    // the name must be the first non-blank bytes after `;` (or the start)
    let before = header.get(..at)?;
    if !matches!(trim(before).last(), None | Some(b';')) {
        return None;
    }
    let rest = header.get(at..)?.strip_prefix(name)?;
    let len = find_byte(rest, b';').unwrap_or(rest.len());
    // blanks, then `=`; anything else means a longer name or no value
    let value = trim_start(rest.get(..len)?).strip_prefix(b"=")?;
    Some((unquote(trim(value)), at + name.len() + len))
}

/// Position of the first `byte` in `hay`, eight bytes per step (SWAR).
pub fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(byte));
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // a zero byte in x is a match: the classic has-zero-byte test
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| offset + i)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// `s` without the spaces and tabs around it (HTTP's optional whitespace).
pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}
