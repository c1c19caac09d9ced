//! Key names: what a valid one looks like, and how much of a caller's string a message may echo.

use super::ServiceError;

/// At most 64 characters of `text` (a name from a request), quoted and escaped, with its
/// length when cut: what a message may echo of a caller's input.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{:?}… ({} bytes)", &text[..at], text.len()),
        None => format!("{text:?}"),
    }
}

pub fn validate_key_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(format!(
            "key name {} is not valid: use 1-128 letters, digits and . _ - / : @, starting with a letter or digit",
            shown(name)
        )))
    }
}
