//! The TPM itself: one ESAPI context, the storage primary, and the keys loaded under it.
//!
//! Only the backend's worker thread touches a `Device`, so nothing here locks. A connection is
//! built on demand and thrown away on a transport error; the next request rebuilds it (at most
//! every `RECONNECT_INTERVAL`), which is how trustd survives a TPM or swtpm restart. Keys are
//! loaded from their wrapped blobs when first used and kept loaded (up to `loaded_keys`);
//! object slots are few, so attestation flushes them first.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sha2::{Digest as _, Sha256};
use tss_esapi::abstraction::{ak, ek, AsymmetricAlgorithmSelection};
use tss_esapi::constants::{tss::TPM2_RH_NULL, PropertyTag, SessionType, StructureTag};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Data, Digest, EncryptedSecret, HashScheme, HashcheckTicket, IdObject, Private, Public,
    Signature, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context as Esys, TctiNameConf};

use super::ak_store::{AkBlobs, AkStore};
use super::error::{classify, is_auth_failure, is_out_of_object_memory, Context, TpmError};
use super::templates;
use crate::algorithm::KeyAlgorithm;
use crate::backend::{BackendError, BackendState, BackendStatus, NewKey, SignInput};
use crate::config::TpmConfig;
use crate::inventory::{Attestation, DeviceHandle, TpmEvidence};
use crate::secret::SecretSource;

/// How often a missing TPM is looked for again while requests keep arriving.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// A wrapped key as the inventory keeps it.
pub struct KeyBlobs {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
}

impl KeyBlobs {
    pub fn from_handle(handle: &DeviceHandle) -> Result<KeyBlobs, BackendError> {
        match handle {
            DeviceHandle::Tpm { private, public } => Ok(KeyBlobs {
                private: private.clone(),
                public: public.clone(),
            }),
            other => Err(BackendError::Misconfigured(format!(
                "the key is a {} key, not a TPM key: its backend in trustd's config changed kind",
                other.kind_name()
            ))),
        }
    }

    fn id(&self) -> [u8; 32] {
        Sha256::digest(&self.private).into()
    }
}

pub struct Device {
    settings: Settings,
    connection: Option<Connection>,
    down: Option<(Instant, BackendError)>,
}

/// Configuration and what trustd learned about auth values, which outlive connections.
struct Settings {
    config: TpmConfig,
    ak_store: AkStore,
    /// Fingerprint of an owner auth value the TPM refused: never sent again, since every
    /// refusal counts towards the dictionary-attack lockout.
    rejected_owner_auth: Option<[u8; 32]>,
    /// Per key (SHA-256 of its wrapped blob): the fingerprint of a refused key auth value.
    rejected_key_auth: HashMap<[u8; 32], [u8; 32]>,
}

/// A TPM2_Certify result: the TPMS_ATTEST as signed, and the AK's raw r||s signature.
struct Certification {
    info: Vec<u8>,
    signature: Vec<u8>,
}

struct Connection {
    context: Esys,
    primary: KeyHandle,
    /// Loaded signing keys, most recently used first.
    loaded: VecDeque<([u8; 32], KeyHandle)>,
    description: String,
}

impl Device {
    pub fn new(config: TpmConfig, state_dir: PathBuf) -> Device {
        let ak_store = AkStore::new(&state_dir, &config.name);
        Device {
            settings: Settings {
                config,
                ak_store,
                rejected_owner_auth: None,
                rejected_key_auth: HashMap::new(),
            },
            connection: None,
            down: None,
        }
    }

    /// The backend's configured name.
    pub fn name(&self) -> &str {
        &self.settings.config.name
    }

