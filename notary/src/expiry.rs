//! What in a repository's trust data expires soon, and what renews it.
//!
//! A root certificate that expires is the one failure nothing repairs: a notary client whose
//! cached root's certificates have expired refuses every later root, however correctly it is
//! signed (DESIGN.md section 8), so its users must delete their trust data by hand. Roles that
//! expire make every client refuse the repository until they are re-signed. Both are found
//! here early enough to act: root certificates 180 days ahead (notary warns 6 months ahead),
//! roles 30 days ahead. The timestamp is left out: notary-server re-signs it every few days.

use time::OffsetDateTime;

use crate::certificate;
use crate::model;
use crate::trust::VerifiedRepository;

/// How far ahead a root certificate's end is reported.
pub const ROOT_CERTIFICATE_WARNING_DAYS: i64 = 180;
/// How far ahead a role's expiry is reported.
pub const ROLE_WARNING_DAYS: i64 = 30;

/// One thing in the trust data that expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// "root certificate <key ID>", "root", "targets", "snapshot", "targets/releases", ...
    pub what: String,
    /// When it expires.
    pub expires: OffsetDateTime,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// Whether it is within its warning window (or past it).
    pub soon: bool,
    /// The command that renews it.
    pub renew: String,
}

/// Everything in `repo` that expires, soonest first.
pub fn expiring(repo: &VerifiedRepository, now: OffsetDateTime) -> Vec<Expiring> {
    let gun = &repo.gun;
    let mut found = Vec::new();
    let mut add = |what: String, expires: OffsetDateTime, warn_days: i64, renew: String| {
        let days_left = (expires - now).whole_days();
        found.push(Expiring {
            what,
            expires,
            days_left,
            soon: expires - now <= time::Duration::days(warn_days),
            renew,
        });
    };
    let renew_certificates = format!("trustctl key rotate {gun} root --renew-certificates");
    if let Some(role) = repo.root.roles.get("root") {
        for keyid in &role.keyids {
            let Some(cert) = repo
                .root
                .keys
                .get(keyid)
                .and_then(|key| key.certificate().ok())
            else {
                continue;
            };
            add(
                format!("root certificate {keyid}"),
                certificate::not_after(&cert),
                ROOT_CERTIFICATE_WARNING_DAYS,
                renew_certificates.clone(),
            );
        }
    }
    let roles = [
        ("root", &repo.root.expires, renew_certificates.clone()),
        (
            "targets",
            &repo.targets.expires,
            format!("trustctl sign {gun}:TAG (any signature re-signs targets)"),
        ),
        (
            "snapshot",
            &repo.snapshot.expires,
            format!("trustctl key rotate {gun} snapshot (or any signature, when trustd holds it)"),
        ),
    ];
    for (name, expires, renew) in roles {
        if let Ok(at) = model::parse_expires(expires) {
            add(name.to_owned(), at, ROLE_WARNING_DAYS, renew);
        }
    }
    for (name, role) in &repo.delegations {
        if let Ok(at) = model::parse_expires(&role.expires) {
            let renew = format!("trustctl sign {gun}:TAG as a signer of {name}");
            add(name.clone(), at, ROLE_WARNING_DAYS, renew);
        }
    }
    found.sort_by_key(|e| e.expires);
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    use super::*;
    use crate::keys::{KeyType, PublicKey};
    use crate::model::{Delegations, RoleKeys, RoleType, Root, Snapshot, Targets, Timestamp};
    use crate::root_cert::{self, RootCertSpec, VALIDITY_DAYS};

    const GUN: &str = "example.test/app";

    /// A root certificate made `age_days` ago (so it ends VALIDITY_DAYS after that).
    fn certificate(age_days: u64, now: OffsetDateTime) -> PublicKey {
        let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let spec = RootCertSpec {
            gun: GUN,
            public_key: spki.as_bytes(),
            not_before: now.unix_timestamp() as u64 - age_days * 86400,
            serial: [7; 16],
        };
        let tbs = spec.tbs().unwrap();
        let signature: p256::ecdsa::Signature =
            key.sign(&x509_cert::der::Encode::to_der(&tbs).unwrap());
        let cert = root_cert::assemble(tbs, signature.to_der().as_bytes()).unwrap();
        PublicKey::new(
            KeyType::EcdsaX509,
            root_cert::to_pem(&cert).unwrap().into_bytes(),
        )
    }

    fn repository(
        certs: Vec<PublicKey>,
        targets_days: i64,
        now: OffsetDateTime,
    ) -> VerifiedRepository {
        let expires = |days: i64| model::format_expires(now + time::Duration::days(days));
        VerifiedRepository {
            gun: GUN.into(),
            root: Root {
                role_type: RoleType::Root,
                consistent_snapshot: false,
                expires: expires(3000),
                roles: [(
                    "root".to_owned(),
                    RoleKeys {
                        keyids: certs.iter().map(PublicKey::id).collect(),
                        threshold: 1,
                    },
                )]
                .into(),
                keys: certs.into_iter().map(|c| (c.id(), c)).collect(),
                version: 1,
            },
            targets: Targets {
                role_type: RoleType::Targets,
                delegations: Delegations::default(),
                expires: expires(targets_days),
                targets: BTreeMap::new(),
                version: 1,
            },
            snapshot: Snapshot {
                role_type: RoleType::Snapshot,
                expires: expires(1000),
                meta: BTreeMap::new(),
                version: 1,
            },
            timestamp: Timestamp {
                role_type: RoleType::Timestamp,
                expires: expires(1),
                meta: BTreeMap::new(),
                version: 1,
            },
            delegations: BTreeMap::new(),
            delegation_order: Vec::new(),
            skipped: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn root_certificates_warn_180_days_ahead_and_roles_30() {
        let now = OffsetDateTime::now_utc();
        let fresh = certificate(0, now);
        // Made VALIDITY_DAYS - 100 days ago: 100 days left.
        let old = certificate(VALIDITY_DAYS - 100, now);
        let repo = repository(vec![fresh.clone(), old.clone()], 20, now);
        let found = expiring(&repo, now);
        let soon: Vec<&str> = found
            .iter()
            .filter(|e| e.soon)
            .map(|e| e.what.as_str())
            .collect();
        assert_eq!(
            soon,
            [
                "targets".to_owned(),
                format!("root certificate {}", old.id())
            ]
        );
        let old_item = found.iter().find(|e| e.what.ends_with(&old.id())).unwrap();
        assert!((99..=100).contains(&old_item.days_left), "{old_item:?}");
        assert!(old_item.renew.contains("--renew-certificates"));
        let fresh_item = found
            .iter()
            .find(|e| e.what.ends_with(&fresh.id()))
            .unwrap();
        assert!(!fresh_item.soon);
        assert!(
            found.iter().all(|e| e.what != "timestamp"),
            "the server renews it"
        );
        // Soonest first.
        assert_eq!(found[0].what, "targets");

        let calm = repository(vec![fresh], 400, now);
        assert!(expiring(&calm, now).iter().all(|e| !e.soon));
    }
}
