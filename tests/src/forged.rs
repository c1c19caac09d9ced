//! A notary server run by an attacker: it holds every key of the repositories it serves, so
//! all it serves verifies (trust on first use believes its root), and it can put anything it
//! likes in the signed roles: delegation names that climb out of the trust directory, tag
//! and signer names full of terminal escape sequences.
//!
//! Keys are software P-256 keys made here; the roles are built with trustctl's own Notary
//! code (canonical JSON, envelopes, root certificates), so only their content is hostile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use trustd_notary::canonical;
use trustd_notary::envelope::{self, Envelope};
use trustd_notary::keys::{KeyType, PublicKey};
use trustd_notary::root_cert::{self, RootCertSpec};

use crate::http::{HttpServer, Response};
use crate::notary::TestCa;

/// One software key and its Notary form.
struct Key {
    signing: SigningKey,
    public: PublicKey,
}

impl Key {
    fn new() -> Key {
        let signing = SigningKey::random(&mut rand::thread_rng());
        let spki = signing
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .into_vec();
        Key {
            public: PublicKey::new(KeyType::Ecdsa, spki),
            signing,
        }
    }

    /// The same key wrapped in a self-signed root certificate for `gun`.
    fn root_certificate(&self, gun: &str) -> PublicKey {
        use x509_cert::der::Encode;
        let spki = self.public.spki_der().unwrap();
        let tbs = RootCertSpec::now(gun, &spki).tbs().unwrap();
        let sig: Signature = self.signing.sign(&tbs.to_der().unwrap());
        let cert = root_cert::assemble(tbs, sig.to_der().as_bytes()).unwrap();
        PublicKey::new(
            KeyType::EcdsaX509,
            root_cert::to_pem(&cert).unwrap().into_bytes(),
        )
    }
}

/// A delegated role of the forged repository: its name as listed in `targets`, and the tags
/// it signs (name -> sha256 hex).
pub struct ForgedDelegation {
    pub name: String,
    pub tags: Vec<(String, String)>,
}

/// What the attacker publishes for one repository.
pub struct ForgedRepository {
    pub gun: String,
    /// Tags signed in `targets` (name -> sha256 hex).
    pub tags: Vec<(String, String)>,
    pub delegations: Vec<ForgedDelegation>,
}

fn expires() -> String {
    "2036-01-01T00:00:00Z".to_owned()
}

/// The role file for `body`, signed by `key`. A body canonical JSON cannot carry (control
/// characters in names) is signed as serde_json writes it: verifiers check the signature
/// over the body as written first, so an attacker can serve it all the same.
fn signed_file(body: Value, key: &Key, keyid: &str) -> Vec<u8> {
    let canonical = canonical::to_vec(&body).unwrap_or_else(|_| serde_json::to_vec(&body).unwrap());
    let sig: Signature = key.signing.sign(&canonical);
    let signature = envelope::Signature {
        keyid: keyid.to_owned(),
        method: "ecdsa".to_owned(),
        sig: sig.to_bytes().to_vec(),
    };
    Envelope::wire(&canonical, &[signature])
}

fn meta(bytes: &[u8]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "hashes": {
            "sha256": b64.encode(Sha256::digest(bytes)),
            "sha512": b64.encode(Sha512::digest(bytes)),
        },
        "length": bytes.len(),
    })
}

fn targets_body(tags: &[(String, String)], delegations: Value, version: u64) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let targets: serde_json::Map<String, Value> = tags
        .iter()
        .map(|(tag, sha)| {
            (
                tag.clone(),
                json!({"hashes": {"sha256": b64.encode(hex::decode(sha).unwrap())}, "length": 1}),
            )
        })
        .collect();
    json!({
        "_type": "Targets",
        "delegations": delegations,
        "expires": expires(),
        "targets": targets,
        "version": version,
    })
}