    pub fn status(&mut self) -> BackendStatus {
        let result = self.with_connection(|conn, _| {
            // A cheap round trip, so a TPM that vanished since the last request shows. Not
            // `get_tpm_property`: tss-esapi caches what it read once and never asks again.
            conn.context
                .get_capability(
                    tss_esapi::constants::CapabilityType::TpmProperties,
                    PropertyTag::LockoutCounter.into(),
                    1,
                )
                .during("reading TPM properties")
        });
        let device = self
            .connection
            .as_ref()
            .map(|c| c.description.clone())
            .unwrap_or_else(|| format!("TPM at {}", self.settings.config.tcti));
        let (state, detail) = match result {
            Ok(_) => (BackendState::Ready, "ready".to_owned()),
            Err(e @ BackendError::Locked(_)) => (BackendState::Locked, e.to_string()),
            Err(e @ (BackendError::Misconfigured(_) | BackendError::Unsupported(_))) => {
                (BackendState::Misconfigured, e.to_string())
            }
            Err(e) => (BackendState::Unavailable, e.to_string()),
        };
        BackendStatus {
            state,
            detail,
            device,
            algorithms: templates::ALGORITHMS.to_vec(),
            queue: None,
        }
    }

    pub fn generate(&mut self, algorithm: KeyAlgorithm) -> Result<NewKey, BackendError> {
        // A key with no auth value has nothing to guess: dictionary-attack protection would
        // only count each unorderly TPM shutdown (a crash, a power loss) against it, until the
        // TPM locks every key out. A configured key_auth may be a guessable password: those
        // keys keep the protection.
        let dictionary_attack_protected = self.settings.config.key_auth.is_some();
        let template = templates::signing_key(algorithm, dictionary_attack_protected)
            .ok_or_else(|| {
                BackendError::Unsupported(format!(
                    "a TPM backend generates {}, not {}",
                    names(&templates::ALGORITHMS),
                    algorithm.as_str()
                ))
            })?
            .map_err(|e| BackendError::Device(format!("building the key template: {e}")))?;
        let created = self.with_connection(|conn, settings| {
            let auth = settings.key_auth()?;
            let primary = conn.primary;
            conn.context
                .execute_with_nullauth_session(|ctx| {
                    ctx.create(primary, template, auth, None, None, None)
                })
                .during("TPM2_Create")
        })?;
        let public = created.out_public;
        let (actual, public_key) = templates::spki(&public).map_err(BackendError::Device)?;
        if actual != algorithm {
            return Err(BackendError::Device(format!(
                "asked the TPM for {} and got {}",
                algorithm.as_str(),
                actual.as_str()
            )));
        }
        let blobs = KeyBlobs {
            private: created.out_private.value().to_vec(),
            public: public
                .marshall()
                .map_err(|e| BackendError::Device(format!("marshalling the public area: {e}")))?,
        };
        // Evidence of origin, kept with the key; a TPM whose endorsement hierarchy is locked
        // away still signs, it just cannot vouch for its keys.
        let attestation = match self.certify(&blobs, &[]) {
            Ok(evidence) => Some(Attestation::Tpm(evidence)),
            Err(error) => {
                tracing::warn!(%error, "the new TPM key is not attested");
                None
            }
        };
        Ok(NewKey {
            device: DeviceHandle::Tpm {
                private: blobs.private,
                public: blobs.public,
            },
            algorithm,
            public_key,
            attestation,
        })
    }

