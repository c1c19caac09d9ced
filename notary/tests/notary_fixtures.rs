//! The Notary v1 format layer against metadata written by notary 0.7 and the docker CLI:
//! every file parses, re-serializes to the same bytes, maps onto the typed model without loss,
//! and carries signatures that verify with the keys its parent role names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha512};
use trustd_notary::envelope::Envelope;
use trustd_notary::keys::{KeyError, KeyType, PublicKey};
use trustd_notary::model::{self, RoleKeys, Root, Snapshot, Targets, Timestamp};
use trustd_notary::{canonical, threshold};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notary")
}

/// Every repository state: folder name -> role name -> file bytes.
fn repositories() -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut repos = BTreeMap::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let mut roles = BTreeMap::new();
        for role in ["root", "targets", "snapshot", "timestamp"] {
            roles.insert(
                role.to_owned(),
                std::fs::read(dir.join(format!("{role}.json"))).unwrap(),
            );
        }
        if let Ok(delegated) = std::fs::read_dir(dir.join("targets")) {
            for file in delegated {
                let path = file.unwrap().path();
                let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
                roles.insert(format!("targets/{name}"), std::fs::read(&path).unwrap());
            }
        }
        repos.insert(dir.file_name().unwrap().to_str().unwrap().to_owned(), roles);
    }
    assert_eq!(repos.len(), 7, "fixture repositories");
    repos
}

#[test]
fn every_file_is_rewritten_byte_for_byte() {
    for (repo, roles) in repositories() {
        for (role, bytes) in roles {
            let envelope = Envelope::parse(&bytes).unwrap();
            assert_eq!(
                String::from_utf8(envelope.to_wire().unwrap()).unwrap(),
                String::from_utf8(bytes).unwrap(),
                "{repo}/{role}"
            );
        }
    }
}

#[test]
fn the_typed_model_loses_nothing() {
    for (repo, roles) in repositories() {
        for (role, bytes) in roles {
            let envelope = Envelope::parse(&bytes).unwrap();
            let typed = match role.as_str() {
                "root" => {
                    serde_json::to_value(model::from_signed::<Root>(&envelope.signed).unwrap())
                }
                "snapshot" => {
                    serde_json::to_value(model::from_signed::<Snapshot>(&envelope.signed).unwrap())
                }
                "timestamp" => {
                    serde_json::to_value(model::from_signed::<Timestamp>(&envelope.signed).unwrap())
                }
                _ => serde_json::to_value(model::from_signed::<Targets>(&envelope.signed).unwrap()),
            }
            .unwrap();
            assert_eq!(
                canonical::to_vec(&typed).unwrap(),
                envelope.canonical_signed().unwrap(),
                "{repo}/{role}"
            );
            // And the expiry is written exactly as Go writes it.
            let expires = envelope.signed["expires"].as_str().unwrap();
            assert_eq!(
                model::format_expires(model::parse_expires(expires).unwrap()),
                expires,
                "{repo}/{role}"
            );
        }
    }
}

fn check_signatures(
    label: &str,
    envelope: &Envelope,
    keys: &BTreeMap<String, PublicKey>,
    role: &RoleKeys,
) {
    let signers = threshold::check(label, envelope, keys, role).unwrap_or_else(|e| panic!("{e}"));
    assert!(!signers.is_empty());
    // The same signatures over a changed body must not meet the threshold.
    let mut tampered = envelope.clone();
    tampered.signed["version"] = serde_json::json!(999);
    let err = threshold::check(label, &tampered, keys, role).unwrap_err();
    assert!(
        matches!(err, threshold::ThresholdError::NotMet { valid: 0, .. }),
        "{label}: {err}"
    );
    // A role that lists none of the signing keys is not satisfied either.
    let strangers = RoleKeys {
        keyids: vec!["0".repeat(64)],
        threshold: 1,
    };
    assert!(threshold::check(label, envelope, keys, &strangers).is_err());
}