impl ForgedRepository {
    /// The role files, by the names notary-server serves them under (`root.json`,
    /// `targets.<sha256>.json`, ...).
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let root_key = Key::new();
        let key = Key::new();
        let root_cert = root_key.root_certificate(&self.gun);
        let (root_id, key_id) = (root_cert.id(), key.public.id());
        let role = |id: &str| json!({"keyids": [id], "threshold": 1});
        let root = signed_file(
            json!({
                "_type": "Root",
                "consistent_snapshot": false,
                "expires": expires(),
                "keys": {
                    root_id.clone(): serde_json::to_value(&root_cert).unwrap(),
                    key_id.clone(): serde_json::to_value(&key.public).unwrap(),
                },
                "roles": {
                    "root": role(&root_id),
                    "snapshot": role(&key_id),
                    "targets": role(&key_id),
                    "timestamp": role(&key_id),
                },
                "version": 1,
            }),
            &root_key,
            &root_id,
        );
        let mut roles = BTreeMap::new();
        let delegated: Vec<Value> = self
            .delegations
            .iter()
            .map(|d| json!({"name": d.name, "keyids": [key_id], "threshold": 1, "paths": [""]}))
            .collect();
        let delegations = json!({
            "keys": {key_id.clone(): serde_json::to_value(&key.public).unwrap()},
            "roles": delegated,
        });
        for d in &self.delegations {
            let body = targets_body(&d.tags, json!({"keys": {}, "roles": []}), 1);
            roles.insert(d.name.clone(), signed_file(body, &key, &key_id));
        }
        let targets = signed_file(targets_body(&self.tags, delegations, 2), &key, &key_id);
        let mut snapshot_meta = serde_json::Map::new();
        snapshot_meta.insert("root".into(), meta(&root));
        snapshot_meta.insert("targets".into(), meta(&targets));
        for (name, bytes) in &roles {
            snapshot_meta.insert(name.clone(), meta(bytes));
        }
        let snapshot = signed_file(
            json!({"_type": "Snapshot", "expires": expires(), "meta": snapshot_meta, "version": 1}),
            &key,
            &key_id,
        );
        let timestamp = signed_file(
            json!({"_type": "Timestamp", "expires": expires(), "meta": {"snapshot": meta(&snapshot)}, "version": 1}),
            &key,
            &key_id,
        );
        roles.insert("root".into(), root);
        roles.insert("targets".into(), targets);
        roles.insert("snapshot".into(), snapshot);
        roles.insert("timestamp".into(), timestamp);
        let mut files = BTreeMap::new();
        for (role, bytes) in roles {
            let sum = hex::encode(Sha256::digest(&bytes));
            files.insert(format!("{role}.{sum}.json"), bytes.clone());
            files.insert(format!("{role}.json"), bytes);
        }
        files
    }
}

/// `path` with `.` and `..` segments resolved, as URL parsers do before a request is sent.
fn resolve_dots(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// The attacker's notary server: HTTPS with a certificate from `ca`, serving forged
/// repositories; it also records every path asked for.
pub struct ForgedNotary {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    _server: HttpServer,
}

impl ForgedNotary {
    pub fn start(ca: &TestCa, repositories: &[ForgedRepository]) -> ForgedNotary {
        let mut files = BTreeMap::new();
        for repository in repositories {
            for (name, bytes) in repository.files() {
                // As a client's URL parser resolves it: a name with `..` is asked for there.
                let path = resolve_dots(&format!("/v2/{}/_trust/tuf/{name}", repository.gun));
                files.insert(path, bytes);
            }
        }
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = requests.clone();
        let (cert, key) = ca.server_cert();
        let server = HttpServer::start(Some((&cert, &key)), move |request| {
            log.lock().unwrap().push(request.path().to_owned());
            match files.get(request.path()) {
                Some(bytes) => Response::new(200, bytes.clone()),
                None => Response::new(404, r#"{"errors":[{"code":"METADATA_NOT_FOUND"}]}"#),
            }
        });
        ForgedNotary {
            url: server.url.clone(),
            requests,
            _server: server,
        }
    }
}
