//! The PIV applet, as a YubiKey 5 (firmware 5.4) answers it: what the `yubikey` crate,
//! yubico-piv-tool and OpenSC's PIV driver send.
//!
//! Security state (PIN verified, management key authenticated) lives until the card is reset,
//! powered off or the applet is selected again. Keys and data objects live as long as the
//! card (removing it from the reader keeps them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use des::cipher::{BlockEncrypt, KeyInit};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;

use crate::attestation::{AttestationCa, SlotFacts};
use crate::tlv;

pub const SW_OK: u16 = 0x9000;
const SW_SECURITY: u16 = 0x6982;
const SW_BLOCKED: u16 = 0x6983;
const SW_WRONG_DATA: u16 = 0x6A80;
const SW_NOT_FOUND: u16 = 0x6A82;
const SW_WRONG_P1P2: u16 = 0x6A86;
const SW_REFERENCE_NOT_FOUND: u16 = 0x6A88;
const SW_INS_NOT_SUPPORTED: u16 = 0x6D00;
const SW_CONDITIONS: u16 = 0x6985;
const SW_WRONG_LENGTH: u16 = 0x6700;
/// The most command data a chain of APDUs may carry: a YubiKey holds objects of at most
/// 3,052 bytes, and a real card's buffer is bounded too; a host that keeps chaining gets
/// "wrong length" instead of growing the card's memory.
const MAX_CHAINED_BYTES: usize = 4096;

const PIV_AID: [u8; 5] = [0xA0, 0x00, 0x00, 0x03, 0x08];
pub const DEFAULT_PIN: &[u8] = b"123456";
pub const DEFAULT_PUK: &[u8] = b"12345678";
pub const DEFAULT_MGM_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

const ALG_3DES: u8 = 0x03;
const ALG_P256: u8 = 0x11;
const ALG_P384: u8 = 0x14;
const MGM_KEY_REF: u8 = 0x9B;

/// Touch policies (the card waits for a touch; tests press it through the handle).
const TOUCH_NEVER: u8 = 1;
const TOUCH_ALWAYS: u8 = 2;
const TOUCH_CACHED: u8 = 3;
const PIN_NEVER: u8 = 1;
const PIN_ONCE: u8 = 2;
const PIN_ALWAYS: u8 = 3;

