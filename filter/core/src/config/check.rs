//! Checks shared by every part of the validation: names that must be
//! tokens, lists with a size limit.

use super::{ConfigError, MAX_NAME_LEN};
use crate::token;

/// A token of 1 to MAX_NAME_LEN characters: pool names, cookie names,
/// header names, hashOn sources.
pub(super) fn check_token<'a>(
    field: &str,
    value: &'a str,
    what: &str,
) -> Result<&'a str, ConfigError> {
    if !token::is_token(value) || value.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            field,
            format!(
                "{value:?} is not a valid {what} (1 to {MAX_NAME_LEN} characters: letters, digits or !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    Ok(value)
}

/// At most `max` entries in the list at `field`.
pub(super) fn check_count(field: &str, len: usize, max: usize) -> Result<(), ConfigError> {
    if len > max {
        return Err(ConfigError::new(
            field,
            format!("has {len} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}
