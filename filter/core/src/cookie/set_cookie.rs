//! The `Set-Cookie` header that pins a user: attributes checked at load,
//! rendered once per config, and only `name=value` added per response.

/// `cookie.secure`: always, never, or when the downstream request is https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    Always,
    Never,
    Auto,
}

/// `cookie.sameSite`, spelled as in the Set-Cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The affinity cookie's name and attributes, validated.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: String,
    /// Seconds; 0 means a session cookie (no Max-Age attribute).
    pub max_age: u32,
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: Secure,
    pub same_site: SameSite,
    /// `Partitioned` (CHIPS): the browser keys the cookie by the top-level
    /// site as well.
    pub partitioned: bool,
}

/// The attribute part of the Set-Cookie header, rendered once per config for
/// plain and for https requests; per response only `name=value` is added.
#[derive(Debug, Clone)]
pub struct SetCookieTemplate {
    prefix: String,
    plain: String,
    secure: String,
}

impl SetCookieTemplate {
    pub fn new(spec: &CookieSpec) -> Self {
        let mut attrs = String::new();
        if spec.max_age > 0 {
            attrs.push_str(&format!("; Max-Age={}", spec.max_age));
        }
        attrs.push_str("; Path=");
        attrs.push_str(&spec.path);
        if let Some(domain) = &spec.domain {
            attrs.push_str("; Domain=");
            attrs.push_str(domain);
        }
        if spec.http_only {
            attrs.push_str("; HttpOnly");
        }
        let mut tail = format!("; SameSite={}", spec.same_site.as_str());
        if spec.partitioned {
            tail.push_str("; Partitioned");
        }
        let with_secure = format!("{attrs}; Secure{tail}");
        let without_secure = format!("{attrs}{tail}");
        let (plain, secure) = match spec.secure {
            Secure::Always => (with_secure.clone(), with_secure),
            Secure::Never => (without_secure.clone(), without_secure),
            Secure::Auto => (without_secure, with_secure),
        };
        SetCookieTemplate {
            prefix: format!("{}=", spec.name),
            plain,
            secure,
        }
    }

    /// `name=value; attributes`, with Secure chosen by `https` when the config
    /// says `"auto"`.
    pub fn render(&self, value: &str, https: bool) -> String {
        let attrs = if https { &self.secure } else { &self.plain };
        let mut out = String::with_capacity(self.prefix.len() + value.len() + attrs.len());
        out.push_str(&self.prefix);
        out.push_str(value);
        out.push_str(attrs);
        out
    }
}