enum SecretKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl SecretKey {
    fn public_point(&self) -> Vec<u8> {
        match self {
            SecretKey::P256(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            SecretKey::P384(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }

    fn spki(&self) -> Vec<u8> {
        match self {
            SecretKey::P256(k) => k
                .verifying_key()
                .to_public_key_der()
                .expect("DER")
                .into_vec(),
            SecretKey::P384(k) => k
                .verifying_key()
                .to_public_key_der()
                .expect("DER")
                .into_vec(),
        }
    }

    fn algorithm(&self) -> u8 {
        match self {
            SecretKey::P256(_) => ALG_P256,
            SecretKey::P384(_) => ALG_P384,
        }
    }
}

struct SlotKey {
    key: SecretKey,
    pin_policy: u8,
    touch_policy: u8,
    generated: bool,
}

struct Credential {
    value: Vec<u8>,
    tries: u8,
    max_tries: u8,
    default: bool,
}

impl Credential {
    fn new(value: &[u8], tries: u8) -> Credential {
        Credential {
            value: pad(value),
            tries,
            max_tries: tries,
            default: true,
        }
    }

    fn check(&mut self, offered: &[u8]) -> Result<(), u16> {
        if self.tries == 0 {
            return Err(SW_BLOCKED);
        }
        if pad(offered) == self.value {
            self.tries = self.max_tries;
            Ok(())
        } else {
            self.tries -= 1;
            Err(if self.tries == 0 {
                SW_BLOCKED
            } else {
                0x63C0 | self.tries as u16
            })
        }
    }
}

fn pad(value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    out.resize(8, 0xff);
    out
}

/// How a touch-policy key learns it was touched.
pub trait TouchSensor: Send {
    /// Waits for a touch, at most `timeout`; true when touched.
    fn wait(&self, timeout: Duration) -> bool;
}

pub struct PivCard {
    pub serial: u32,
    pub version: [u8; 3],
    pin: Credential,
    puk: Credential,
    mgm_key: [u8; 24],
    mgm_default: bool,
    slots: HashMap<u8, SlotKey>,
    objects: HashMap<Vec<u8>, Vec<u8>>,
    pub ca: AttestationCa,
    pub touch_timeout: Duration,
    // Security state.
    pin_verified: bool,
    /// A VERIFY since the last signature with a PIN-always key.
    pin_fresh: bool,
    mgm_authenticated: bool,
    witness: Option<[u8; 8]>,
    last_touch: Option<Instant>,
    // Transport state.
    chained: Vec<u8>,
    pending_response: Vec<u8>,
}

impl PivCard {
    pub fn new(serial: u32) -> PivCard {
        let ca = AttestationCa::new();
        let mut objects = HashMap::new();
        objects.insert(vec![0x5F, 0xFF, 0x01], cert_object(&ca.f9_der));
        PivCard {
            serial,
            version: [5, 4, 3],
            pin: Credential::new(DEFAULT_PIN, 3),
            puk: Credential::new(DEFAULT_PUK, 3),
            mgm_key: DEFAULT_MGM_KEY,
            mgm_default: true,
            slots: HashMap::new(),
            objects,
            ca,
            touch_timeout: Duration::from_secs(15),
            pin_verified: false,
            pin_fresh: false,
            mgm_authenticated: false,
            witness: None,
            last_touch: None,
            chained: Vec::new(),
            pending_response: Vec::new(),
        }
    }

    /// ATR of a YubiKey 5 NFC.
    pub fn atr(&self) -> Vec<u8> {
        vec![
            0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0,
            0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
        ]
    }

    /// Card reset or power cycle: the security state goes, keys and objects stay.
    pub fn reset(&mut self) {
        self.pin_verified = false;
        self.pin_fresh = false;
        self.mgm_authenticated = false;
        self.witness = None;
        self.chained.clear();
        self.pending_response.clear();
    }

    /// Handles one command APDU; returns the response APDU (data and status word).
    pub fn process(&mut self, apdu: &[u8], touch: &dyn TouchSensor) -> Vec<u8> {
        let Some(command) = Command::parse(apdu) else {
            return sw_only(SW_WRONG_LENGTH);
        };
        if command.ins == 0xC0 {
            return self.next_chunk();
        }
        self.pending_response.clear();
        if self.chained.len() + command.data.len() > MAX_CHAINED_BYTES {
            self.chained.clear();
            return sw_only(SW_WRONG_LENGTH);
        }
        if command.cla & 0x10 != 0 {
            self.chained.extend_from_slice(command.data);
            return sw_only(SW_OK);
        }
        let mut data = std::mem::take(&mut self.chained);
        data.extend_from_slice(command.data);
        let result = self.dispatch(command.ins, command.p1, command.p2, &data, touch);
        match result {
            Ok(body) => {
                self.pending_response = body;
                self.next_chunk()
            }
            Err(sw) => sw_only(sw),
        }
    }

    /// Up to 256 bytes of the pending response; 61xx says more is waiting.
    fn next_chunk(&mut self) -> Vec<u8> {
        let take = self.pending_response.len().min(256);
        let mut out: Vec<u8> = self.pending_response.drain(..take).collect();
        let left = self.pending_response.len();
        let sw = if left == 0 {
            SW_OK
        } else {
            0x6100 | left.min(0xff) as u16 & if left >= 256 { 0 } else { 0xff }
        };
        out.extend_from_slice(&sw.to_be_bytes());
        out
    }

    fn dispatch(
        &mut self,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        touch: &dyn TouchSensor,
    ) -> Result<Vec<u8>, u16> {
        match ins {
            0xA4 => self.select(p1, data),
            0xFD => Ok(self.version.to_vec()),
            0xF8 => Ok(self.serial.to_be_bytes().to_vec()),
            0x20 => self.verify(p2, data),
            0x24 => self.change_reference(p2, data),
            0x2C => self.reset_retry_counter(data),
            0x87 => self.general_authenticate(p1, p2, data, touch),
            0x47 => self.generate(p2, data),
            0xCB => self.get_data(data),
            0xDB => self.put_data(data),
            0xF9 => self.attest(p1),
            0xF7 => self.metadata(p2),
            0xFF => self.set_management_key(data),
            0xFA => self.set_pin_retries(p1, p2),
            0xFB => self.factory_reset(),
            _ => Err(SW_INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, p1: u8, aid: &[u8]) -> Result<Vec<u8>, u16> {
        if p1 != 0x04 || aid.len() < 5 || aid[..5] != PIV_AID {
            return Err(SW_NOT_FOUND);
        }
        self.reset();
        // Application property template: the full AID and the coexistent tag allocation.
        let mut inner = tlv::encode(&[0x4F], &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00]);
        inner.extend(tlv::encode(&[0x79], &tlv::encode(&[0x4F], &PIV_AID)));
        Ok(tlv::encode(&[0x61], &inner))
    }

    fn verify(&mut self, p2: u8, data: &[u8]) -> Result<Vec<u8>, u16> {
        match p2 {
            0x80 => {}
            0xFF => {
                self.pin_verified = false;
                self.pin_fresh = false;
                return Ok(Vec::new());
            }
            _ => return Err(SW_REFERENCE_NOT_FOUND),
        }
        if data.is_empty() {
            return if self.pin.tries == 0 {
                Err(SW_BLOCKED)
            } else if self.pin_verified {
                Ok(Vec::new())
            } else {
                Err(0x63C0 | self.pin.tries as u16)
            };
        }
        match self.pin.check(data) {
            Ok(()) => {
                self.pin_verified = true;
                self.pin_fresh = true;
                Ok(Vec::new())
            }
            Err(sw) => {
                self.pin_verified = false;
                self.pin_fresh = false;
                Err(sw)
            }
        }
    }

    fn change_reference(&mut self, p2: u8, data: &[u8]) -> Result<Vec<u8>, u16> {
        if data.len() != 16 {
            return Err(SW_WRONG_DATA);
        }
        let credential = match p2 {
            0x80 => &mut self.pin,
            0x81 => &mut self.puk,
            _ => return Err(SW_REFERENCE_NOT_FOUND),
        };
        credential.check(&data[..8])?;
        credential.value = data[8..].to_vec();
        credential.default = false;
        Ok(Vec::new())
    }

    fn reset_retry_counter(&mut self, data: &[u8]) -> Result<Vec<u8>, u16> {
        if data.len() != 16 {
            return Err(SW_WRONG_DATA);
        }
        self.puk.check(&data[..8])?;
        self.pin.value = data[8..].to_vec();
        self.pin.tries = self.pin.max_tries;
        Ok(Vec::new())
    }

    fn general_authenticate(
        &mut self,
        algorithm: u8,
        key: u8,
        data: &[u8],
        touch: &dyn TouchSensor,
    ) -> Result<Vec<u8>, u16> {
        let outer = tlv::parse(data).ok_or(SW_WRONG_DATA)?;
        let template = tlv::find(&outer, &[0x7C]).ok_or(SW_WRONG_DATA)?;
        let items = tlv::parse(template).ok_or(SW_WRONG_DATA)?;
        if key == MGM_KEY_REF {
            if algorithm != ALG_3DES {
                return Err(SW_WRONG_P1P2);
            }
            return self.authenticate_management_key(&items);
        }
        let slot = self.slots.get(&key).ok_or(SW_REFERENCE_NOT_FOUND)?;
        if slot.key.algorithm() != algorithm {
            return Err(SW_WRONG_P1P2);
        }
        let digest = tlv::find(&items, &[0x81]).ok_or(SW_WRONG_DATA)?;
        match slot.pin_policy {
            PIN_NEVER => {}
            PIN_ALWAYS if !self.pin_fresh => return Err(SW_SECURITY),
            _ if !self.pin_verified => return Err(SW_SECURITY),
            _ => {}
        }
        match slot.touch_policy {
            TOUCH_ALWAYS => {
                if !touch.wait(self.touch_timeout) {
                    return Err(SW_SECURITY);
                }
                self.last_touch = Some(Instant::now());
            }
            TOUCH_CACHED => {
                let cached = self
                    .last_touch
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(15));
                if !cached {
                    if !touch.wait(self.touch_timeout) {
                        return Err(SW_SECURITY);
                    }
                    self.last_touch = Some(Instant::now());
                }
            }
            _ => {}
        }
        let signature = match &slot.key {
            SecretKey::P256(k) => {
                let digest = fit(digest, 32)?;
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|_| SW_WRONG_DATA)?;
                sig.to_der().as_bytes().to_vec()
            }
            SecretKey::P384(k) => {
                let digest = fit(digest, 48)?;
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|_| SW_WRONG_DATA)?;
                sig.to_der().as_bytes().to_vec()
            }
        };
        if slot.pin_policy == PIN_ALWAYS {
            self.pin_fresh = false;
        }
        Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x82], &signature)))
    }

    /// 3DES challenge-response: the card sends E(witness), the host returns the witness
    /// with a challenge of its own, the card answers E(challenge).
    fn authenticate_management_key(&mut self, items: &[(Vec<u8>, &[u8])]) -> Result<Vec<u8>, u16> {
        let cipher = des::TdesEde3::new_from_slice(&self.mgm_key).map_err(|_| SW_WRONG_DATA)?;
        let witness = tlv::find(items, &[0x80]);
        let challenge = tlv::find(items, &[0x81]);
        match (witness, challenge) {
            (Some([]), None) => {
                let plain: [u8; 8] = rand::random();
                self.witness = Some(plain);
                let mut block = des::cipher::generic_array::GenericArray::clone_from_slice(&plain);
                cipher.encrypt_block(&mut block);
                Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x80], &block)))
            }
            (Some(answer), Some(challenge)) if answer.len() == 8 && challenge.len() == 8 => {
                let expected = self.witness.take().ok_or(SW_CONDITIONS)?;
                if answer != expected {
                    self.mgm_authenticated = false;
                    return Err(SW_SECURITY);
                }
                self.mgm_authenticated = true;
                let mut block =
                    des::cipher::generic_array::GenericArray::clone_from_slice(challenge);
                cipher.encrypt_block(&mut block);
                Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x82], &block)))
            }
            _ => Err(SW_WRONG_DATA),
        }
    }

    fn generate(&mut self, slot: u8, data: &[u8]) -> Result<Vec<u8>, u16> {
        if !self.mgm_authenticated {
            return Err(SW_SECURITY);
        }
        if !is_key_slot(slot) {
            return Err(SW_WRONG_P1P2);
        }
        let outer = tlv::parse(data).ok_or(SW_WRONG_DATA)?;
        let template =
            tlv::parse(tlv::find(&outer, &[0xAC]).ok_or(SW_WRONG_DATA)?).ok_or(SW_WRONG_DATA)?;
        let algorithm = *tlv::find(&template, &[0x80])
            .and_then(|a| a.first())
            .ok_or(SW_WRONG_DATA)?;
        let pin_policy = match tlv::find(&template, &[0xAA]).and_then(|v| v.first()) {
            Some(0) | None => default_pin_policy(slot),
            Some(p @ 1..=3) => *p,
            Some(_) => return Err(SW_WRONG_DATA),
        };
        let touch_policy = match tlv::find(&template, &[0xAB]).and_then(|v| v.first()) {
            Some(0) | None => TOUCH_NEVER,
            Some(t @ 1..=3) => *t,
            Some(_) => return Err(SW_WRONG_DATA),
        };
        let key = match algorithm {
            ALG_P256 => SecretKey::P256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
            ALG_P384 => SecretKey::P384(p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
            // RSA and the 5.7 algorithms are not offered by this card.
            _ => return Err(SW_WRONG_DATA),
        };
        let point = key.public_point();
        self.slots.insert(
            slot,
            SlotKey {
                key,
                pin_policy,
                touch_policy,
                generated: true,
            },
        );
        Ok(tlv::encode(&[0x7F, 0x49], &tlv::encode(&[0x86], &point)))
    }

    fn get_data(&mut self, data: &[u8]) -> Result<Vec<u8>, u16> {
        let items = tlv::parse(data).ok_or(SW_WRONG_DATA)?;
        let tag = tlv::find(&items, &[0x5C]).ok_or(SW_WRONG_DATA)?;
        // The PIN-protected management key lives in the printed-information object.
        if tag == [0x5F, 0xC1, 0x09] && !self.pin_verified {
            return Err(SW_SECURITY);
        }
        let object = self.objects.get(tag).ok_or(SW_NOT_FOUND)?;
        Ok(tlv::encode(&[0x53], object))
    }

    fn put_data(&mut self, data: &[u8]) -> Result<Vec<u8>, u16> {
        if !self.mgm_authenticated {
            return Err(SW_SECURITY);
        }
        let items = tlv::parse(data).ok_or(SW_WRONG_DATA)?;
        let tag = tlv::find(&items, &[0x5C]).ok_or(SW_WRONG_DATA)?.to_vec();
        let value = tlv::find(&items, &[0x53]).ok_or(SW_WRONG_DATA)?;
        if value.is_empty() {
            self.objects.remove(&tag);
        } else {
            self.objects.insert(tag, value.to_vec());
        }
        Ok(Vec::new())
    }

    fn attest(&mut self, slot: u8) -> Result<Vec<u8>, u16> {
        let key = self.slots.get(&slot).ok_or(SW_REFERENCE_NOT_FOUND)?;
        if !key.generated {
            return Err(SW_WRONG_DATA);
        }
        Ok(self.ca.attest(
            &key.key.spki(),
            &SlotFacts {
                slot,
                firmware: self.version,
                serial: self.serial,
                pin_policy: key.pin_policy,
                touch_policy: key.touch_policy,
            },
        ))
    }

    fn metadata(&mut self, p2: u8) -> Result<Vec<u8>, u16> {
        let mut out = Vec::new();
        match p2 {
            0x80 | 0x81 => {
                let credential = if p2 == 0x80 { &self.pin } else { &self.puk };
                tlv::put(&mut out, &[0x01], &[0xFF]);
                tlv::put(&mut out, &[0x05], &[credential.default as u8]);
                tlv::put(&mut out, &[0x06], &[credential.max_tries, credential.tries]);
            }
            MGM_KEY_REF => {
                tlv::put(&mut out, &[0x01], &[ALG_3DES]);
                tlv::put(&mut out, &[0x02], &[0x00, TOUCH_NEVER]);
                tlv::put(&mut out, &[0x05], &[self.mgm_default as u8]);
            }
            slot => {
                let key = self.slots.get(&slot).ok_or(SW_REFERENCE_NOT_FOUND)?;
                tlv::put(&mut out, &[0x01], &[key.key.algorithm()]);
                tlv::put(&mut out, &[0x02], &[key.pin_policy, key.touch_policy]);
                tlv::put(&mut out, &[0x03], &[if key.generated { 1 } else { 2 }]);
                tlv::put(
                    &mut out,
                    &[0x04],
                    &tlv::encode(&[0x86], &key.key.public_point()),
                );
            }
        }
        Ok(out)
    }

    fn set_management_key(&mut self, data: &[u8]) -> Result<Vec<u8>, u16> {
        if !self.mgm_authenticated {
            return Err(SW_SECURITY);
        }
        if data.len() != 27 || data[0] != ALG_3DES || data[1] != MGM_KEY_REF || data[2] != 24 {
            return Err(SW_WRONG_DATA);
        }
        self.mgm_key.copy_from_slice(&data[3..]);
        self.mgm_default = false;
        Ok(Vec::new())
    }

    fn set_pin_retries(&mut self, pin_tries: u8, puk_tries: u8) -> Result<Vec<u8>, u16> {
        if !self.mgm_authenticated || !self.pin_verified {
            return Err(SW_SECURITY);
        }
        self.pin = Credential::new(DEFAULT_PIN, pin_tries);
        self.puk = Credential::new(DEFAULT_PUK, puk_tries);
        Ok(Vec::new())
    }

    fn factory_reset(&mut self) -> Result<Vec<u8>, u16> {
        if self.pin.tries != 0 || self.puk.tries != 0 {
            return Err(SW_CONDITIONS);
        }
        let serial = self.serial;
        let ca = std::mem::take(&mut self.ca);
        *self = PivCard::new(serial);
        self.ca = ca;
        self.objects
            .insert(vec![0x5F, 0xFF, 0x01], cert_object(&self.ca.f9_der));
        Ok(Vec::new())
    }
}

