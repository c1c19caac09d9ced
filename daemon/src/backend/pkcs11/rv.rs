//! Classifying PKCS#11 return values by what trustd should do next.

use cryptoki::error::{Error, RvError};

/// The recovery a failed call calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Log in again (tokens forget logins on reinsertion, timeouts, ...) and retry.
    Login,
    /// A cached object handle went stale: find the object again and retry.
    RefindObject,
    /// The session is gone: open another and retry.
    NewSession,
    /// The token or device is gone: report Unavailable and reconnect later.
    Reconnect,
    /// Nothing to retry: report the error.
    None,
}

pub fn recovery(error: &Error) -> Recovery {
    match rv(error) {
        Some(RvError::UserNotLoggedIn) => Recovery::Login,
        Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => Recovery::RefindObject,
        Some(RvError::SessionHandleInvalid | RvError::SessionClosed) => Recovery::NewSession,
        Some(
            RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::SlotIdInvalid
            | RvError::CryptokiNotInitialized
            | RvError::GeneralError,
        ) => Recovery::Reconnect,
        _ => Recovery::None,
    }
}

pub fn rv(error: &Error) -> Option<RvError> {
    match error {
        Error::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// A short, greppable description: `C_Sign: CKR_KEY_HANDLE_INVALID`.
pub fn describe(error: &Error) -> String {
    match error {
        Error::Pkcs11(rv, function) => format!("{function}: {}", ckr_name(rv)),
        other => other.to_string(),
    }
}

/// `RvError::PinIncorrect` -> `CKR_PIN_INCORRECT`.
pub fn ckr_name(rv: &RvError) -> String {
    let camel = format!("{rv:?}");
    let mut name = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_return_values_like_the_spec() {
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(&RvError::UserNotLoggedIn),
            "CKR_USER_NOT_LOGGED_IN"
        );
    }
}
