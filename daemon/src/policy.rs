//! Who may do what with which key: a default-deny rule list.
//!
//! Rules name local callers by user and group (resolved to numeric ids when the policy is
//! loaded, so a renamed account cannot silently gain access at request time) and remote callers
//! of the TLS listener by the names in their certificates, and grant operations on keys
//! whose names match a pattern. A request is allowed when at least one rule matches the
//! caller, the operation and the key; everything else is denied.

use wildmatch::WildMatch;

use crate::config::{PolicyConfig, RuleConfig};
use crate::front::{Caller, RemoteIdentity};
pub use crate::operation::Operation;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy rule {rule}: unknown user {name:?}")]
    UnknownUser { rule: usize, name: String },
    #[error("policy rule {rule}: unknown group {name:?}")]
    UnknownGroup { rule: usize, name: String },
    #[error("policy rule {rule}: cannot look up {name:?}: {error}")]
    Lookup {
        rule: usize,
        name: String,
        error: nix::Error,
    },
}

#[derive(Debug)]
struct Rule {
    description: String,
    uids: Vec<u32>,
    gids: Vec<u32>,
    clients: Vec<ClientPattern>,
    keys: Vec<WildMatch>,
    operations: Vec<Operation>,
}

/// How a rule names remote clients: each pattern matches one kind of certificate name, so a
/// DNS name can never pass for a subject CN or a SPIFFE ID.
#[derive(Debug)]
enum ClientPattern {
    /// `CN=...`: the subject CN.
    Subject(WildMatch),
    /// A pattern with `://`: a URI name (SPIFFE ID).
    Uri(WildMatch),
    /// Anything else: a DNS name.
    Dns(WildMatch),
}

impl ClientPattern {
    fn parse(pattern: &str) -> ClientPattern {
        if pattern.starts_with("CN=") {
            ClientPattern::Subject(WildMatch::new(pattern))
        } else if pattern.contains("://") {
            ClientPattern::Uri(WildMatch::new(pattern))
        } else {
            ClientPattern::Dns(WildMatch::new(pattern))
        }
    }

    fn matches(&self, client: &RemoteIdentity) -> bool {
        match self {
            ClientPattern::Subject(p) => !client.subject.is_empty() && p.matches(&client.subject),
            ClientPattern::Uri(p) => client.uris.iter().any(|uri| p.matches(uri)),
            ClientPattern::Dns(p) => client.dns_names.iter().any(|dns| p.matches(dns)),
        }
    }
}

impl Rule {
    /// Local callers match by user and group, remote ones by certificate names.
    fn matches_caller(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Local(peer) => {
                self.uids.contains(&peer.uid) || self.gids.iter().any(|gid| peer.in_group(*gid))
            }
            Caller::Remote(client) => self.clients.iter().any(|p| p.matches(client)),
        }
    }

    fn matches_key(&self, key_name: &str) -> bool {
        self.keys.iter().any(|pattern| pattern.matches(key_name))
    }
}

/// The loaded access policy.
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// The outcome of an authorization check, with the rule that granted it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { rule: String },
    Deny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl Policy {
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, PolicyError> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| resolve_rule(i + 1, rule))
            .collect::<Result<_, _>>()?;
        Ok(Policy { rules })
    }

    pub fn decide(&self, caller: &Caller, op: Operation, key_name: &str) -> Decision {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| {
                r.operations.contains(&op) && r.matches_caller(caller) && r.matches_key(key_name)
            })
            .map(|(i, r)| Decision::Allow {
                rule: if r.description.is_empty() {
                    format!("rule {}", i + 1)
                } else {
                    r.description.clone()
                },
            })
            .unwrap_or(Decision::Deny)
    }

    /// True when some rule names the caller at all, for any operation: a caller no rule
    /// names is refused before trustd reads its request.
    pub fn names_caller(&self, caller: &Caller) -> bool {
        self.rules.iter().any(|r| r.matches_caller(caller))
    }

    /// True when some rule grants `op` to the caller on at least one key name.
    pub fn grants_any(&self, caller: &Caller, op: Operation) -> bool {
        self.rules
            .iter()
            .any(|r| r.operations.contains(&op) && r.matches_caller(caller))
    }
}

fn resolve_rule(index: usize, rule: &RuleConfig) -> Result<Rule, PolicyError> {
    let uids = rule
        .users
        .iter()
        .map(|name| resolve_user(index, name))
        .collect::<Result<_, _>>()?;
    let gids = rule
        .groups
        .iter()
        .map(|name| resolve_group(index, name))
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        description: rule.description.clone(),
        uids,
        gids,
        clients: rule
            .clients
            .iter()
            .map(|c| ClientPattern::parse(c))
            .collect(),
        keys: rule.keys.iter().map(|k| WildMatch::new(k)).collect(),
        operations: rule.operations.clone(),
    })
}