struct Command<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
}

impl<'a> Command<'a> {
    /// Short and extended APDUs of cases 1-4.
    fn parse(apdu: &'a [u8]) -> Option<Command<'a>> {
        let header = apdu.get(..4)?;
        let body = &apdu[4..];
        let data = match body.len() {
            0 | 1 => &body[..0],
            _ if body[0] == 0 && body.len() >= 3 => {
                let lc = ((body[1] as usize) << 8) | body[2] as usize;
                if body.len() == 3 {
                    &body[..0] // extended Le only
                } else {
                    body.get(3..3 + lc)?
                }
            }
            _ => {
                let lc = body[0] as usize;
                body.get(1..1 + lc)?
            }
        };
        Some(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
        })
    }
}

fn sw_only(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

/// A digest as the curve's order length: left-padded when shorter, refused when longer.
fn fit(digest: &[u8], len: usize) -> Result<Vec<u8>, u16> {
    if digest.len() > len {
        return Err(SW_WRONG_DATA);
    }
    let mut out = vec![0u8; len - digest.len()];
    out.extend_from_slice(digest);
    Ok(out)
}

fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

fn default_pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => PIN_ALWAYS,
        0x9E => PIN_NEVER,
        _ => PIN_ONCE,
    }
}

/// A certificate as PIV stores it: 70 cert, 71 certinfo (uncompressed), FE LRC.
fn cert_object(der: &[u8]) -> Vec<u8> {
    let mut out = tlv::encode(&[0x70], der);
    tlv::put(&mut out, &[0x71], &[0x00]);
    tlv::put(&mut out, &[0xFE], &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use des::cipher::KeyInit;

    struct NoTouch;
    impl TouchSensor for NoTouch {
        fn wait(&self, _: Duration) -> bool {
            false
        }
    }

    fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00, ins, p1, p2, data.len() as u8];
        out.extend_from_slice(data);
        out
    }

    fn sw(response: &[u8]) -> u16 {
        u16::from_be_bytes([response[response.len() - 2], response[response.len() - 1]])
    }

    #[test]
    fn wrong_pins_count_down_and_block() {
        let mut card = PivCard::new(1);
        assert_eq!(
            sw(&card.process(&apdu(0x20, 0, 0x80, &pad(b"000000")), &NoTouch)),
            0x63C2
        );
        assert_eq!(sw(&card.process(&[0, 0x20, 0, 0x80], &NoTouch)), 0x63C2);
        assert_eq!(
            sw(&card.process(&apdu(0x20, 0, 0x80, &pad(DEFAULT_PIN)), &NoTouch)),
            SW_OK
        );
        for expected in [0x63C2, 0x63C1, SW_BLOCKED, SW_BLOCKED] {
            assert_eq!(
                sw(&card.process(&apdu(0x20, 0, 0x80, &pad(b"999999")), &NoTouch)),
                expected
            );
        }
    }

    fn authenticate_default_management_key(card: &mut PivCard) {
        use des::cipher::BlockDecrypt;
        let step1 = card.process(&apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x80, 0x00]), &NoTouch);
        assert_eq!(sw(&step1), SW_OK);
        let cipher = des::TdesEde3::new_from_slice(&DEFAULT_MGM_KEY).unwrap();
        let mut witness = des::cipher::generic_array::GenericArray::clone_from_slice(&step1[4..12]);
        cipher.decrypt_block(&mut witness);
        let mut step2 = vec![0x7C, 0x14, 0x80, 0x08];
        step2.extend_from_slice(&witness);
        step2.extend_from_slice(&[0x81, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            sw(&card.process(&apdu(0x87, 0x03, 0x9B, &step2), &NoTouch)),
            SW_OK
        );
    }

    #[test]
    fn a_pin_always_key_needs_a_verify_before_each_signature() {
        let mut card = PivCard::new(1);
        authenticate_default_management_key(&mut card);
        let generate = [0xAC, 0x06, 0x80, 0x01, ALG_P256, 0xAA, 0x01, PIN_ALWAYS];
        assert_eq!(
            sw(&card.process(&apdu(0x47, 0, 0x9C, &generate), &NoTouch)),
            SW_OK
        );
        let sign = {
            let mut data = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
            data.extend_from_slice(&[0x11; 32]);
            apdu(0x87, ALG_P256, 0x9C, &data)
        };
        assert_eq!(
            sw(&card.process(&sign, &NoTouch)),
            SW_SECURITY,
            "no PIN yet"
        );
        card.process(&apdu(0x20, 0, 0x80, &pad(DEFAULT_PIN)), &NoTouch);
        assert_eq!(sw(&card.process(&sign, &NoTouch)), SW_OK);
        assert_eq!(
            sw(&card.process(&sign, &NoTouch)),
            SW_SECURITY,
            "the PIN was used up"
        );
        card.process(&apdu(0x20, 0, 0x80, &pad(DEFAULT_PIN)), &NoTouch);
        assert_eq!(sw(&card.process(&sign, &NoTouch)), SW_OK);
    }

    #[test]
    fn key_management_needs_the_management_key() {
        let mut card = PivCard::new(1);
        let generate = [0xAC, 0x03, 0x80, 0x01, ALG_P256];
        assert_eq!(
            sw(&card.process(&apdu(0x47, 0, 0x9A, &generate), &NoTouch)),
            SW_SECURITY
        );
        authenticate_default_management_key(&mut card);
        assert_eq!(
            sw(&card.process(&apdu(0x47, 0, 0x9A, &generate), &NoTouch)),
            SW_OK
        );
        // A reset forgets the authentication.
        card.reset();
        assert_eq!(
            sw(&card.process(&apdu(0x47, 0, 0x9A, &generate), &NoTouch)),
            SW_SECURITY
        );
    }

    #[test]
    fn long_responses_are_chained_with_get_response() {
        let mut card = PivCard::new(1);
        let first = card.process(
            &apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xFF, 0x01]),
            &NoTouch,
        );
        assert_eq!(first.len(), 258);
        assert_eq!(first[256], 0x61);
        let mut body = first[..256].to_vec();
        loop {
            let next = card.process(&[0x00, 0xC0, 0x00, 0x00, 0x00], &NoTouch);
            body.extend_from_slice(&next[..next.len() - 2]);
            if sw(&next) == SW_OK {
                break;
            }
        }
        let items = tlv::parse(&body).unwrap();
        assert!(tlv::find(&items, &[0x53]).unwrap().len() > 256);
    }
}
