//! PKCS#11 backend: any token behind a PKCS#11 module (YubiHSM 2, Nitrokey HSM, CloudHSM,
//! tpm2-pkcs11, SoftHSM2).
//!
//! The module is loaded and initialized once. trustd then finds the token by label or serial
//! (slot numbers are not stable), logs in once, and keeps a pool of sessions: a pooled sign
//! costs tens of microseconds where open + login + find + sign costs milliseconds. Object
//! handles are cached by CKA_ID. When the token forgets the login or a handle goes stale, the
//! operation logs in or finds again and retries once; when the token disappears, callers get
//! Unavailable and trustd reconnects on a later request. All device I/O runs on blocking
//! threads, never on the async runtime.

mod objects;
mod rv;
mod token;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use tokio::sync::Semaphore;

use self::rv::Recovery;
use self::token::{LoginError, Token};
use super::workers::Workers;
use super::{Backend, BackendError, BackendKind, BackendState, BackendStatus, NewKey, SignInput};
use crate::algorithm::KeyAlgorithm;
use crate::config::Pkcs11Config;
use crate::inventory::DeviceHandle;
use crate::private_key::PrivateKey;

/// How often a missing token is looked for again while requests keep arriving.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

const ALGORITHMS: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::Ed25519,
    KeyAlgorithm::Rsa3072,
];

/// An error inside a device operation, before it is classified.
#[derive(Debug)]
pub enum OpError {
    Pkcs11(cryptoki::error::Error),
    Backend(BackendError),
    /// The device returned something malformed.
    Invalid(String),
}

impl From<cryptoki::error::Error> for OpError {
    fn from(e: cryptoki::error::Error) -> Self {
        OpError::Pkcs11(e)
    }
}

pub struct Pkcs11Backend {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    workers: Workers,
}

struct Shared {
    config: Pkcs11Config,
    module: Mutex<Option<Pkcs11>>,
    link: Mutex<Link>,
    /// Connected tokens still alive (in the link or in an in-flight operation).
    live_tokens: Arc<AtomicUsize>,
    /// Written while a key is created or destroyed on the token, read by every other
    /// operation: an object change runs alone. SoftHSM2 returns CKR_TEMPLATE_INCONSISTENT or
    /// CKR_GENERAL_ERROR for concurrent C_GenerateKeyPair/C_CreateObject
    /// (softhsm/SoftHSMv2#573), and CKR_GENERAL_ERROR now and then (about one run in eight of
    /// the parallel batch test) when a C_GenerateKeyPair races other sessions' finds and
    /// signatures, which re-read the token's object files. Signatures stay parallel with
    /// each other; key changes are rare.
    object_changes: Arc<RwLock<()>>,
}

enum Link {
    Up(Arc<Token>),
    Down {
        error: BackendError,
        at: Option<Instant>,
        /// Fingerprint of a PIN the token refused, so it is never tried twice.
        rejected_pin: Option<[u8; 32]>,
    },
}

impl Pkcs11Backend {
    pub fn new(config: Pkcs11Config) -> Self {
        let permits = Arc::new(Semaphore::new(config.sessions));
        let workers = Workers::new(&format!("pkcs11-{}", config.name), config.worker_threads());
        Pkcs11Backend {
            workers,
            shared: Arc::new(Shared {
                config,
                module: Mutex::new(None),
                link: Mutex::new(Link::Down {
                    error: BackendError::Unavailable("not connected yet".into()),
                    at: None,
                    rejected_pin: None,
                }),
                object_changes: Arc::default(),
                live_tokens: Arc::new(AtomicUsize::new(0)),
            }),
            permits,
        }
    }

    /// Runs `op` with a pooled, logged-in session on a blocking thread.
    async fn run<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnMut(&Token, &Session) -> Result<T, OpError> + Send + 'static,
    {
        self.run_as(false, op).await
    }

    /// Runs `op`, which creates or destroys objects, with no other operation on the token.
    async fn run_changing<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnMut(&Token, &Session) -> Result<T, OpError> + Send + 'static,
    {
        self.run_as(true, op).await
    }