    pub fn sign(
        &mut self,
        key: &KeyBlobs,
        algorithm: KeyAlgorithm,
        input: &SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let SignInput::Sha256(digest) = input else {
            return Err(BackendError::Unsupported(
                "TPM keys sign SHA-256 digests, not whole messages".into(),
            ));
        };
        let (scheme, width) = match algorithm {
            KeyAlgorithm::EcdsaP256 => (
                SignatureScheme::EcDsa {
                    hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                },
                32,
            ),
            KeyAlgorithm::Rsa3072 => (
                SignatureScheme::RsaPss {
                    hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                },
                0,
            ),
            other => {
                return Err(BackendError::Unsupported(format!(
                    "TPM keys are never {}",
                    other.as_str()
                )))
            }
        };
        let digest = Digest::try_from(digest.to_vec())
            .map_err(|e| BackendError::Device(format!("digest: {e}")))?;
        let signature = self.with_connection(|conn, settings| {
            let handle = conn.load(settings, key)?;
            let validation = null_hashcheck_ticket()?;
            let signed = conn
                .context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.sign(handle, digest, scheme, validation)
                });
            match signed {
                Err(error) if is_auth_failure(&error) => {
                    Err(settings.refused_key_auth(conn, key, "TPM2_Sign").into())
                }
                other => other.during("TPM2_Sign"),
            }
        })?;
        match signature {
            Signature::EcDsa(ecc) => {
                let mut raw = templates::left_pad(ecc.signature_r().value(), width)
                    .map_err(BackendError::Device)?;
                raw.extend(
                    templates::left_pad(ecc.signature_s().value(), width)
                        .map_err(BackendError::Device)?,
                );
                Ok(raw)
            }
            Signature::RsaPss(rsa) => Ok(rsa.signature().value().to_vec()),
            _ => Err(BackendError::Device(
                "the TPM returned a signature of another scheme".into(),
            )),
        }
    }

    /// TPM2_Certify of `key` by the attestation key, with `nonce` as qualifying data.
    pub fn certify(&mut self, key: &KeyBlobs, nonce: &[u8]) -> Result<TpmEvidence, BackendError> {
        let nonce = Data::try_from(nonce.to_vec())
            .map_err(|_| BackendError::Device("the nonce is too long for the TPM".into()))?;
        self.with_connection(|conn, settings| {
            conn.flush_loaded();
            let (ak_handle, ak_public) = conn.load_ak(settings, None)?;
            let certified = conn.certify_with(settings, key, ak_handle, nonce);
            flush(&mut conn.context, ak_handle.into());
            let certification = certified?;
            let ek_certificate = conn.ek_certificate();
            Ok(TpmEvidence {
                key_public_area: key.public.clone(),
                certify_info: certification.info,
                signature: certification.signature,
                ak_public_area: ak_public,
                ek_certificate,
            })
        })
    }

    /// TPM2_ActivateCredential with the attestation key and the endorsement key.
    pub fn activate_credential(
        &mut self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        let blob = IdObject::try_from(credential_blob).map_err(|_| {
            BackendError::Device("the credential blob is too large for a TPM2B_ID_OBJECT".into())
        })?;
        let secret = EncryptedSecret::try_from(encrypted_secret).map_err(|_| {
            BackendError::Device("the encrypted secret is too large for the TPM".into())
        })?;
        self.with_connection(|conn, settings| {
            conn.flush_loaded();
            let ek_handle = ek::create_ek_object_2(
                &mut conn.context,
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                None,
            )
            .during("creating the endorsement key")?;
            let result = (|| {
                let (ak_handle, _) = conn.load_ak(settings, Some(ek_handle))?;
                let activated = conn.activate_with(ak_handle, ek_handle, blob, secret);
                flush(&mut conn.context, ak_handle.into());
                activated
            })();
            flush(&mut conn.context, ek_handle.into());
            result
        })
    }

    /// Runs `op` on a live connection; classifies failures and drops a broken connection.
    fn with_connection<T>(
        &mut self,
        op: impl FnOnce(&mut Connection, &mut Settings) -> Result<T, TpmError>,
    ) -> Result<T, BackendError> {
        if self.connection.is_none() {
            if let Some((at, error)) = &self.down {
                if at.elapsed() < RECONNECT_INTERVAL {
                    return Err(error.clone());
                }
            }
            match Connection::open(&mut self.settings) {
                Ok(connection) => {
                    tracing::info!(backend = %self.settings.config.name, device = %connection.description, "TPM connected");
                    self.connection = Some(connection);
                    self.down = None;
                }
                Err(error) => {
                    let (error, _) = classify(error);
                    self.down = Some((Instant::now(), error.clone()));
                    return Err(error);
                }
            }
        }
        let connection = self.connection.as_mut().expect("connected above");
        op(connection, &mut self.settings).map_err(|error| {
            let (error, lost) = classify(error);
            if lost {
                tracing::warn!(backend = %self.settings.config.name, %error, "TPM connection lost");
                self.connection = None;
                self.down = Some((Instant::now(), error.clone()));
            }
            error
        })
    }
}

