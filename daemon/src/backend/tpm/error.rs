//! What a failed TPM command means for the caller, and whether the connection survived it.
//!
//! tpm2-tss reports three kinds of failure in one 32-bit code: the TPM's own response codes
//! (layer 0), and errors of the software stack below it (ESAPI, the TCTI transport). A TPM
//! response leaves the connection usable; a transport error means the TPM (or swtpm, or the
//! resource manager) went away, so the connection is dropped and rebuilt on a later request.

use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};

use crate::backend::BackendError;

/// The layer byte of a TSS2_RC (bits 16-23).
const LAYER_TPM: u32 = 0x00;
const LAYER_ESAPI: u32 = 0x07;
const LAYER_TCTI: u32 = 0x0A;

/// A failure inside a TPM operation, before it is classified.
#[derive(Debug)]
pub enum TpmError {
    /// A tpm2-tss call failed; `command` names it for the message.
    Tss {
        command: &'static str,
        error: tss_esapi::Error,
    },
    /// Already classified.
    Backend(BackendError),
}

/// Adds the command name to a tpm2-tss result.
pub trait Context<T> {
    fn during(self, command: &'static str) -> Result<T, TpmError>;
}

impl<T> Context<T> for tss_esapi::Result<T> {
    fn during(self, command: &'static str) -> Result<T, TpmError> {
        self.map_err(|error| TpmError::Tss { command, error })
    }
}

impl From<BackendError> for TpmError {
    fn from(e: BackendError) -> Self {
        TpmError::Backend(e)
    }
}

/// The raw TSS2_RC behind an error, when it came from the TSS rather than the Rust wrapper.
pub fn raw_code(error: &tss_esapi::Error) -> Option<u32> {
    match error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatZero(rc)) => Some(rc.0),
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatOne(rc)) => Some(rc.0),
        _ => None,
    }
}