    async fn run_as<T, F>(&self, changing: bool, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnMut(&Token, &Session) -> Result<T, OpError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let shared = self.shared.clone();
        self.workers
            .run(move || {
                let lock = shared.object_changes.clone();
                let result = if changing {
                    let _alone = lock.write().unwrap_or_else(|e| e.into_inner());
                    shared.run(op)
                } else {
                    let _shared = lock.read().unwrap_or_else(|e| e.into_inner());
                    shared.run(op)
                };
                drop(permit);
                result
            })
            .await
            .map_err(|_| {
                BackendError::Device("the PKCS#11 worker failed (see trustd's log)".into())
            })?
    }
}

impl Shared {
    fn token_name(&self) -> String {
        match (&self.config.token_label, &self.config.token_serial) {
            (Some(label), _) => format!("PKCS#11 token {label:?}"),
            (None, Some(serial)) => format!("PKCS#11 token with serial {serial:?}"),
            (None, None) => "PKCS#11 token".into(),
        }
    }

    /// The connected token, connecting (at most every RECONNECT_INTERVAL) when it is not.
    fn token(&self) -> Result<Arc<Token>, BackendError> {
        let mut link = self.link.lock().expect("link lock");
        let rejected = match &*link {
            Link::Up(token) => return Ok(token.clone()),
            Link::Down {
                error,
                at: Some(at),
                rejected_pin,
            } => {
                // A locked token is re-checked at once: the PIN source may have been fixed, and
                // a PIN already refused is recognised without asking the token.
                let locked = matches!(error, BackendError::Locked(_));
                if !locked && at.elapsed() < RECONNECT_INTERVAL {
                    return Err(error.clone());
                }
                *rejected_pin
            }
            Link::Down { rejected_pin, .. } => *rejected_pin,
        };
        match self.connect(rejected) {
            Ok(token) => {
                tracing::info!(backend = %self.config.name, device = %token.description, "token connected");
                *link = Link::Up(token.clone());
                Ok(token)
            }
            Err((error, newly_rejected)) => {
                tracing::warn!(backend = %self.config.name, %error, "token not usable");
                *link = Link::Down {
                    error: error.clone(),
                    at: Some(Instant::now()),
                    rejected_pin: newly_rejected.or(rejected),
                };
                Err(error)
            }
        }
    }

    /// The loaded module, and whether it was loaded just now.
    fn module(&self) -> Result<(Pkcs11, bool), BackendError> {
        let mut module = self.module.lock().expect("module lock");
        if let Some(ctx) = &*module {
            return Ok((ctx.clone(), false));
        }
        let path = &self.config.module;
        let misconfigured = |what: String| {
            BackendError::Misconfigured(format!(
                "backend {:?}: {what}; check `module` in its [[backend]] section",
                self.config.name
            ))
        };
        let ctx = Pkcs11::new(path).map_err(|e| {
            misconfigured(format!(
                "{} is not a loadable PKCS#11 module ({e})",
                path.display()
            ))
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(e) if rv::rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
            Err(e) => {
                return Err(misconfigured(format!(
                    "{} failed to initialize ({})",
                    path.display(),
                    rv::describe(&e)
                )))
            }
        }
        *module = Some(ctx.clone());
        Ok((ctx, true))
    }

    /// Finalizes the module so the next connection initializes it afresh: some modules
    /// (SoftHSM among them) only discover tokens in C_Initialize. Only done when no connected
    /// token, and so no session, is alive.
    fn reset_module(&self) -> bool {
        if self.live_tokens.load(Ordering::Acquire) != 0 {
            return false;
        }
        let Some(ctx) = self.module.lock().expect("module lock").take() else {
            return false;
        };
        tracing::info!(backend = %self.config.name, "re-initializing the PKCS#11 module to look for the token again");
        if let Err(e) = ctx.finalize() {
            tracing::warn!(error = %rv::describe(&e), "C_Finalize failed");
        }
        true
    }

    /// The slot holding the configured token, found by label and/or serial.
    fn find_token(
        &self,
        ctx: &Pkcs11,
    ) -> Result<(cryptoki::slot::Slot, cryptoki::slot::TokenInfo), BackendError> {
        let slots = ctx.get_slots_with_token().map_err(|e| {
            BackendError::Unavailable(format!(
                "{} cannot list slots: {}",
                self.config.module.display(),
                rv::describe(&e)
            ))
        })?;
        let mut seen = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim().to_owned();
            let serial = info.serial_number().trim().to_owned();
            let wanted = match (&self.config.token_label, &self.config.token_serial) {
                (Some(l), Some(s)) => *l == label && *s == serial,
                (Some(l), None) => *l == label,
                (None, Some(s)) => *s == serial,
                (None, None) => false,
            };
            if wanted && chosen.is_none() {
                chosen = Some((slot, info));
            } else if info.token_initialized() {
                seen.push(format!("{label:?} (serial {serial})"));
            }
        }
        let Some((slot, info)) = chosen else {
            let present = if seen.is_empty() {
                "no initialized tokens are present".to_owned()
            } else {
                format!("tokens present: {}", seen.join(", "))
            };
            return Err(BackendError::Unavailable(format!(
                "{} not found in {}; {present}",
                self.token_name(),
                self.config.module.display()
            )));
        };
        Ok((slot, info))
    }

