//! Who may do what with which key: a default-deny rule list.
//!
//! Rules name callers by user and group (resolved to numeric ids when the policy is loaded, so
//! a renamed account cannot silently gain access at request time) and grant operations on keys
//! whose names match a pattern. A request is allowed when at least one rule matches the
//! caller, the operation and the key; everything else is denied.

use wildmatch::WildMatch;

use crate::config::{PolicyConfig, RuleConfig};
use crate::front::Caller;
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
    keys: Vec<WildMatch>,
    operations: Vec<Operation>,
}

impl Rule {
    /// Rules name local users and groups; a remote caller matches none of them.
    fn matches_caller(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Local(peer) => {
                self.uids.contains(&peer.uid) || self.gids.iter().any(|gid| peer.in_group(*gid))
            }
            Caller::Remote(_) => false,
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