/// The TPM's own response kind, or None for wrapper, ESAPI and transport errors.
pub fn tpm_kind(error: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    let raw = raw_code(error)?;
    if (raw >> 16) & 0xff != LAYER_TPM {
        return None;
    }
    match error {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

/// True when the error says the TPM refused an auth value (wrong password or HMAC).
pub fn is_auth_failure(error: &tss_esapi::Error) -> bool {
    matches!(
        tpm_kind(error),
        Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth)
    )
}

/// True when the TPM has run out of object slots (a TPM without a resource manager has 3).
pub fn is_out_of_object_memory(error: &tss_esapi::Error) -> bool {
    matches!(
        tpm_kind(error),
        Some(Tss2ResponseCodeKind::ObjectMemory | Tss2ResponseCodeKind::ObjectHandles)
    )
}

/// Classifies an error; the flag says the connection is lost and must be rebuilt.
pub fn classify(error: TpmError) -> (BackendError, bool) {
    let (command, error) = match error {
        TpmError::Backend(e) => return (e, false),
        TpmError::Tss { command, error } => (command, error),
    };
    let Some(raw) = raw_code(&error) else {
        return (BackendError::Device(format!("{command}: {error}")), false);
    };
    match (raw >> 16) & 0xff {
        LAYER_TCTI => (
            BackendError::Unavailable(format!(
                "the TPM is not reachable ({command}: transport error {raw:#x}); trustd reconnects by itself when it is back"
            )),
            true,
        ),
        // ESAPI keeps per-command state; after a failure below it the context cannot be trusted.
        LAYER_ESAPI => (
            BackendError::Unavailable(format!(
                "the TPM connection failed ({command}: ESAPI error {raw:#x}); trustd reconnects on the next request"
            )),
            true,
        ),
        // The TPM no longer holds what this connection loaded (the primary, the keys): it was
        // reset under trustd (swtpm restarted, a power cycle behind a TCTI that reconnects by
        // itself). Dropping the connection makes the next request load them again.
        LAYER_TPM if was_reset(raw) => (
            BackendError::Unavailable(format!(
                "the TPM was reset and no longer holds trustd's loaded keys ({command}: {raw:#x}); trustd reloads them on the next request"
            )),
            true,
        ),
        LAYER_TPM => (tpm_response(command, &error, raw), false),
        layer => (
            BackendError::Device(format!(
                "{command}: tpm2-tss error {raw:#x} (layer {layer:#x})"
            )),
            true,
        ),
    }
}

/// TPM_RC_INITIALIZE (no TPM2_Startup since the reset), or TPM_RC_REFERENCE_H0..H6 and
/// S0..S6 (a handle names an object or session that is not loaded).
fn was_reset(raw: u32) -> bool {
    const TPM_RC_INITIALIZE: u32 = 0x100;
    let code = raw & 0xffff;
    code == TPM_RC_INITIALIZE || (0x910..=0x91e).contains(&code) && code != 0x917
}

fn tpm_response(command: &str, error: &tss_esapi::Error, raw: u32) -> BackendError {
    use Tss2ResponseCodeKind as K;
    match tpm_kind(error) {
        Some(K::Lockout) => BackendError::Locked(format!(
            "the TPM is in dictionary-attack lockout ({command}): too many failed authorizations (wrong auth values, or TPM crashes and power losses while a protected key was in use); wait for the lockout to expire or reset it with the lockout auth (`tpm2_dictionarylockout -c`)"
        )),
        Some(K::AuthFail | K::BadAuth) => BackendError::Locked(format!(
            "the TPM refused an auth value ({command}); repeated failures lock the TPM out (dictionary-attack protection)"
        )),
        Some(K::Integrity) => BackendError::KeyMissing(format!(
            "{command}: the TPM cannot unwrap the key (TPM_RC_INTEGRITY): it was wrapped by another TPM or before this TPM was cleared"
        )),
        Some(K::KeySize | K::Curve | K::Scheme | K::Hash | K::Asymmetric) => {
            BackendError::Unsupported(format!(
                "{command}: this TPM does not support the requested algorithm or key size ({raw:#x})"
            ))
        }
        Some(K::Retry | K::Testing | K::Yielded | K::NvRate | K::NvUnavailable) => {
            BackendError::Unavailable(format!(
                "the TPM asked to retry later ({command}, {raw:#x})"
            ))
        }
        _ => BackendError::Device(format!("{command} failed: TPM response {raw:#x} ({error})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tss(raw: u32) -> TpmError {
        // The wrapper only builds these from raw codes through the TSS; mimic that.
        let code = if raw & 0x80 != 0 {
            Tss2ResponseCode::FormatOne(tss_esapi::constants::response_code::FormatOneResponseCode(
                raw,
            ))
        } else {
            Tss2ResponseCode::FormatZero(
                tss_esapi::constants::response_code::FormatZeroResponseCode(raw),
            )
        };
        TpmError::Tss {
            command: "TPM2_Sign",
            error: tss_esapi::Error::Tss2Error(code),
        }
    }

    #[test]
    fn a_reset_tpm_drops_the_connection_so_keys_are_loaded_again() {
        // TPM_RC_REFERENCE_H0: the key handle trustd holds names nothing in a restarted TPM.
        let (error, lost) = classify(tss(0x910));
        assert!(lost);
        assert!(matches!(error, BackendError::Unavailable(_)), "{error}");
        // An ordinary refusal keeps the connection.
        let (_, lost) = classify(tss(0x98e));
        assert!(!lost);
    }

    #[test]
    fn transport_errors_drop_the_connection() {
        // TSS2_TCTI_RC_IO_ERROR
        let (error, lost) = classify(tss(0x000a_000a));
        assert!(lost);
        assert!(matches!(error, BackendError::Unavailable(_)), "{error}");
    }

    #[test]
    fn wrong_auth_warns_about_lockout_and_keeps_the_connection() {
        // TPM_RC_AUTH_FAIL for session 1 (0x98e), as TPM2_Sign with a wrong password returns.
        let (error, lost) = classify(tss(0x98e));
        assert!(!lost);
        assert!(matches!(error, BackendError::Locked(_)), "{error}");
        assert!(error.to_string().contains("lock the TPM out"), "{error}");
    }

    #[test]
    fn lockout_is_reported_as_such() {
        // TPM_RC_LOCKOUT (warning 0x921)
        let (error, _) = classify(tss(0x921));
        assert!(
            error.to_string().contains("dictionary-attack lockout"),
            "{error}"
        );
    }
}
