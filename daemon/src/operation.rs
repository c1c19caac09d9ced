//! The operations a policy rule grants: their own module because both the configuration
//! (which parses them) and the policy (which decides on them) need them, and neither should
//! depend on the other for it.

use serde::Deserialize;

/// What a caller asks to do. `List` also covers reading public keys and daemon status.
/// `Unlock` (hand a card its PIN) and `Provision` (replace a card's PIN, PUK and management
/// key) act on a backend: a rule's key patterns match the backend's name for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Sign,
    Generate,
    Import,
    Delete,
    List,
    Unlock,
    Provision,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Generate => "generate",
            Operation::Import => "import",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Unlock => "unlock",
            Operation::Provision => "provision",
        }
    }
}