    fn connect(
        &self,
        rejected: Option<[u8; 32]>,
    ) -> Result<Arc<Token>, (BackendError, Option<[u8; 32]>)> {
        let (mut ctx, fresh) = self.module().map_err(|e| (e, None))?;
        let unavailable = |what: String| (BackendError::Unavailable(what), None);
        let (slot, info) = match self.find_token(&ctx) {
            Ok(found) => found,
            Err(error) if !fresh && self.reset_module() => {
                ctx = self.module().map_err(|e| (e, None))?.0;
                self.find_token(&ctx).map_err(|_| (error, None))?
            }
            Err(error) => return Err((error, None)),
        };
        let description = format!(
            "{} token {:?} (serial {}, {})",
            info.model()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            info.label().trim(),
            info.serial_number().trim(),
            info.manufacturer_id().trim()
        );
        if info.user_pin_locked() {
            return Err((
                BackendError::Locked(format!(
                    "{description} is locked: its user PIN is blocked; the security officer must unblock it"
                )),
                None,
            ));
        }
        let mechanisms = ctx.get_mechanism_list(slot).map_err(|e| {
            unavailable(format!(
                "{description}: cannot list mechanisms: {}",
                rv::describe(&e)
            ))
        })?;
        let token = Token::new(ctx, slot, description, mechanisms, self.live_tokens.clone());
        let session = token.open_session().map_err(|e| {
            unavailable(format!(
                "{}: cannot open a session: {}",
                token.description,
                rv::describe(&e)
            ))
        })?;
        match token::login(&session, &self.config.pin, rejected, &token.description) {
            Ok(()) => {}
            Err(LoginError::PinRejected { fingerprint, error }) => {
                return Err((error, Some(fingerprint)))
            }
            Err(LoginError::Failed(error)) => return Err((error, None)),
            Err(LoginError::Other(e)) => {
                return Err(unavailable(format!(
                    "{}: login failed: {}",
                    token.description,
                    rv::describe(&e)
                )))
            }
        }
        token.checkin(session);
        Ok(Arc::new(token))
    }

    fn mark_down(&self, token: &Arc<Token>, error: BackendError, rejected_pin: Option<[u8; 32]>) {
        let mut link = self.link.lock().expect("link lock");
        if let Link::Up(current) = &*link {
            if Arc::ptr_eq(current, token) {
                tracing::warn!(backend = %self.config.name, %error, "token lost");
                *link = Link::Down {
                    error,
                    at: Some(Instant::now()),
                    rejected_pin,
                };
            }
        }
    }

