//! The simple-signing payload cosign signs: which image (by repository and manifest digest)
//! the signature is for.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub critical: Critical,
    /// Extra claims; cosign writes `null` when there are none.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

pub const SIGNATURE_TYPE: &str = "cosign container image signature";

impl Payload {
    /// The payload for `repository` (`registry/path`) at `digest` (`sha256:HEX`).
    pub fn new(repository: &str, digest: &str) -> Payload {
        Payload {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_owned(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_owned(),
                },
                kind: SIGNATURE_TYPE.to_owned(),
            },
            optional: None,
        }
    }

    /// The bytes as cosign writes them (Go's field order, no whitespace).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payloads serialize")
    }

    pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
        let payload: Payload = serde_json::from_slice(bytes)
            .map_err(|e| format!("the signature payload is not a simple-signing payload: {e}"))?;
        if payload.critical.kind != SIGNATURE_TYPE {
            return Err(format!(
                "the payload's type is {:?}, not {SIGNATURE_TYPE:?}",
                payload.critical.kind
            ));
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_payload_as_cosign_does() {
        let payload = Payload::new("registry.example.com/team/app", "sha256:abc");
        assert_eq!(
            String::from_utf8(payload.to_bytes()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"registry.example.com/team/app"},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}"#
        );
        assert_eq!(Payload::parse(&payload.to_bytes()).unwrap(), payload);
        assert!(Payload::parse(br#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"b"},"type":"other"},"optional":null}"#).is_err());
    }
}
