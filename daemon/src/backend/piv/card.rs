//! One PIV card (a YubiKey) and everything trustd does with it, on the backend's device
//! thread: the connection through pcscd, the PIN and the management key, key generation in
//! slots, signing, attestation and provisioning.
//!
//! The connection is opened on demand and dropped when pcscd says the card went away; the next
//! request opens it again (at most every `RECONNECT_INTERVAL`), so a card pulled out and put
//! back works without restarting trustd. A card reset by another program is reconnected at
//! once. A PIN the card refused is never sent again until its source changes: every try
//! counts towards blocking the PIN.

use std::str::FromStr;
use std::time::{Duration, Instant};

use der::Encode;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use yubikey::certificate::Certificate;
use yubikey::piv::{AlgorithmId, ManagementSlotId, SlotId};
use yubikey::{MgmKey, YubiKey};
use zeroize::Zeroizing;

use crate::algorithm::{self, KeyAlgorithm};
use crate::backend::{
    BackendError, BackendState, BackendStatus, GenerateOptions, NewKey, PivProvisioning, SignInput,
};
use crate::config::PivConfig;
use crate::inventory::{Attestation, DeviceHandle, PinPolicy, PivEvidence, TouchPolicy};

const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);
const FACTORY_PIN: &str = "123456";
const FACTORY_PUK: &str = "12345678";

const ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384];

/// A failure inside a card operation, before it is classified.
enum CardError {
    Card {
        doing: &'static str,
        error: yubikey::Error,
    },
    Backend(BackendError),
}

impl From<BackendError> for CardError {
    fn from(e: BackendError) -> Self {
        CardError::Backend(e)
    }
}

trait Doing<T> {
    fn doing(self, what: &'static str) -> Result<T, CardError>;
}

impl<T> Doing<T> for yubikey::Result<T> {
    fn doing(self, doing: &'static str) -> Result<T, CardError> {
        self.map_err(|error| CardError::Card { doing, error })
    }
}

pub struct PivCard {
    /// What operations read and change, apart from the open card.
    state: CardState,
    yubikey: Option<YubiKey>,
    down: Option<(Instant, BackendError)>,
}

impl PivCard {
    pub fn new(config: PivConfig) -> PivCard {
        PivCard {
            state: CardState {
                config,
                pin_verified: false,
                unlocked_pin: None,
                rejected_pin: None,
            },
            yubikey: None,
            down: None,
        }
    }

    fn who(&self) -> String {
        match self.state.config.serial {
            Some(serial) => format!("YubiKey serial {serial}"),
            None => "the YubiKey".to_owned(),
        }
    }

    /// The backend's configured name.
    pub fn name(&self) -> &str {
        &self.state.config.name
    }

    pub fn status(&mut self) -> BackendStatus {
        let probed = self.with_card(|card, yk| {
            let retries = yubikey::piv::metadata(yk, SlotId::Management(ManagementSlotId::Pin))
                .ok()
                .and_then(|m| m.retries)
                .map(|r| r.remaining_count);
            Ok((card.describe(yk), retries, card.has_pin()))
        });
        match probed {
            Ok((device, retries, has_pin)) => {
                let (state, detail) = match retries {
                    Some(0) => (
                        BackendState::Locked,
                        "the PIN is blocked: unblock it with the PUK".to_owned(),
                    ),
                    _ if !has_pin => (
                        BackendState::Locked,
                        "no PIN yet: set pin in trustd's config or run `trustctl token piv unlock`"
                            .to_owned(),
                    ),
                    Some(n) => (BackendState::Ready, format!("ready; {n} PIN tries left")),
                    None => (BackendState::Ready, "ready".to_owned()),
                };
                BackendStatus {
                    state,
                    detail,
                    device,
                    algorithms: ALGORITHMS.to_vec(),
                    queue: None,
                }
            }
            Err(error) => BackendStatus {
                state: match error {
                    BackendError::Locked(_) => BackendState::Locked,
                    BackendError::Misconfigured(_) => BackendState::Misconfigured,
                    _ => BackendState::Unavailable,
                },
                detail: error.to_string(),
                device: self.who(),
                algorithms: ALGORITHMS.to_vec(),
                queue: None,
            },
        }
    }