    fn run<T>(
        &self,
        mut op: impl FnMut(&Token, &Session) -> Result<T, OpError>,
    ) -> Result<T, BackendError> {
        let token = self.token()?;
        let gone = |e: &cryptoki::error::Error| {
            BackendError::Unavailable(format!(
                "{} is not available ({}); trustd will reconnect when it is back",
                token.description,
                rv::describe(e)
            ))
        };
        let mut session = match token.checkout() {
            Ok(session) => session,
            Err(e) => {
                let error = gone(&e);
                self.mark_down(&token, error.clone(), None);
                return Err(error);
            }
        };
        let mut retried = false;
        loop {
            let error = match op(&token, &session) {
                Ok(value) => {
                    token.checkin(session);
                    return Ok(value);
                }
                Err(OpError::Backend(error @ BackendError::KeyMissing(_))) => {
                    // A key that vanished may mean the token itself went away.
                    if let Err(problem) = token.probe() {
                        let error = BackendError::Unavailable(format!(
                            "{problem}; trustd will reconnect when it is back"
                        ));
                        self.mark_down(&token, error.clone(), None);
                        return Err(error);
                    }
                    token.checkin(session);
                    return Err(error);
                }
                Err(OpError::Backend(error)) => {
                    token.checkin(session);
                    return Err(error);
                }
                Err(OpError::Invalid(message)) => {
                    token.checkin(session);
                    return Err(BackendError::Device(format!(
                        "{}: {message}",
                        token.description
                    )));
                }
                Err(OpError::Pkcs11(error)) => error,
            };
            let recovery = rv::recovery(&error);
            if recovery == Recovery::Reconnect {
                let error = gone(&error);
                self.mark_down(&token, error.clone(), None);
                return Err(error);
            }
            if retried || recovery == Recovery::None {
                token.checkin(session);
                return Err(classify_other(&token.description, &error));
            }
            retried = true;
            match recovery {
                Recovery::Login => {
                    tracing::info!(backend = %self.config.name, "token forgot the login; logging in again");
                    match token::login(&session, &self.config.pin, None, &token.description) {
                        Ok(()) => {}
                        Err(LoginError::PinRejected { fingerprint, error }) => {
                            self.mark_down(&token, error.clone(), Some(fingerprint));
                            return Err(error);
                        }
                        Err(LoginError::Failed(error)) => {
                            self.mark_down(&token, error.clone(), None);
                            return Err(error);
                        }
                        Err(LoginError::Other(e)) => return Err(gone(&e)),
                    }
                }
                Recovery::RefindObject => token.forget_handles(),
                Recovery::NewSession => {
                    session = match token.open_session() {
                        Ok(session) => session,
                        Err(e) => {
                            let error = gone(&e);
                            self.mark_down(&token, error.clone(), None);
                            return Err(error);
                        }
                    }
                }
                Recovery::Reconnect | Recovery::None => unreachable!("handled above"),
            }
        }
    }

    fn status(&self) -> BackendStatus {
        let token = self.token().and_then(|token| match token.probe() {
            Ok(()) => Ok(token),
            Err(problem) => {
                let error = BackendError::Unavailable(format!(
                    "{problem}; trustd will reconnect when it is back"
                ));
                self.mark_down(&token, error.clone(), None);
                Err(error)
            }
        });
        match token {
            Ok(token) => BackendStatus {
                state: BackendState::Ready,
                detail: "logged in".into(),
                device: token.description.clone(),
                algorithms: ALGORITHMS
                    .into_iter()
                    .filter(|a| {
                        objects::required_mechanisms(*a)
                            .iter()
                            .all(|(m, _)| token.offers(*m))
                    })
                    .collect(),
                queue: None,
            },
            Err(error) => BackendStatus {
                state: match error {
                    BackendError::Locked(_) => BackendState::Locked,
                    BackendError::Misconfigured(_) => BackendState::Misconfigured,
                    _ => BackendState::Unavailable,
                },
                detail: error.to_string(),
                device: self.token_name(),
                algorithms: Vec::new(),
                queue: None,
            },
        }
    }
}

fn classify_other(device: &str, error: &cryptoki::error::Error) -> BackendError {
    let message = format!("{device}: {}", rv::describe(error));
    match rv::rv(error) {
        Some(
            RvError::MechanismInvalid
            | RvError::MechanismParamInvalid
            | RvError::KeyTypeInconsistent
            | RvError::KeyFunctionNotPermitted
            | RvError::FunctionNotSupported
            | RvError::AttributeValueInvalid
            | RvError::TemplateInconsistent,
        ) => BackendError::Unsupported(message),
        _ => BackendError::Device(message),
    }
}

fn require_mechanisms(
    token: &Token,
    algorithm: KeyAlgorithm,
    for_generation: bool,
) -> Result<(), OpError> {
    let required = objects::required_mechanisms(algorithm);
    let needed = if for_generation {
        &required[..]
    } else {
        &required[1..]
    };
    for (mechanism, name) in needed {
        if !token.offers(*mechanism) {
            return Err(OpError::Backend(BackendError::Unsupported(format!(
                "{} does not offer {name}, which {} keys need",
                token.description,
                algorithm.as_str()
            ))));
        }
    }
    Ok(())
}