fn resolve_user(rule: usize, name: &str) -> Result<u32, PolicyError> {
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(PolicyError::UnknownUser {
            rule,
            name: name.to_owned(),
        }),
        Err(error) => Err(PolicyError::Lookup {
            rule,
            name: name.to_owned(),
            error,
        }),
    }
}

fn resolve_group(rule: usize, name: &str) -> Result<u32, PolicyError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(PolicyError::UnknownGroup {
            rule,
            name: name.to_owned(),
        }),
        Err(error) => Err(PolicyError::Lookup {
            rule,
            name: name.to_owned(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::peer::PeerCredentials;

    fn policy(toml_rules: &str) -> Policy {
        let config: PolicyConfig = toml::from_str(toml_rules).unwrap();
        Policy::from_config(&config).unwrap()
    }

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller::Local(PeerCredentials {
            uid,
            gid,
            pid: 1,
            groups: groups.to_vec(),
        })
    }

    const RULES: &str = r#"
        [[rule]]
        description = "admins"
        users = ["0"]
        keys = ["*"]
        operations = ["sign", "generate", "delete", "list"]

        [[rule]]
        groups = ["5000"]
        keys = ["ci-*"]
        operations = ["sign"]
    "#;

    #[test]
    fn default_deny() {
        let p = policy("");
        assert_eq!(
            p.decide(&caller(0, 0, &[]), Operation::Sign, "k"),
            Decision::Deny
        );
    }

    #[test]
    fn user_rule_allows_listed_operations_only() {
        let p = policy(RULES);
        let root = caller(0, 0, &[]);
        assert_eq!(
            p.decide(&root, Operation::Sign, "anything"),
            Decision::Allow {
                rule: "admins".into()
            }
        );
        assert_eq!(
            p.decide(&root, Operation::Import, "anything"),
            Decision::Deny
        );
    }

    #[test]
    fn group_rule_matches_supplementary_groups_and_key_patterns() {
        let p = policy(RULES);
        let ci = caller(1001, 1001, &[5000]);
        assert!(p.decide(&ci, Operation::Sign, "ci-app").is_allowed());
        assert!(!p.decide(&ci, Operation::Sign, "root-key").is_allowed());
        assert!(!p.decide(&ci, Operation::Delete, "ci-app").is_allowed());
        let primary = caller(1002, 5000, &[]);
        assert!(p.decide(&primary, Operation::Sign, "ci-x").is_allowed());
        let stranger = caller(1003, 1003, &[]);
        assert!(!p.decide(&stranger, Operation::Sign, "ci-app").is_allowed());
        assert!(!p.grants_any(&stranger, Operation::List));
    }

    #[test]
    fn client_rules_match_each_kind_of_certificate_name_only() {
        let p = policy(
            r#"
            [[rule]]
            clients = ["CN=notary-server", "spiffe://example.org/ci/*", "*.runners.example.org"]
            keys = ["notary/*"]
            operations = ["sign"]
            "#,
        );
        let client = |subject: &str, dns: &[&str], uris: &[&str]| {
            Caller::Remote(RemoteIdentity {
                subject: subject.into(),
                dns_names: dns.iter().map(|s| s.to_string()).collect(),
                uris: uris.iter().map(|s| s.to_string()).collect(),
            })
        };
        let allowed = |c: &Caller| p.decide(c, Operation::Sign, "notary/x").is_allowed();
        assert!(allowed(&client("CN=notary-server", &[], &[])));
        assert!(allowed(&client(
            "",
            &[],
            &["spiffe://example.org/ci/runner-1"]
        )));
        assert!(allowed(&client("CN=x", &["a.runners.example.org"], &[])));
        assert!(!allowed(&client("CN=notary-server-2", &[], &[])));
        // A DNS name spelled like a CN or a URI is no CN or URI.
        assert!(!allowed(&client("CN=x", &["CN=notary-server"], &[])));
        assert!(!allowed(&client("", &["spiffe://example.org/ci/a"], &[])));
        assert!(!allowed(&client("CN=a.runners.example.org", &[], &[])));
        // Local callers never match client rules, nor remote ones user rules.
        assert!(!allowed(&caller(0, 0, &[])));
        let root_only = policy(RULES);
        assert!(!root_only
            .decide(&client("CN=root", &["root"], &[]), Operation::Sign, "k")
            .is_allowed());
    }

    #[test]
    fn names_resolve_to_ids() {
        let p = policy("[[rule]]\nusers = [\"root\"]\nkeys=[\"*\"]\noperations=[\"list\"]\n");
        assert!(p
            .decide(&caller(0, 0, &[]), Operation::List, "k")
            .is_allowed());
    }

    #[test]
    fn unknown_user_is_a_load_error() {
        let config: PolicyConfig = toml::from_str(
            "[[rule]]\nusers = [\"no-such-user-xyz\"]\nkeys=[\"*\"]\noperations=[\"list\"]\n",
        )
        .unwrap();
        let err = Policy::from_config(&config).unwrap_err();
        assert!(err.to_string().contains("no-such-user-xyz"));
    }
}