    pub fn generate(
        &mut self,
        label: &str,
        algorithm: KeyAlgorithm,
        options: &GenerateOptions,
    ) -> Result<NewKey, BackendError> {
        let algorithm_id = match algorithm {
            KeyAlgorithm::EcdsaP256 => AlgorithmId::EccP256,
            KeyAlgorithm::EcdsaP384 => AlgorithmId::EccP384,
            other => {
                return Err(BackendError::Unsupported(format!(
                    "a PIV card generates ecdsa-p256 and ecdsa-p384 keys, not {}",
                    other.as_str()
                )))
            }
        };
        let label = label.to_owned();
        let options = options.clone();
        self.with_card(move |card, yk| {
            let slot = card.choose_slot(yk, &options)?;
            card.authenticate_management(yk)?;
            let public = yubikey::piv::generate(
                yk,
                slot,
                algorithm_id,
                pin_policy_to_card(options.pin_policy),
                touch_policy_to_card(options.touch_policy),
            )
            .doing("generating the key")?;
            let (pin_policy, touch_policy) = card.policies(yk, slot)?;
            // A certificate in the slot, so PIV tools (OpenSC, ykman) see the key: self-signed
            // on the card, which takes the PIN (and a touch) if the key's policy says so.
            card.prepare_pin(yk, pin_policy)?;
            let subject = x509_cert::name::Name::from_str(&format!("CN=trustd {label}"))
                .map_err(|e| BackendError::Device(format!("certificate name: {e}")))?;
            let serial = x509_cert::serial_number::SerialNumber::new(&rand::random::<[u8; 8]>())
                .map_err(|e| BackendError::Device(e.to_string()))?;
            let validity =
                x509_cert::time::Validity::from_now(Duration::from_secs(10 * 365 * 24 * 3600))
                    .map_err(|e| BackendError::Device(e.to_string()))?;
            let self_signed = match algorithm_id {
                AlgorithmId::EccP256 => {
                    self_sign::<p256::NistP256>(yk, slot, serial, validity, subject, &public)
                }
                _ => self_sign::<p384::NistP384>(yk, slot, serial, validity, subject, &public),
            };
            if let Err(error) = self_signed {
                return Err(card.signing_failure(
                    error,
                    touch_policy,
                    "self-signing the slot's certificate",
                ));
            }
            let attestation = card.attestation(yk, slot).ok().map(Attestation::Piv);
            Ok(NewKey {
                device: DeviceHandle::Piv {
                    serial: yk.serial().0,
                    slot: slot_name(slot),
                    pin_policy,
                    touch_policy,
                },
                algorithm,
                public_key: public
                    .to_der()
                    .map_err(|e| BackendError::Device(e.to_string()))?,
                attestation,
            })
        })
    }

    pub fn sign(
        &mut self,
        device: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: &SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let (slot, pin_policy, touch_policy) = self.slot_of(device)?;
        let (digest, algorithm_id): (&[u8], _) = match (algorithm, input) {
            (KeyAlgorithm::EcdsaP256, SignInput::Sha256(d)) => (d, AlgorithmId::EccP256),
            (KeyAlgorithm::EcdsaP384, SignInput::Sha384(d)) => (d, AlgorithmId::EccP384),
            _ => {
                return Err(BackendError::Unsupported(format!(
                    "{} keys on a PIV card cannot sign this kind of input",
                    algorithm.as_str()
                )))
            }
        };
        let digest = digest.to_vec();
        self.with_card(move |card, yk| {
            card.prepare_pin(yk, pin_policy)?;
            let der = match yubikey::piv::sign_data(yk, &digest, algorithm_id, slot) {
                Ok(der) => der,
                // The PIN was forgotten (another program reset the card): once more.
                Err(yubikey::Error::AuthenticationError)
                    if touch_policy == TouchPolicy::Never && pin_policy == PinPolicy::Once =>
                {
                    card.pin_verified = false;
                    card.prepare_pin(yk, pin_policy)?;
                    yubikey::piv::sign_data(yk, &digest, algorithm_id, slot)
                        .map_err(|e| card.signing_failure(e, touch_policy, "signing"))?
                }
                Err(error) => return Err(card.signing_failure(error, touch_policy, "signing")),
            };
            Ok(algorithm::ecdsa_der_to_raw(algorithm, &der).map_err(BackendError::Device)?)
        })
    }