/// Refuses to keep a key the token would let out: some tokens ignore CKA_EXTRACTABLE=false.
fn ensure_non_extractable(session: &Session, private: ObjectHandle) -> Result<(), OpError> {
    let attrs = session.get_attributes(
        private,
        &[AttributeType::Extractable, AttributeType::Sensitive],
    )?;
    for attr in attrs {
        match attr {
            Attribute::Extractable(true) | Attribute::Sensitive(false) => {
                return Err(OpError::Backend(BackendError::Unsupported(
                    "the token created the private key as extractable or not sensitive despite the template; it was deleted".into(),
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a key just created on the token and reads its public half; on any failure both
/// objects are destroyed, so a key trustd cannot vouch for never stays on the token.
fn finish_new_key(
    session: &Session,
    id: &[u8],
    private: ObjectHandle,
    public: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<NewKey, OpError> {
    let checked = ensure_non_extractable(session, private)
        .and_then(|()| objects::read_public_key(session, public, algorithm));
    match checked {
        Ok((public_key, algorithm)) => Ok(NewKey {
            device: DeviceHandle::Pkcs11 {
                cka_id: id.to_vec(),
            },
            algorithm,
            public_key,
            attestation: None,
        }),
        Err(e) => {
            destroy_quietly(session, &[private, public]);
            Err(e)
        }
    }
}

fn destroy_quietly(session: &Session, objects: &[ObjectHandle]) {
    for object in objects {
        if let Err(e) = session.destroy_object(*object) {
            tracing::error!(error = %rv::describe(&e), "could not remove a half-created key object");
        }
    }
}

fn pss_sha256() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32u64.into(),
    }
}

#[async_trait]
impl super::KeyDiscovery for Pkcs11Backend {
    async fn find_keys(
        &self,
        label_prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, NewKey)>, BackendError> {
        let prefix = label_prefix.as_bytes().to_vec();
        self.run(move |_token, session| {
            let publics = session.find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Token(true),
            ])?;
            let mut found = Vec::new();
            for public in publics {
                if found.len() >= limit {
                    break;
                }
                let wanted = [
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                ];
                let (mut label, mut id, mut kind) = (None, None, None);
                for attribute in session.get_attributes(public, &wanted)? {
                    match attribute {
                        Attribute::Label(l) => label = Some(l),
                        Attribute::Id(i) => id = Some(i),
                        Attribute::KeyType(k) => kind = Some(k),
                        _ => {}
                    }
                }
                let (Some(label), Some(id), Some(kind)) = (label, id, kind) else {
                    continue;
                };
                let Ok(label) = String::from_utf8(label) else {
                    continue;
                };
                if !label.as_bytes().starts_with(&prefix) {
                    continue;
                }
                let algorithm = match kind {
                    KeyType::EC => KeyAlgorithm::EcdsaP256,
                    KeyType::EC_EDWARDS => KeyAlgorithm::Ed25519,
                    KeyType::RSA => KeyAlgorithm::Rsa3072,
                    _ => continue,
                };
                // A key of a shape trustd does not use (another curve) is not one of its own.
                let Ok((public_key, algorithm)) =
                    objects::read_public_key(session, public, algorithm)
                else {
                    continue;
                };
                found.push((
                    label,
                    NewKey {
                        device: DeviceHandle::Pkcs11 { cka_id: id },
                        algorithm,
                        public_key,
                        attestation: None,
                    },
                ));
            }
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl Backend for Pkcs11Backend {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    fn key_discovery(&self) -> Option<&dyn super::KeyDiscovery> {
        Some(self)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Pkcs11
    }

    async fn status(&self) -> BackendStatus {
        let shared = self.shared.clone();
        self.workers
            .run(move || shared.status())
            .await
            .unwrap_or_else(|_| BackendStatus {
                state: BackendState::Unavailable,
                detail: "status check failed (see trustd's log)".into(),
                device: String::new(),
                algorithms: Vec::new(),
                queue: None,
            })
    }

    async fn generate(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        _options: &super::GenerateOptions,
    ) -> Result<NewKey, BackendError> {
        if !ALGORITHMS.contains(&algorithm) {
            return Err(BackendError::Unsupported(format!(
                "the PKCS#11 backend generates ecdsa-p256, ed25519 and rsa-3072 keys, not {}",
                algorithm.as_str()
            )));
        }
        let label = label.to_owned();
        self.run_changing(move |token, session| {
            require_mechanisms(token, algorithm, true)?;
            let id: [u8; 16] = rand::random();
            let (public, private) = objects::generation_templates(algorithm, &id, &label);
            let (pub_handle, priv_handle) = session.generate_key_pair(
                &objects::key_pair_mechanism(algorithm),
                &public,
                &private,
            )?;
            finish_new_key(session, &id, priv_handle, pub_handle, algorithm)
        })
        .await
    }

    async fn import(&self, label: &str, key: PrivateKey) -> Result<NewKey, BackendError> {
        let label = label.to_owned();
        self.run_changing(move |token, session| {
            let algorithm = key.algorithm();
            require_mechanisms(token, algorithm, false)?;
            let id: [u8; 16] = rand::random();
            let (public, mut private) = objects::import_templates(&key, &id, &label)?;
            let created = session.create_object(&private);
            objects::zeroize_template(&mut private);
            let priv_handle = created.map_err(|e| import_refused(token, algorithm, e))?;
            let pub_handle = match session.create_object(&public) {
                Ok(handle) => handle,
                Err(e) => {
                    destroy_quietly(session, &[priv_handle]);
                    return Err(e.into());
                }
            };
            finish_new_key(session, &id, priv_handle, pub_handle, algorithm)
        })
        .await
    }

    async fn sign(
        &self,
        device: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let cka_id = cka_id(device)?;
        self.run(move |token, session| {
            let key = token.private_key(session, &cka_id)?;
            let signature = match (algorithm, &input) {
                (KeyAlgorithm::EcdsaP256, SignInput::Sha256(digest)) => {
                    session.sign(&Mechanism::Ecdsa, key, digest)?
                }
                (KeyAlgorithm::Ed25519, SignInput::Message(message)) => session.sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    key,
                    message,
                )?,
                (
                    KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096,
                    SignInput::Sha256(digest),
                ) => session.sign(&Mechanism::RsaPkcsPss(pss_sha256()), key, digest)?,
                _ => {
                    return Err(OpError::Backend(BackendError::Unsupported(format!(
                        "{} keys cannot sign this kind of input",
                        algorithm.as_str()
                    ))))
                }
            };
            if algorithm == KeyAlgorithm::EcdsaP256 && signature.len() != 64 {
                return Err(OpError::Invalid(format!(
                    "CKM_ECDSA returned {} bytes, not 64",
                    signature.len()
                )));
            }
            Ok(signature)
        })
        .await
    }

    async fn delete(&self, device: &DeviceHandle) -> Result<(), BackendError> {
        let cka_id = cka_id(device)?;
        self.run_changing(move |token, session| {
            let objects = session.find_objects(&[Attribute::Id(cka_id.clone())])?;
            for object in objects {
                session.destroy_object(object)?;
            }
            token.forget_handle(&cka_id);
            Ok(())
        })
        .await
    }
}

/// A token that will not take a private key as a non-extractable, sensitive token object
/// says so with a template error; name what was asked and what to do instead.
fn import_refused(
    token: &Token,
    algorithm: KeyAlgorithm,
    error: cryptoki::error::Error,
) -> OpError {
    match rv::rv(&error) {
        Some(
            RvError::AttributeValueInvalid
            | RvError::AttributeTypeInvalid
            | RvError::TemplateInconsistent
            | RvError::TemplateIncomplete
            | RvError::FunctionNotSupported,
        ) => OpError::Backend(BackendError::Unsupported(format!(
            "{} does not import {} private keys ({}): it refused a private key object with CKA_TOKEN, CKA_PRIVATE and CKA_SENSITIVE true and CKA_EXTRACTABLE false. Generate the key on the device instead (`trustctl key generate`), or load it into a backend whose token imports keys",
            token.description,
            algorithm.as_str(),
            rv::describe(&error)
        ))),
        _ => OpError::Pkcs11(error),
    }
}

/// The CKA_ID a key record points at; a record of another backend kind is a configuration
/// mistake (the key's backend was renamed onto a different device).
fn cka_id(device: &DeviceHandle) -> Result<Vec<u8>, BackendError> {
    match device {
        DeviceHandle::Pkcs11 { cka_id } => Ok(cka_id.clone()),
        other => Err(BackendError::Misconfigured(format!(
            "the key is a {} key, not a PKCS#11 object: its backend in trustd's config changed kind",
            other.kind_name()
        ))),
    }
}