#[test]
fn every_signature_verifies_with_the_keys_its_parent_names() {
    for (repo, roles) in repositories() {
        let parse = |name: &str| Envelope::parse(&roles[name]).unwrap();
        let root_env = parse("root");
        let root: Root = model::from_signed(&root_env.signed).unwrap();
        for (id, key) in &root.keys {
            assert_eq!(&key.id(), id, "{repo}: root key ID");
        }
        for role in ["root", "targets", "snapshot", "timestamp"] {
            check_signatures(
                &format!("{repo}/{role}"),
                &parse(role),
                &root.keys,
                &root.roles[role],
            );
        }
        // Delegations: every targets/... file is signed by keys targets.json delegates to it.
        let targets: Targets = model::from_signed(&parse("targets").signed).unwrap();
        for (id, key) in &targets.delegations.keys {
            assert_eq!(&key.id(), id, "{repo}: delegation key ID");
        }
        for name in roles.keys().filter(|n| n.starts_with("targets/")) {
            let delegation = targets
                .delegations
                .roles
                .iter()
                .find(|r| &r.name == name)
                .unwrap_or_else(|| panic!("{repo}: {name} is not delegated"));
            check_signatures(
                &format!("{repo}/{name}"),
                &parse(name),
                &targets.delegations.keys,
                &RoleKeys {
                    keyids: delegation.keyids.clone(),
                    threshold: delegation.threshold,
                },
            );
        }
    }
}

#[test]
fn snapshot_and_timestamp_vouch_for_the_stored_bytes() {
    for (repo, roles) in repositories() {
        let snapshot: Snapshot =
            model::from_signed(&Envelope::parse(&roles["snapshot"]).unwrap().signed).unwrap();
        // One fixture (04) vouches for targets/bob without a copy of that file: check every
        // file that is there, and always root and targets.
        let present: Vec<_> = snapshot
            .meta
            .keys()
            .filter(|n| roles.contains_key(*n))
            .collect();
        assert!(present.contains(&&"root".to_owned()) && present.contains(&&"targets".to_owned()));
        for name in present {
            let meta = &snapshot.meta[name];
            let bytes = &roles[name];
            assert_eq!(meta.length, bytes.len() as i64, "{repo}: length of {name}");
            assert_eq!(
                meta.hashes["sha256"].0,
                Sha256::digest(bytes).to_vec(),
                "{repo}: {name}"
            );
            assert_eq!(
                meta.hashes["sha512"].0,
                Sha512::digest(bytes).to_vec(),
                "{repo}: {name}"
            );
        }
        let timestamp: Timestamp =
            model::from_signed(&Envelope::parse(&roles["timestamp"]).unwrap().signed).unwrap();
        let snap = &timestamp.meta["snapshot"];
        assert_eq!(snap.length, roles["snapshot"].len() as i64, "{repo}");
        assert_eq!(
            snap.hashes["sha256"].0,
            Sha256::digest(&roles["snapshot"]).to_vec(),
            "{repo}"
        );
    }
}

#[test]
fn root_keys_are_certificates_whose_canonical_id_uses_the_plain_key() {
    let roles = &repositories()["01-init-v1"];
    let root: Root = model::from_signed(&Envelope::parse(&roles["root"]).unwrap().signed).unwrap();
    let root_key_id = &root.roles["root"].keyids[0];
    let key = &root.keys[root_key_id];
    assert_eq!(key.keytype, KeyType::EcdsaX509);
    let cert = key.certificate().unwrap();
    let subject = cert.tbs_certificate.subject.to_string();
    assert!(subject.contains("CN="), "{subject}");
    let canonical = key.canonical_id().unwrap();
    assert_ne!(&canonical, root_key_id);
    assert_eq!(
        canonical,
        PublicKey::new(KeyType::Ecdsa, key.spki_der().unwrap()).id()
    );
}

#[test]
fn wrong_methods_der_signatures_and_private_parts_are_refused() {
    let roles = &repositories()["01-init-v1"];
    let envelope = Envelope::parse(&roles["targets"]).unwrap();
    let root: Root = model::from_signed(&Envelope::parse(&roles["root"]).unwrap().signed).unwrap();
    let signature = &envelope.signatures[0];
    let key = &root.keys[&signature.keyid];
    let message = envelope.canonical_signed().unwrap();
    assert!(matches!(
        key.verify("eddsa", &message, &signature.sig),
        Err(KeyError::MethodMismatch { .. })
    ));
    let der = p256::ecdsa::Signature::from_slice(&signature.sig)
        .unwrap()
        .to_der();
    assert!(matches!(
        key.verify("ecdsa", &message, der.as_bytes()),
        Err(KeyError::EcdsaNotRaw(_))
    ));
    let mut leaky = key.clone();
    leaky.keyval.private = Some("c2VjcmV0".into());
    assert!(matches!(leaky.spki_der(), Err(KeyError::PrivatePart(_))));
}