    pub fn attest(&mut self, device: &DeviceHandle) -> Result<PivEvidence, BackendError> {
        let (slot, _, _) = self.slot_of(device)?;
        self.with_card(move |card, yk| card.attestation(yk, slot))
    }

    /// YubiKeys before firmware 5.7 cannot delete a key: its certificate goes, trustd forgets
    /// it, and the slot is reused only with `--force`.
    pub fn delete(&mut self, device: &DeviceHandle) -> Result<(), BackendError> {
        let (slot, _, _) = self.slot_of(device)?;
        self.with_card(move |card, yk| {
            card.authenticate_management(yk)?;
            match Certificate::delete(yk, slot) {
                Ok(()) | Err(yubikey::Error::NotFound) => Ok(()),
                Err(error) => Err(error).doing("deleting the slot's certificate"),
            }
        })
    }

    pub fn unlock(&mut self, pin: Zeroizing<String>) -> Result<(), BackendError> {
        self.with_card(move |card, yk| {
            card.verify(yk, &pin)?;
            card.unlocked_pin = Some(pin.clone());
            Ok(())
        })
    }

    pub fn provision(&mut self, request: PivProvisioning) -> Result<u32, BackendError> {
        for (what, value) in [("PIN", &request.new_pin), ("PUK", &request.new_puk)] {
            if !(6..=8).contains(&value.len()) || !value.is_ascii() {
                return Err(BackendError::Misconfigured(format!(
                    "the new {what} must have 6 to 8 ASCII characters"
                )));
            }
        }
        self.with_card(move |card, yk| {
            let is_default = |yk: &mut YubiKey, slot| {
                yubikey::piv::metadata(yk, SlotId::Management(slot))
                    .ok()
                    .and_then(|m| m.default)
                    .unwrap_or(false)
            };
            let factory = is_default(yk, ManagementSlotId::Pin)
                && is_default(yk, ManagementSlotId::Puk)
                && is_default(yk, ManagementSlotId::Management);
            if !factory && !request.force {
                return Err(BackendError::Conflict(format!(
                    "{} is already provisioned (its PIN, PUK or management key is not the factory default): pass --force with the current values to provision it again",
                    card.describe(yk)
                ))
                .into());
            }
            let management = match &request.current_management_key {
                Some(hex_key) => parse_management_key(hex_key)?,
                None => MgmKey::default(),
            };
            yk.authenticate(management).map_err(|_| {
                BackendError::Locked(
                    "the card refused the current management key: pass the one it has (hex)".into(),
                )
            })?;
            let current_pin = request.current_pin.as_deref().map(|s| s.as_str()).unwrap_or(FACTORY_PIN);
            let current_puk = request.current_puk.as_deref().map(|s| s.as_str()).unwrap_or(FACTORY_PUK);
            yk.change_pin(current_pin.as_bytes(), request.new_pin.as_bytes())
                .map_err(|e| card.credential_failure(e, "PIN"))?;
            yk.change_puk(current_puk.as_bytes(), request.new_puk.as_bytes())
                .map_err(|e| card.credential_failure(e, "PUK"))?;
            card.pin_verified = false;
            card.verify(yk, &request.new_pin)?;
            // A fresh random management key, kept on the card behind the PIN: nobody needs to
            // know it, and trustd reads it with the PIN when it manages keys.
            MgmKey::generate()
                .set_protected(yk)
                .doing("storing the new PIN-protected management key")?;
            card.unlocked_pin = Some(request.new_pin.clone());
            card.rejected_pin = None;
            Ok(yk.serial().0)
        })
    }

