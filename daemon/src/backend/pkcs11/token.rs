//! A token trustd is connected and logged in to: its pooled sessions and cached handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use super::rv;
use super::OpError;
use crate::backend::BackendError;
use crate::secret::SecretSource;

pub struct Token {
    pub ctx: Pkcs11,
    pub slot: Slot,
    /// "SoftHSM v2 token 'trustd' (serial 772b4da31d82eacd)".
    pub description: String,
    pub mechanisms: Vec<MechanismType>,
    idle: Mutex<Vec<Session>>,
    /// Private key handles by CKA_ID: finding an object costs more than signing with it.
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    /// Counts live tokens so the module is only finalized when no session can be in use.
    live: Arc<AtomicUsize>,
}

impl Drop for Token {
    fn drop(&mut self) {
        // Close the sessions before announcing that none are left.
        self.idle.get_mut().expect("session pool").clear();
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Token {
    pub fn new(
        ctx: Pkcs11,
        slot: Slot,
        description: String,
        mechanisms: Vec<MechanismType>,
        live: Arc<AtomicUsize>,
    ) -> Self {
        live.fetch_add(1, Ordering::AcqRel);
        Token {
            ctx,
            slot,
            description,
            mechanisms,
            idle: Mutex::new(Vec::new()),
            handles: Mutex::new(HashMap::new()),
            live,
        }
    }

    /// Asks the module whether the token is still there and usable. Tokens can vanish without
    /// any call failing with CKR_TOKEN_NOT_PRESENT (SoftHSM keeps listing a token whose
    /// directory was deleted, but its objects disappear), so this is checked before reporting
    /// a key as missing and on every status request.
    pub fn probe(&self) -> Result<(), String> {
        match self.ctx.get_token_info(self.slot) {
            Ok(info) => {
                tracing::debug!(
                    initialized = info.token_initialized(),
                    user_pin_initialized = info.user_pin_initialized(),
                    error_state = info.error_state(),
                    "token probe"
                );
                if !info.token_initialized() || info.error_state() {
                    Err(format!("{} is no longer initialized", self.description))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(format!(
                "{} is not available ({})",
                self.description,
                rv::describe(&e)
            )),
        }
    }

    pub fn offers(&self, mechanism: MechanismType) -> bool {
        self.mechanisms.contains(&mechanism)
    }

    /// An idle session, or a new one when all are busy (the backend's semaphore bounds how
    /// many exist).
    pub fn checkout(&self) -> Result<Session, cryptoki::error::Error> {
        if let Some(session) = self.idle.lock().expect("session pool").pop() {
            return Ok(session);
        }
        self.ctx.open_rw_session(self.slot)
    }

    pub fn checkin(&self, session: Session) {
        self.idle.lock().expect("session pool").push(session);
    }

    pub fn open_session(&self) -> Result<Session, cryptoki::error::Error> {
        self.ctx.open_rw_session(self.slot)
    }

    /// The private key object with this CKA_ID.
    pub fn private_key(&self, session: &Session, id: &[u8]) -> Result<ObjectHandle, OpError> {
        if let Some(handle) = self.handles.lock().expect("handle cache").get(id) {
            return Ok(*handle);
        }
        let found = session.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.to_vec()),
        ])?;
        let handle = match found.as_slice() {
            [handle] => *handle,
            [] => {
                return Err(OpError::Backend(BackendError::KeyMissing(format!(
                    "the key with CKA_ID {} is in trustd's inventory but not on {}: was the token re-initialized, or the key deleted with another tool?",
                    hex::encode(id),
                    self.description
                ))))
            }
            _ => {
                return Err(OpError::Backend(BackendError::Device(format!(
                    "{} holds {} private keys with CKA_ID {}; refusing to guess which one to use",
                    self.description,
                    found.len(),
                    hex::encode(id)
                ))))
            }
        };
        self.handles
            .lock()
            .expect("handle cache")
            .insert(id.to_vec(), handle);
        Ok(handle)
    }

    pub fn forget_handles(&self) {
        self.handles.lock().expect("handle cache").clear();
    }

    pub fn forget_handle(&self, id: &[u8]) {
        self.handles.lock().expect("handle cache").remove(id);
    }
}

/// Logs the application in to the token (PKCS#11 logins are per application, so one login
/// covers every session), reading the PIN from its source just for this call.
///
/// `rejected` is the fingerprint of a PIN the token already refused: trying it again would only
/// burn a retry and move the token towards lockout, so it is refused here without asking the
/// token.
pub fn login(
    session: &Session,
    source: &SecretSource,
    rejected: Option<[u8; 32]>,
    token: &str,
) -> Result<(), LoginError> {
    let secret = source
        .read()
        .map_err(|e| LoginError::Failed(BackendError::Locked(format!("{token} is locked: {e}"))))?;
    if Some(secret.fingerprint) == rejected {
        return Err(LoginError::Failed(BackendError::Locked(format!(
            "{token} is locked: the user PIN in {} was already rejected by the token; trustd will not retry it (each wrong try moves the token towards lockout): put the right PIN there",
            source.describe()
        ))));
    }
    match session.login(UserType::User, Some(&secret.value)) {
        Ok(()) => Ok(()),
        Err(e) => match rv::rv(&e) {
            Some(RvError::UserAlreadyLoggedIn) => Ok(()),
            Some(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange) => {
                Err(LoginError::PinRejected {
                    fingerprint: secret.fingerprint,
                    error: BackendError::Locked(format!(
                        "{token} is locked: it rejected the user PIN from {} ({}); fix the PIN there — trustd will not try the same PIN again",
                        source.describe(),
                        rv::describe(&e)
                    )),
                })
            }
            Some(RvError::PinLocked) => Err(LoginError::Failed(BackendError::Locked(format!(
                "{token} is locked: its user PIN is blocked (CKR_PIN_LOCKED); the security officer must unblock it with the token's tools"
            )))),
            Some(RvError::PinExpired) => Err(LoginError::Failed(BackendError::Locked(format!(
                "{token} is locked: its user PIN has expired (CKR_PIN_EXPIRED); set a new PIN with the token's tools"
            )))),
            _ => Err(LoginError::Other(e)),
        },
    }
}

pub enum LoginError {
    PinRejected {
        fingerprint: [u8; 32],
        error: BackendError,
    },
    Failed(BackendError),
    Other(cryptoki::error::Error),
}