impl Settings {
    /// The configured key auth value, unless the TPM refused it before.
    fn key_auth(&self) -> Result<Option<Auth>, TpmError> {
        read_auth(self.config.key_auth.as_ref(), "key_auth").map(|auth| auth.map(|(auth, _)| auth))
    }

    /// Remembers a refused key auth value and says how close the TPM is to lockout.
    fn refused_key_auth(
        &mut self,
        conn: &mut Connection,
        key: &KeyBlobs,
        command: &str,
    ) -> BackendError {
        if let Ok(Some((_, fingerprint))) = read_auth(self.config.key_auth.as_ref(), "key_auth") {
            self.rejected_key_auth.insert(key.id(), fingerprint);
        } else {
            self.rejected_key_auth.insert(key.id(), [0; 32]);
        }
        conn.forget(key);
        BackendError::Locked(format!(
            "the TPM refused the key's auth value ({command}): check key_auth in trustd's config; {}. trustd will not try this value on this key again until it changes",
            conn.lockout_hint()
        ))
    }
}

/// Reads an auth value from its source; None when no source is configured.
fn read_auth(
    source: Option<&SecretSource>,
    what: &str,
) -> Result<Option<(Auth, [u8; 32])>, TpmError> {
    let Some(source) = source else {
        return Ok(None);
    };
    let secret = source.read().map_err(|e| {
        BackendError::Misconfigured(format!(
            "{what}: {}",
            e.to_string().replace("PIN", "auth value")
        ))
    })?;
    let auth = Auth::try_from(secret.value.expose_secret().as_bytes().to_vec()).map_err(|_| {
        BackendError::Misconfigured(format!(
            "{what} from {} is longer than the TPM accepts (32 bytes for SHA-256)",
            source.describe()
        ))
    })?;
    Ok(Some((auth, secret.fingerprint)))
}