    /// Runs `op` on an open card; reconnects once if another program reset the card, and drops
    /// the connection when the card is gone.
    fn with_card<T>(
        &mut self,
        mut op: impl FnMut(&mut CardState, &mut YubiKey) -> Result<T, CardError>,
    ) -> Result<T, BackendError> {
        for attempt in 0..2 {
            let mut yk = match self.yubikey.take() {
                Some(yk) => yk,
                None => self.connect()?,
            };
            let result = op(&mut self.state, &mut yk);
            match result {
                Ok(value) => {
                    self.yubikey = Some(yk);
                    return Ok(value);
                }
                Err(CardError::Backend(error)) => {
                    self.yubikey = Some(yk);
                    return Err(error);
                }
                Err(CardError::Card { doing, error }) => match pcsc_error(&error) {
                    Some(pcsc::Error::ResetCard) if attempt == 0 => {
                        // Someone reset the card: its PIN and management key state are gone.
                        self.state.pin_verified = false;
                        continue;
                    }
                    Some(pcsc) if is_gone(pcsc) => {
                        self.state.pin_verified = false;
                        let error = self.unavailable(pcsc);
                        self.down = Some((Instant::now(), error.clone()));
                        return Err(error);
                    }
                    _ => {
                        self.yubikey = Some(yk);
                        return Err(BackendError::Device(format!("{doing}: {error}")));
                    }
                },
            }
        }
        Err(BackendError::Unavailable(format!(
            "{} keeps being reset by another program",
            self.who()
        )))
    }

