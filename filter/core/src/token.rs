//! Character classes from the HTTP and cookie RFCs, used to validate names
//! that end up in headers and cookies.

/// RFC 9110 `tchar`: the characters of a token (header names, cookie names,
/// and our pool names).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A non-empty RFC 9110 token. Every token is also a valid RFC 6265
/// `cookie-value` and a valid header value, which is why pool names are tokens.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Visible ASCII, no spaces: safe as a header value (cluster names).
pub fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 6265 `path-value`: any CHAR except controls and `;`. We also refuse
/// spaces and commas, which break naive cookie handling downstream.
pub fn is_cookie_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
}

/// A DNS name as a cookie `Domain`: labels of letters, digits and hyphens,
/// separated by dots, with an optional leading dot.
pub fn is_cookie_domain(s: &str) -> bool {
    let body = s.strip_prefix('.').unwrap_or(s);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
