//! What `docker trust inspect` shows, computed from verified trust data.
//!
//! The rules are docker's: a tag is released when it is signed into `targets` or
//! `targets/releases`; its signers are the other delegated roles holding the same tag and
//! hash, in the order the roles are walked, or "Repo Admin" when there are none. Tags are in
//! natural order, signers and administrative keys by name in descending order, delegation keys
//! appear by their canonical ID while the root shows its certificate-form ID, and the JSON is
//! indented with four spaces, as docker prints it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::delegation::RELEASES;
use crate::trust::VerifiedRepository;

const REPO_ADMIN: &str = "Repo Admin";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
/// One signed tag, as `docker trust inspect` lists it.
pub struct SignedTag {
    /// The tag.
    pub signed_tag: String,
    /// The manifest digest it is signed for (hex SHA-256).
    pub digest: String,
    /// The signers (role names without `targets/`) that signed it.
    pub signers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// A key as `docker trust inspect` shows it.
pub struct KeyRef {
    #[serde(rename = "ID")]
    /// The key's ID.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
/// A signer (delegated role) or administrative role and its keys.
pub struct Signer {
    #[serde(skip_serializing_if = "String::is_empty")]
    /// The signer's name, or the administrative role's (`Root`, `Repository`).
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The keys that may sign for it.
    pub keys: Vec<KeyRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
/// What `docker trust inspect` prints for one repository or tag.
pub struct TrustReport {
    /// The repository (or `repository:tag`) as asked.
    pub name: String,
    /// Its signed tags.
    pub signed_tags: Vec<SignedTag>,
    /// Its signers.
    pub signers: Vec<Signer>,
    /// Its root and targets keys.
    pub administrative_keys: Vec<Signer>,
}

fn signer_name(role: &str) -> &str {
    role.strip_prefix("targets/").unwrap_or(role)
}

/// The report for `name` (as the user wrote it), limited to `tag` when given.
pub fn report(name: &str, tag: Option<&str>, repo: &VerifiedRepository) -> TrustReport {
    // Every (role, tag, sha256) in walk order: targets first, then delegations.
    let mut signed = Vec::new();
    let walk = std::iter::once(("targets", &repo.targets)).chain(
        repo.delegation_order
            .iter()
            .map(|role| (role.as_str(), &repo.delegations[role])),
    );
    for (role, targets) in walk {
        for (target, meta) in &targets.targets {
            if tag.is_some_and(|t| t != target) {
                continue;
            }
            let digest = meta
                .hashes
                .get("sha256")
                .map(|h| hex::encode(&h.0))
                .unwrap_or_default();
            signed.push((role, target.clone(), digest));
        }
    }
    let released = |role: &str| role == "targets" || role == RELEASES;
    // A (tag, digest) released by targets or targets/releases is one row; the delegations
    // that signed the same digest for the tag are its signers, in walk order. Grouped by
    // hash map: repositories hold tens of thousands of tags.
    let mut signers_of: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for (role, target, digest) in &signed {
        if !released(role) {
            signers_of
                .entry((target.as_str(), digest.as_str()))
                .or_default()
                .push(signer_name(role).to_owned());
        }
    }
    let mut seen = HashSet::new();
    let mut rows: Vec<SignedTag> = Vec::new();
    for (role, target, digest) in &signed {
        let key = (target.as_str(), digest.as_str());
        if !released(role) || !seen.insert(key) {
            continue;
        }
        rows.push(SignedTag {
            signed_tag: target.clone(),
            digest: digest.clone(),
            signers: signers_of
                .get(&key)
                .cloned()
                .unwrap_or_else(|| vec![REPO_ADMIN.to_owned()]),
        });
    }
    rows.sort_by(|a, b| natural_cmp(&a.signed_tag, &b.signed_tag));

    let mut signers: Vec<Signer> = repo
        .targets
        .delegations
        .roles
        .iter()
        .filter(|r| r.name != RELEASES)
        .map(|r| Signer {
            name: signer_name(&r.name).to_owned(),
            // Docker shows delegation keys by their canonical ID: a certificate key by the ID
            // of the plain key inside it.
            keys: r
                .keyids
                .iter()
                .map(|id| KeyRef {
                    id: repo
                        .targets
                        .delegations
                        .keys
                        .get(id)
                        .and_then(|k| k.canonical_id().ok())
                        .unwrap_or_else(|| id.clone()),
                })
                .collect(),
        })
        .collect();
    signers.sort_by(|a, b| b.name.cmp(&a.name));

    let keys_of = |role: &str| {
        repo.root
            .roles
            .get(role)
            .map(|r| {
                r.keyids
                    .iter()
                    .map(|id| KeyRef { id: id.clone() })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut administrative_keys = vec![
        Signer {
            name: "Root".into(),
            keys: keys_of("root"),
        },
        Signer {
            name: "Repository".into(),
            keys: keys_of("targets"),
        },
    ];
    administrative_keys.sort_by(|a, b| b.name.cmp(&a.name));

    TrustReport {
        name: name.to_owned(),
        signed_tags: rows,
        signers,
        administrative_keys,
    }
}

/// The reports as docker prints them: a JSON array indented with four spaces.
pub fn to_json(reports: &[TrustReport]) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    reports
        .serialize(&mut serializer)
        .expect("reports serialize");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Docker's `--pretty` text for one repository.
pub fn pretty(report: &TrustReport) -> String {
    // docker prints no empty table: a line saying so instead.
    let mut out = if report.signed_tags.is_empty() {
        format!("\nNo signatures for {}\n\n", report.name)
    } else {
        format!("\nSignatures for {}\n\n", report.name)
    };
    let rows: Vec<Vec<String>> = report
        .signed_tags
        .iter()
        .map(|t| {
            let signers = if t.signers == [REPO_ADMIN] {
                format!("({REPO_ADMIN})")
            } else {
                t.signers.join(", ")
            };
            vec![t.signed_tag.clone(), t.digest.clone(), signers]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(&["SIGNED TAG", "DIGEST", "SIGNERS"], &rows));
    }
    if !report.signers.is_empty() {
        out.push_str(&format!(
            "\nList of signers and their keys for {}\n\n",
            report.name
        ));
        let mut signers = report.signers.clone();
        signers.sort_by(|a, b| a.name.cmp(&b.name));
        let rows: Vec<Vec<String>> = signers
            .iter()
            .map(|s| {
                let mut keys: Vec<_> = s
                    .keys
                    .iter()
                    .map(|k| k.id.chars().take(12).collect::<String>())
                    .collect();
                keys.sort();
                vec![s.name.clone(), keys.join(", ")]
            })
            .collect();
        out.push_str(&table(&["SIGNER", "KEYS"], &rows));
    }
    out.push_str(&format!("\nAdministrative keys for {}\n\n", report.name));
    for (label, name) in [("Repository Key", "Repository"), ("Root Key", "Root")] {
        let mut ids: Vec<_> = report
            .administrative_keys
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.keys.iter().map(|k| k.id.clone()))
            .collect();
        ids.sort();
        out.push_str(&format!("  {label}:\t{}\n", ids.join(", ")));
    }
    out
}

/// Go's tabwriter as docker configures it: cells at least 10 wide, 3 spaces of padding, the
/// last column unpadded.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths = vec![0usize; columns];
    for (i, header) in headers.iter().enumerate() {
        widths[i] = header.chars().count();
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                let width = (widths[i] + 3).max(10);
                text.push_str(&format!("{cell:<width$}"));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Natural order (`v2` before `v10`), as docker sorts tags: runs of digits compare by value.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                let trim = |n: &[u8]| {
                    let zeros = n.iter().take_while(|c| **c == b'0').count();
                    n[zeros..].to_vec()
                };
                let (ta, tb) = (trim(na), trim(nb));
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(&tb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_matches_docker_for_a_repository_with_signers() {
        let report = TrustReport {
            name: "127.0.0.1:14443/pretty".into(),
            signed_tags: vec![
                SignedTag {
                    signed_tag: "v1".into(),
                    digest: "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac"
                        .into(),
                    signers: vec!["alice".into(), "bob".into()],
                },
                SignedTag {
                    signed_tag: "v10".into(),
                    digest: "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac"
                        .into(),
                    signers: vec![REPO_ADMIN.into()],
                },
            ],
            signers: vec![
                Signer {
                    name: "bob".into(),
                    keys: vec![KeyRef {
                        id: "1ecb21abce24ffff".into(),
                    }],
                },
                Signer {
                    name: "alice".into(),
                    keys: vec![KeyRef {
                        id: "04ee8d2ef3edffff".into(),
                    }],
                },
            ],
            administrative_keys: vec![
                Signer {
                    name: "Root".into(),
                    keys: vec![KeyRef {
                        id: "b5838576e12cab0de58330dd6be2b7b57845d61d69e19b28b9274084a4f20456"
                            .into(),
                    }],
                },
                Signer {
                    name: "Repository".into(),
                    keys: vec![KeyRef {
                        id: "644e995e9805ba9d8833d9630fcb8098485ac8eb1f0ba48ed8e8d45902dd10af"
                            .into(),
                    }],
                },
            ],
        };
        // Captured from `docker trust inspect --pretty` (docker 28) for the same repository.
        let docker = "\nSignatures for 127.0.0.1:14443/pretty\n\n\
SIGNED TAG   DIGEST                                                             SIGNERS\n\
v1           73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac   alice, bob\n\
v10          73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac   (Repo Admin)\n\
\nList of signers and their keys for 127.0.0.1:14443/pretty\n\n\
SIGNER    KEYS\n\
alice     04ee8d2ef3ed\n\
bob       1ecb21abce24\n\
\nAdministrative keys for 127.0.0.1:14443/pretty\n\n\
\x20 Repository Key:\t644e995e9805ba9d8833d9630fcb8098485ac8eb1f0ba48ed8e8d45902dd10af\n\
\x20 Root Key:\tb5838576e12cab0de58330dd6be2b7b57845d61d69e19b28b9274084a4f20456\n";
        assert_eq!(pretty(&report), docker);
        // Without delegations the signer section is left out.
        let plain = TrustReport {
            signers: vec![],
            ..report
        };
        assert!(!pretty(&plain).contains("List of signers"));
    }

    #[test]
    fn natural_order() {
        let mut tags = vec!["v10", "v2", "latest", "v1.10", "v1.9", "1.0"];
        tags.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(tags, ["1.0", "latest", "v1.9", "v1.10", "v2", "v10"]);
    }
}
