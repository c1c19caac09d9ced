//! What a registry holds for a cosign signature: the signature manifest, each layer's
//! base64 signature and its simple-signing payload.
//!
//! Parts: `key` (the verifying key, DER SPKI), `digest` (the image digest the signature must
//! name), `manifest` (the signature manifest), then `payload` parts matched to the manifest's
//! layers in order. The law: a signature is accepted only if it verifies under `key` and its
//! payload names `digest`.

use trustctl::cosign::payload::Payload;
use trustctl::cosign::signature::{check_signature, SignatureManifest};
use trustd_notary::verify::{self, Signed};

use crate::framing;

pub fn run(data: &[u8]) {
    let parts = framing::split(data);
    let part = |wanted: &[u8]| parts.iter().find(|(n, _)| *n == wanted).map(|p| p.1);
    let key = part(b"key").unwrap_or_default();
    let digest = std::str::from_utf8(part(b"digest").unwrap_or_default()).unwrap_or_default();
    let payloads: Vec<&[u8]> = parts
        .iter()
        .filter(|(n, _)| *n == b"payload")
        .map(|p| p.1)
        .collect();
    if let Some(bytes) = part(b"payload") {
        let _ = Payload::parse(bytes);
    }
    let Some(manifest) = part(b"manifest") else {
        return;
    };
    let Ok(manifest) = serde_json::from_slice::<SignatureManifest>(manifest) else {
        return;
    };
    for ((_, signature), payload) in manifest.signatures().zip(payloads) {
        if check_signature(key, payload, signature, digest).is_ok() {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(signature)
                .expect("an accepted signature is base64");
            assert!(verify::verify(key, Signed::Message(payload), &raw).is_ok());
            let named = Payload::parse(payload).expect("an accepted payload parses");
            assert_eq!(named.critical.image.docker_manifest_digest, digest);
        }
    }
}