impl Connection {
    fn open(settings: &mut Settings) -> Result<Connection, TpmError> {
        let tcti: TctiNameConf = settings.config.tcti.parse().map_err(|e| {
            BackendError::Misconfigured(format!("tcti {:?}: {e}", settings.config.tcti))
        })?;
        let mut context = Esys::new(tcti).map_err(|error| {
            BackendError::Unavailable(format!(
                "cannot open the TPM at {}: {error}; trustd retries on the next request",
                settings.config.tcti
            ))
        })?;
        flush_stale_objects(&mut context);
        let owner = read_auth(settings.config.owner_auth.as_ref(), "owner_auth")?;
        if let Some((auth, fingerprint)) = owner {
            if settings.rejected_owner_auth == Some(fingerprint) {
                return Err(BackendError::Locked(
                    "the TPM refused owner_auth before and trustd will not send it again (each refusal counts towards lockout): correct it, then reload trustd".into(),
                )
                .into());
            }
            context
                .tr_set_auth(ObjectHandle::Owner, auth)
                .during("setting the owner auth")?;
            let template = templates::storage_primary().during("building the SRK template")?;
            let created = context.execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            });
            // ESAPI keeps the value for later commands on the handle: forget it now.
            let _ = context.tr_set_auth(ObjectHandle::Owner, Auth::default());
            return match created {
                Ok(primary) => Self::ready(context, primary.key_handle, &settings.config.tcti),
                Err(error) if is_auth_failure(&error) => {
                    settings.rejected_owner_auth = Some(fingerprint);
                    Err(BackendError::Locked(
                        "the TPM refused owner_auth from trustd's config (the owner hierarchy's auth value); repeated failures lock the TPM out (dictionary-attack protection), so trustd will not retry this value".into(),
                    )
                    .into())
                }
                Err(error) => Err(error).during("TPM2_CreatePrimary (storage key)"),
            };
        }
        let template = templates::storage_primary().during("building the SRK template")?;
        let primary = context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(|error| {
                if is_auth_failure(&error) {
                    BackendError::Locked(
                        "the TPM's owner hierarchy has an auth value: set owner_auth in trustd's config".into(),
                    )
                    .into()
                } else {
                    TpmError::Tss {
                        command: "TPM2_CreatePrimary (storage key)",
                        error,
                    }
                }
            })?;
        Self::ready(context, primary.key_handle, &settings.config.tcti)
    }

    fn ready(mut context: Esys, primary: KeyHandle, tcti: &str) -> Result<Connection, TpmError> {
        let vendor = tss_esapi::utils::get_tpm_vendor(&mut context).unwrap_or_default();
        Ok(Connection {
            context,
            primary,
            loaded: VecDeque::new(),
            description: format!("TPM 2.0 {} at {tcti}", vendor.trim()),
        })
    }

    /// The key's handle, loading it (and evicting the least recently used) when needed.
    fn load(&mut self, settings: &Settings, key: &KeyBlobs) -> Result<KeyHandle, TpmError> {
        let id = key.id();
        if let Some(position) = self.loaded.iter().position(|(k, _)| *k == id) {
            let entry = self.loaded.remove(position).expect("position is valid");
            self.loaded.push_front(entry);
            return Ok(entry.1);
        }
        let auth = read_auth(settings.config.key_auth.as_ref(), "key_auth")?;
        if let Some((_, fingerprint)) = &auth {
            if settings.rejected_key_auth.get(&id) == Some(fingerprint) {
                return Err(BackendError::Locked(
                    "the TPM refused key_auth for this key before; trustd will not send it again (each refusal counts towards lockout): correct key_auth in trustd's config".into(),
                )
                .into());
            }
        }
        let private = Private::try_from(key.private.clone()).map_err(|_| {
            BackendError::Device("the key's wrapped private blob is malformed".into())
        })?;
        let public = Public::unmarshall(&key.public)
            .map_err(|_| BackendError::Device("the key's public area is malformed".into()))?;
        let capacity = settings.config.loaded_keys.max(1);
        while self.loaded.len() >= capacity {
            let (_, handle) = self.loaded.pop_back().expect("not empty");
            flush(&mut self.context, handle.into());
        }
        let primary = self.primary;
        let mut attempt = || {
            self.context.execute_with_nullauth_session(|ctx| {
                ctx.load(primary, private.clone(), public.clone())
            })
        };
        let handle = match attempt() {
            Err(error) if is_out_of_object_memory(&error) => {
                // Someone else's objects fill the TPM (no resource manager): retry once empty.
                self.flush_loaded();
                self.context
                    .execute_with_nullauth_session(|ctx| ctx.load(primary, private, public))
            }
            other => other,
        }
        .during("TPM2_Load")?;
        if let Some((auth, _)) = auth {
            self.context
                .tr_set_auth(handle.into(), auth)
                .during("setting the key's auth value")?;
        }
        self.loaded.push_front((id, handle));
        Ok(handle)
    }

    fn forget(&mut self, key: &KeyBlobs) {
        let id = key.id();
        if let Some(position) = self.loaded.iter().position(|(k, _)| *k == id) {
            let (_, handle) = self.loaded.remove(position).expect("position is valid");
            flush(&mut self.context, handle.into());
        }
    }

    fn flush_loaded(&mut self) {
        while let Some((_, handle)) = self.loaded.pop_front() {
            flush(&mut self.context, handle.into());
        }
    }

    /// Loads the attestation key, creating (and storing) it on first use. `ek` is an already
    /// loaded endorsement key; without one, one is created for the load and flushed again.
    fn load_ak(
        &mut self,
        settings: &Settings,
        ek: Option<KeyHandle>,
    ) -> Result<(KeyHandle, Vec<u8>), TpmError> {
        let own_ek = match ek {
            Some(_) => None,
            None => Some(
                ek::create_ek_object_2(
                    &mut self.context,
                    AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                    None,
                )
                .during("creating the endorsement key")?,
            ),
        };
        let ek_handle = ek.or(own_ek).expect("one of the two");
        let result = self.load_ak_under(settings, ek_handle);
        if let Some(handle) = own_ek {
            flush(&mut self.context, handle.into());
        }
        result
    }

    fn load_ak_under(
        &mut self,
        settings: &Settings,
        ek_handle: KeyHandle,
    ) -> Result<(KeyHandle, Vec<u8>), TpmError> {
        if let Some(blobs) = settings.ak_store.load()? {
            let loaded = Private::try_from(blobs.private.clone())
                .ok()
                .zip(Public::unmarshall(&blobs.public).ok())
                .map(|(private, public)| {
                    ak::load_ak(&mut self.context, ek_handle, None, private, public)
                });
            match loaded {
                Some(Ok(handle)) => return Ok((handle, blobs.public)),
                // The TPM was cleared (new endorsement seed) or the file is damaged: make a
                // new AK. Verifiers then see a new AK name, bound by a fresh activation.
                Some(Err(error)) => {
                    tracing::warn!(%error, "the stored attestation key does not load; creating a new one")
                }
                None => {
                    tracing::warn!("the stored attestation key is malformed; creating a new one")
                }
            }
        }
        let created = ak::create_ak(
            &mut self.context,
            ek_handle,
            HashingAlgorithm::Sha256,
            SignatureSchemeAlgorithm::EcDsa,
            None,
            None,
        )
        .during("creating the attestation key")?;
        let blobs = AkBlobs {
            private: created.out_private.value().to_vec(),
            public: created
                .out_public
                .marshall()
                .during("marshalling the attestation key")?,
        };
        settings.ak_store.save(&blobs)?;
        let handle = ak::load_ak(
            &mut self.context,
            ek_handle,
            None,
            created.out_private,
            created.out_public,
        )
        .during("loading the attestation key")?;
        Ok((handle, blobs.public))
    }

    /// Certifies `key` with the loaded AK.
    fn certify_with(
        &mut self,
        settings: &mut Settings,
        key: &KeyBlobs,
        ak_handle: KeyHandle,
        nonce: Data,
    ) -> Result<Certification, TpmError> {
        let handle = self.load(settings, key)?;
        let certified = self.context.execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |ctx| ctx.certify(handle.into(), ak_handle, nonce, SignatureScheme::Null),
        );
        let (attest, signature) = match certified {
            Err(error) if is_auth_failure(&error) => {
                return Err(settings.refused_key_auth(self, key, "TPM2_Certify").into())
            }
            other => other.during("TPM2_Certify")?,
        };
        self.forget(key);
        let Signature::EcDsa(ecc) = signature else {
            return Err(BackendError::Device(
                "the attestation key made a non-ECDSA signature".into(),
            )
            .into());
        };
        let mut raw =
            templates::left_pad(ecc.signature_r().value(), 32).map_err(BackendError::Device)?;
        raw.extend(
            templates::left_pad(ecc.signature_s().value(), 32).map_err(BackendError::Device)?,
        );
        let info = attest.marshall().during("marshalling TPMS_ATTEST")?;
        Ok(Certification {
            info,
            signature: raw,
        })
    }

    fn activate_with(
        &mut self,
        ak_handle: KeyHandle,
        ek_handle: KeyHandle,
        blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Vec<u8>, TpmError> {
        // The EK's policy is PolicySecret(TPM_RH_ENDORSEMENT): satisfy it in a policy session.
        let session = self
            .context
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .during("starting a policy session")?
            .ok_or_else(|| BackendError::Device("the TPM started no policy session".into()))?;
        let result = (|| {
            let policy = PolicySession::try_from(session).during("policy session")?;
            self.context
                .execute_with_nullauth_session(|ctx| {
                    ctx.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
                .during("TPM2_PolicySecret (endorsement)")?;
            self.context
                .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                    ctx.activate_credential(ak_handle, ek_handle, blob, secret)
                })
                .map_err(|error| match super::error::tpm_kind(&error) {
                    Some(_) => BackendError::Device(format!(
                        "the TPM rejected the credential ({error}): it was not made for this TPM's endorsement key and attestation key"
                    ))
                    .into(),
                    None => TpmError::Tss {
                        command: "TPM2_ActivateCredential",
                        error,
                    },
                })
        })();
        flush(&mut self.context, SessionHandle::from(session).into());
        Ok(result?.value().to_vec())
    }

    /// The RSA 2048 EK certificate from its TCG NV index, when the TPM has one.
    fn ek_certificate(&mut self) -> Vec<u8> {
        ek::retrieve_ek_pubcert(
            &mut self.context,
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        )
        .unwrap_or_default()
    }

    /// How many more auth failures the TPM tolerates, as far as it tells.
    fn lockout_hint(&mut self) -> String {
        let counter = self
            .context
            .get_tpm_property(PropertyTag::LockoutCounter)
            .ok()
            .flatten();
        let max = self
            .context
            .get_tpm_property(PropertyTag::MaxAuthFail)
            .ok()
            .flatten();
        let interval = self
            .context
            .get_tpm_property(PropertyTag::LockoutInterval)
            .ok()
            .flatten();
        match (counter, max) {
            (Some(counter), Some(max)) => format!(
                "{} more failure(s) lock the TPM out (dictionary-attack protection: {counter} of {max} used{})",
                max.saturating_sub(counter),
                interval.map(|s| format!(", one forgiven every {s} s")).unwrap_or_default()
            ),
            _ => "repeated failures lock the TPM out (dictionary-attack protection)".into(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Objects would otherwise stay in a TPM without a resource manager until it restarts.
        self.flush_loaded();
        flush(&mut self.context, self.primary.into());
    }
}

/// Flushes transient objects an earlier connection left behind. A TPM without a resource
/// manager (swtpm over TCP, /dev/tpm0) keeps them after the connection closes, so a trustd
/// that was killed would otherwise fill its three object slots. Behind a resource manager
/// (/dev/tpmrm0) a connection only sees its own objects, and a new one has none.
fn flush_stale_objects(context: &mut Esys) {
    use tss_esapi::constants::tss::TPM2_TRANSIENT_FIRST;
    use tss_esapi::constants::CapabilityType;
    use tss_esapi::structures::CapabilityData;
    let handles = match context.get_capability(CapabilityType::Handles, TPM2_TRANSIENT_FIRST, 64) {
        Ok((CapabilityData::Handles(handles), _)) => handles,
        _ => return,
    };
    let mut flushed = 0;
    for handle in handles.iter() {
        let object = context.execute_without_session(|ctx| ctx.tr_from_tpm_public(*handle));
        if let Ok(object) = object {
            if context.flush_context(object).is_ok() {
                flushed += 1;
            }
        }
    }
    if flushed > 0 {
        tracing::info!(
            flushed,
            "flushed transient objects an earlier connection left in the TPM (no resource manager)"
        );
    }
}

fn flush(context: &mut Esys, handle: ObjectHandle) {
    if let Err(error) = context.flush_context(handle) {
        tracing::debug!(%error, "TPM2_FlushContext failed");
    }
}

/// An unrestricted key signs any digest given a "null" hash-check ticket.
fn null_hashcheck_ticket() -> Result<HashcheckTicket, TpmError> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: StructureTag::Hashcheck.into(),
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .during("building the null hash-check ticket")
}

fn names(algorithms: &[KeyAlgorithm]) -> String {
    algorithms
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}