    fn connect(&mut self) -> Result<YubiKey, BackendError> {
        if let Some((at, error)) = &self.down {
            if at.elapsed() < RECONNECT_INTERVAL {
                return Err(error.clone());
            }
        }
        // Right after another program let go of the card (or reset it), pcscd briefly reports
        // it absent: look again a few times before calling it gone.
        let mut opened = self.open();
        for _ in 0..5 {
            if !matches!(opened, Err(yubikey::Error::NotFound)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            opened = self.open();
        }
        match opened {
            Ok(yk) => {
                tracing::info!(backend = %self.state.config.name, serial = yk.serial().0, version = %yk.version(), "YubiKey connected");
                self.down = None;
                self.state.pin_verified = false;
                Ok(yk)
            }
            Err(error) => {
                let error = match pcsc_error(&error) {
                    Some(pcsc) => self.unavailable(pcsc),
                    None if matches!(error, yubikey::Error::NotFound) => BackendError::Unavailable(format!(
                        "{} is not plugged in (or pcscd does not see it); trustd connects when it is back",
                        self.who()
                    )),
                    None if matches!(error, yubikey::Error::PcscError { .. }) && self.state.config.serial.is_none() => {
                        BackendError::Misconfigured(
                            "several YubiKeys are plugged in: set serial in the backend's config".into(),
                        )
                    }
                    None => BackendError::Unavailable(format!("cannot open {}: {error}", self.who())),
                };
                self.down = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    fn open(&self) -> yubikey::Result<YubiKey> {
        match self.state.config.serial {
            Some(serial) => YubiKey::open_by_serial(serial.into()),
            None => YubiKey::open(),
        }
    }

    fn unavailable(&self, error: pcsc::Error) -> BackendError {
        BackendError::Unavailable(match error {
            pcsc::Error::SharingViolation => format!(
                "{} is held exclusively by another program (scdaemon, a PKCS#11 module, ykman): stop it or make it share the card",
                self.who()
            ),
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
                "pcscd is not running: start it (systemctl start pcscd.socket)".to_owned()
            }
            _ => format!(
                "{} was removed (or its reader went away); trustd reconnects when it is back",
                self.who()
            ),
        })
    }

    fn slot_of(
        &self,
        device: &DeviceHandle,
    ) -> Result<(SlotId, PinPolicy, TouchPolicy), BackendError> {
        match device {
            DeviceHandle::Piv {
                serial,
                slot,
                pin_policy,
                touch_policy,
            } => {
                if self.state.config.serial.is_some_and(|s| s != *serial) {
                    return Err(BackendError::KeyMissing(format!(
                        "the key is on YubiKey serial {serial}, but this backend uses serial {}",
                        self.state.config.serial.unwrap_or_default()
                    )));
                }
                let slot = SlotId::from_str(slot)
                    .map_err(|_| BackendError::Device(format!("bad slot {slot:?} in the inventory")))?;
                Ok((slot, *pin_policy, *touch_policy))
            }
            other => Err(BackendError::Misconfigured(format!(
                "the key is a {} key, not on a PIV card: its backend in trustd's config changed kind",
                other.kind_name()
            ))),
        }
    }
}

/// The parts of `PivCard` an operation reads and changes, kept apart from the open `YubiKey`
/// so both can be borrowed at once.
struct CardState {
    config: PivConfig,
    pin_verified: bool,
    unlocked_pin: Option<Zeroizing<String>>,
    rejected_pin: Option<[u8; 32]>,
}

impl CardState {
    fn describe(&self, yk: &YubiKey) -> String {
        format!("YubiKey {} serial {}", yk.version(), yk.serial())
    }

    fn has_pin(&self) -> bool {
        self.unlocked_pin.is_some() || self.config.pin.is_some()
    }

    /// The PIN a caller handed over (it overrides the config until trustd restarts), else the
    /// one from the config's source.
    fn pin(&self) -> Result<Zeroizing<String>, BackendError> {
        if let Some(pin) = &self.unlocked_pin {
            return Ok(pin.clone());
        }
        let source = self.config.pin.as_ref().ok_or_else(|| {
            BackendError::Locked(
                "trustd has no PIN for the YubiKey: set pin in trustd's config or run `trustctl token piv unlock`".into(),
            )
        })?;
        let secret = source
            .read()
            .map_err(|e| BackendError::Misconfigured(e.to_string()))?;
        Ok(Zeroizing::new(secret.value.expose_secret().to_owned()))
    }

    /// Verifies the PIN when the key's policy needs it now.
    fn prepare_pin(&mut self, yk: &mut YubiKey, policy: PinPolicy) -> Result<(), CardError> {
        match policy {
            PinPolicy::Never => Ok(()),
            PinPolicy::Once if self.pin_verified => Ok(()),
            _ => {
                let pin = self.pin()?;
                self.verify(yk, &pin)
            }
        }
    }

    fn verify(&mut self, yk: &mut YubiKey, pin: &str) -> Result<(), CardError> {
        let fingerprint: [u8; 32] = Sha256::digest(pin.as_bytes()).into();
        if self.rejected_pin == Some(fingerprint) {
            return Err(BackendError::Locked(
                "the YubiKey refused this PIN before and trustd will not try it again (each try counts towards blocking it): correct the PIN".into(),
            )
            .into());
        }
        match yk.verify_pin(pin.as_bytes()) {
            Ok(()) => {
                self.pin_verified = true;
                Ok(())
            }
            Err(error @ (yubikey::Error::WrongPin { .. } | yubikey::Error::PinLocked)) => {
                self.pin_verified = false;
                self.rejected_pin = Some(fingerprint);
                Err(self.credential_failure(error, "PIN").into())
            }
            Err(error) => Err(error).doing("verifying the PIN"),
        }
    }

    fn credential_failure(&self, error: yubikey::Error, what: &str) -> BackendError {
        match error {
            yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked => {
                BackendError::Locked(format!(
                    "the YubiKey's {what} is blocked{}",
                    if what == "PIN" {
                        ": unblock it with the PUK (`ykman piv access unblock-pin`)"
                    } else {
                        ""
                    }
                ))
            }
            yubikey::Error::WrongPin { tries } => BackendError::Locked(format!(
                "wrong {what} for the YubiKey: {tries} tries left before it is blocked"
            )),
            other => BackendError::Device(format!("changing the {what}: {other}")),
        }
    }

    fn authenticate_management(&mut self, yk: &mut YubiKey) -> Result<(), CardError> {
        let key = match &self.config.management_key {
            Some(source) => {
                let secret = source
                    .read()
                    .map_err(|e| BackendError::Misconfigured(e.to_string()))?;
                parse_management_key(secret.value.expose_secret())?
            }
            None => {
                // The PIN-protected key `token piv init` stored: reading it takes the PIN.
                self.prepare_pin(yk, PinPolicy::Once)?;
                MgmKey::get_protected(yk).map_err(|_| {
                    BackendError::Locked(
                        "the YubiKey has no PIN-protected management key: run `trustctl token piv init`, or set management_key in trustd's config".into(),
                    )
                })?
            }
        };
        yk.authenticate(key).map_err(|_| {
            BackendError::Locked(
                "the YubiKey refused the management key (wrong management_key, or the card was provisioned again)".into(),
            )
        })?;
        Ok(())
    }

    /// The slot to generate in: the one asked for, or the first free one trustd may use.
    fn choose_slot(
        &mut self,
        yk: &mut YubiKey,
        options: &GenerateOptions,
    ) -> Result<SlotId, CardError> {
        let occupied = |yk: &mut YubiKey, slot: SlotId| yubikey::piv::metadata(yk, slot).is_ok();
        match &options.slot {
            Some(wanted) => {
                if !self.config.slots.iter().any(|s| s == wanted) {
                    return Err(BackendError::Misconfigured(format!(
                        "slot {wanted} is not one this backend may use (slots = {:?} in trustd's config)",
                        self.config.slots
                    ))
                    .into());
                }
                let slot = SlotId::from_str(wanted).map_err(|_| {
                    BackendError::Misconfigured(format!("{wanted:?} is not a PIV slot"))
                })?;
                if occupied(yk, slot) && !options.force {
                    return Err(BackendError::Conflict(format!(
                        "slot {wanted} of {} already holds a key: pass --force to overwrite it (that key is destroyed)",
                        self.describe(yk)
                    ))
                    .into());
                }
                Ok(slot)
            }
            None => {
                for name in &self.config.slots {
                    let Ok(slot) = SlotId::from_str(name) else {
                        continue;
                    };
                    if !occupied(yk, slot) {
                        return Ok(slot);
                    }
                }
                Err(BackendError::Conflict(format!(
                    "every slot this backend may use on {} holds a key: name one with --slot and --force",
                    self.describe(yk)
                ))
                .into())
            }
        }
    }

    /// The policies the card actually applied (defaults resolved per slot).
    fn policies(
        &mut self,
        yk: &mut YubiKey,
        slot: SlotId,
    ) -> Result<(PinPolicy, TouchPolicy), CardError> {
        let metadata = yubikey::piv::metadata(yk, slot).doing("reading the slot's metadata")?;
        let (pin, touch) = metadata.policy.ok_or_else(|| {
            BackendError::Device("the card did not report the key's PIN and touch policy".into())
        })?;
        Ok((
            match pin {
                yubikey::PinPolicy::Never => PinPolicy::Never,
                yubikey::PinPolicy::Always => PinPolicy::Always,
                _ => PinPolicy::Once,
            },
            match touch {
                yubikey::TouchPolicy::Always => TouchPolicy::Always,
                yubikey::TouchPolicy::Cached => TouchPolicy::Cached,
                _ => TouchPolicy::Never,
            },
        ))
    }

    fn attestation(&mut self, yk: &mut YubiKey, slot: SlotId) -> Result<PivEvidence, CardError> {
        let attestation = yubikey::piv::attest(yk, slot).doing("attesting the key")?;
        let intermediate = Certificate::read(yk, SlotId::Attestation)
            .doing("reading the attestation certificate (slot f9)")?;
        Ok(PivEvidence {
            attestation_certificate: attestation.to_vec(),
            intermediate_certificate: intermediate
                .cert
                .to_der()
                .map_err(|e| BackendError::Device(e.to_string()))?,
        })
    }

    /// What a refused private-key operation means, given the key's touch policy.
    fn signing_failure(
        &self,
        error: yubikey::Error,
        touch: TouchPolicy,
        doing: &'static str,
    ) -> CardError {
        match error {
            yubikey::Error::AuthenticationError if touch != TouchPolicy::Never => {
                BackendError::TouchTimeout(format!(
                    "nobody touched the YubiKey in time while {doing} (its touch policy is {touch:?}): touch it when trustctl asks"
                ))
                .into()
            }
            yubikey::Error::AuthenticationError => BackendError::Locked(format!(
                "the YubiKey refused {doing}: its PIN is not verified"
            ))
            .into(),
            other => CardError::Card { doing, error: other },
        }
    }
}

/// A self-signed certificate for the slot's key, signed on the card and written to the slot.
fn self_sign<KT: yubikey::certificate::yubikey_signer::KeyType>(
    yk: &mut YubiKey,
    slot: SlotId,
    serial: x509_cert::serial_number::SerialNumber,
    validity: x509_cert::time::Validity,
    subject: x509_cert::name::Name,
    public: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> yubikey::Result<Certificate> {
    Certificate::generate_self_signed::<_, KT>(
        yk,
        slot,
        serial,
        validity,
        subject,
        public.clone(),
        |_| Ok(()),
    )
}

fn parse_management_key(hex_key: &str) -> Result<MgmKey, BackendError> {
    let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| {
        BackendError::Misconfigured("the management key must be 48 hex digits".into())
    })?);
    MgmKey::from_bytes(&*bytes).map_err(|_| {
        BackendError::Misconfigured(
            "the management key must be a 24-byte 3DES key (48 hex digits)".into(),
        )
    })
}

fn pin_policy_to_card(policy: Option<PinPolicy>) -> yubikey::PinPolicy {
    match policy {
        None => yubikey::PinPolicy::Default,
        Some(PinPolicy::Never) => yubikey::PinPolicy::Never,
        Some(PinPolicy::Once) => yubikey::PinPolicy::Once,
        Some(PinPolicy::Always) => yubikey::PinPolicy::Always,
    }
}

fn touch_policy_to_card(policy: Option<TouchPolicy>) -> yubikey::TouchPolicy {
    match policy {
        None => yubikey::TouchPolicy::Default,
        Some(TouchPolicy::Never) => yubikey::TouchPolicy::Never,
        Some(TouchPolicy::Always) => yubikey::TouchPolicy::Always,
        Some(TouchPolicy::Cached) => yubikey::TouchPolicy::Cached,
    }
}

pub fn slot_name(slot: SlotId) -> String {
    format!("{:02x}", u8::from(slot))
}

fn pcsc_error(error: &yubikey::Error) -> Option<pcsc::Error> {
    match error {
        yubikey::Error::PcscError { inner } => *inner,
        _ => None,
    }
}

fn is_gone(error: pcsc::Error) -> bool {
    matches!(
        error,
        pcsc::Error::RemovedCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::ReaderUnavailable
            | pcsc::Error::UnknownReader
            | pcsc::Error::NoReadersAvailable
            | pcsc::Error::NoService
            | pcsc::Error::ServiceStopped
            | pcsc::Error::CommError
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::UnresponsiveCard
            | pcsc::Error::SharingViolation
    )
}
