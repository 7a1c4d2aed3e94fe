//! The cookie's fields, validated: its attributes, the server-side timeouts,
//! the signing key and the generation.

use super::check::check_token;
use super::raw::RawCookie;
use super::{
    ConfigError, Timeouts, DEFAULT_COOKIE_NAME, DEFAULT_MAX_AGE, MAX_SECONDS, MIN_KEY_BYTES,
};
use crate::cookie::{self, CookieSpec, SameSite, Secure};
use crate::token;

pub(super) fn cookie_spec(raw: RawCookie) -> Result<CookieSpec, ConfigError> {
    let name = raw.name.unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_string());
    check_token("cookie.name", &name, "cookie name")?;
    let path = raw.path.unwrap_or_else(|| "/".to_string());
    if !token::is_cookie_path(&path) || path.len() > 1024 {
        return Err(ConfigError::new(
            "cookie.path",
            format!(
                "{path:?} is not a valid cookie path (starts with /, visible ASCII, no ; or ,)"
            ),
        ));
    }
    if let Some(domain) = raw.domain.as_ref().filter(|d| !token::is_cookie_domain(d)) {
        return Err(ConfigError::new(
            "cookie.domain",
            format!("{domain:?} is not a valid domain name"),
        ));
    }
    let secure = raw.secure.map_or(Secure::Auto, |s| s.0);
    let same_site = raw.same_site.map_or(SameSite::Lax, SameSite::from);
    if same_site == SameSite::None && secure == Secure::Never {
        return Err(ConfigError::new(
            "cookie.sameSite",
            "None requires the Secure attribute (browsers drop SameSite=None cookies without it); set cookie.secure to true or \"auto\"",
        ));
    }
    let partitioned = raw.partitioned.unwrap_or(false);
    if partitioned && secure == Secure::Never {
        return Err(ConfigError::new(
            "cookie.partitioned",
            "requires the Secure attribute (browsers drop Partitioned cookies without it); set cookie.secure to true or \"auto\"",
        ));
    }
    Ok(CookieSpec {
        name,
        max_age: raw.max_age.unwrap_or(DEFAULT_MAX_AGE),
        path,
        domain: raw.domain,
        http_only: raw.http_only.unwrap_or(true),
        secure,
        same_site,
        partitioned,
    })
}

/// `cookie.absoluteTimeout` and `cookie.idleTimeout`: 1 second to a year
/// (idle at least 2, so that renewal after half of it is a whole second).
pub(super) fn timeouts(raw: &RawCookie) -> Result<Timeouts, ConfigError> {
    let check = |field: &str, value: Option<u32>, min: u32| match value {
        Some(v) if v < min || v > MAX_SECONDS => Err(ConfigError::new(
            field,
            format!("{v} is out of range ({min} to {MAX_SECONDS} seconds)"),
        )),
        v => Ok(v),
    };
    Ok(Timeouts {
        absolute: check("cookie.absoluteTimeout", raw.absolute_timeout, 1)?,
        idle: check("cookie.idleTimeout", raw.idle_timeout, 2)?,
    })
}

/// Reads the signing key from the environment. The key itself is never put
/// in an error or a log line.
pub(super) fn signing_key(
    field: &str,
    var: &str,
    env: &impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, ConfigError> {
    if var.is_empty() || var.contains('=') || var.contains('\0') {
        return Err(ConfigError::new(
            field,
            format!("{var:?} is not a valid environment variable name"),
        ));
    }
    match env(var) {
        None => Err(ConfigError::new(
            field,
            format!(
                "environment variable {var} is not set in the VM (Envoy: vm_config.environment_variables; Istio: WasmPlugin spec.vmConfig.env)"
            ),
        )),
        Some(key) if key.is_empty() => Err(ConfigError::new(field, format!("environment variable {var} is empty"))),
        Some(key) if key.iter().all(u8::is_ascii_whitespace) => Err(ConfigError::new(
            field,
            format!("environment variable {var} holds only whitespace"),
        )),
        // most often the newline `echo KEY > file` leaves in a Secret: kept,
        // it becomes part of the key, and any other tool signing with the
        // trimmed key makes values this filter calls forged
        Some(key)
            if key.first().is_some_and(u8::is_ascii_whitespace)
                || key.last().is_some_and(u8::is_ascii_whitespace) =>
        {
            Err(ConfigError::new(
                field,
                format!(
                    "the key in {var} starts or ends with whitespace (a newline left by `echo`?); remove it, so that every tool signs with the same bytes"
                ),
            ))
        }
        Some(key) if key.len() < MIN_KEY_BYTES => Err(ConfigError::new(
            field,
            format!("the key in {var} is {} bytes; at least {MIN_KEY_BYTES} are required", key.len()),
        )),
        Some(key) => Ok(key),
    }
}

pub(super) fn generation(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(g) if !cookie::is_generation(&g) => Err(ConfigError::new(
            "generation",
            format!("{g:?} is not valid (1 to 32 characters: letters, digits, - or _)"),
        )),
        g => Ok(g),
    }
}

/// Most previous signing keys accepted at once.
pub const MAX_PREVIOUS_KEYS: usize = 4;

/// `cookie.previousSigningKeyEnvs`: keys whose values are still accepted
/// (and re-signed with the current key), read like the current one.
pub(super) fn previous_signing_keys(
    raw: Option<Vec<String>>,
    current: Option<&str>,
    env: &impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let field = "cookie.previousSigningKeyEnvs";
    let vars = match raw {
        Some(vars) if !vars.is_empty() => vars,
        _ => return Ok(Vec::new()),
    };
    let Some(current) = current else {
        return Err(ConfigError::new(
            field,
            "needs cookie.signingKeyEnv: previous keys are accepted only beside a current one, which re-signs their values",
        ));
    };
    if vars.len() > MAX_PREVIOUS_KEYS {
        return Err(ConfigError::new(
            field,
            format!(
                "has {} entries; at most {MAX_PREVIOUS_KEYS} are allowed",
                vars.len()
            ),
        ));
    }
    vars.iter()
        .enumerate()
        .map(|(i, var)| {
            let field = format!("{field}[{i}]");
            if var == current {
                return Err(ConfigError::new(
                    field,
                    format!("{var:?} is cookie.signingKeyEnv itself; list only keys that signed earlier values"),
                ));
            }
            signing_key(&field, var, env)
        })
        .collect()
}
