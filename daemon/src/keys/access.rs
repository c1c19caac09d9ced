//! Authorization of key operations, and the one rule for what a refusal may reveal.

use std::sync::Arc;

use super::names::shown;
use super::{KeySelector, KeyService, ServiceError};
use crate::front::admission::RateLimitedLog;
use crate::front::Caller;
use crate::inventory::KeyRecord;
use crate::policy::Operation;

static DENIED_LOG: RateLimitedLog = RateLimitedLog::new(std::time::Duration::from_secs(10));

impl KeyService {
    /// The key a request names, if the caller may do `op` with it. A caller who may not is
    /// told so in the words it used (the name or key ID it sent), whether or not the key
    /// exists: existence is only revealed to callers who could list the key anyway.
    pub fn resolve_for(
        &self,
        caller: &Caller,
        op: Operation,
        selector: Option<&KeySelector>,
    ) -> Result<Arc<KeyRecord>, ServiceError> {
        let Some(selector) = selector else {
            return Err(ServiceError::InvalidRequest(
                "name the key (by name or key ID)".into(),
            ));
        };
        let policy = self.state.policy();
        let (record, asked, may_know) = match selector {
            KeySelector::Name(name) => (
                self.state.inventory.by_name(name),
                name,
                policy.decide(caller, op, name).is_allowed()
                    || policy.decide(caller, Operation::List, name).is_allowed(),
            ),
            KeySelector::KeyId(id) => (
                self.state.inventory.by_key_id(id),
                id,
                policy.grants_any(caller, Operation::List),
            ),
        };
        match record {
            Some(key) if policy.decide(caller, op, &key.name).is_allowed() => Ok(key),
            None if may_know => Err(ServiceError::NotFound(format!(
                "no key {} in trustd; `trustctl key list` shows the keys you may use",
                shown(asked)
            ))),
            _ => Err(self.denied(caller, op, asked)),
        }
    }

    /// Ok when the policy grants `op` on `object` (a key or backend name) to the caller.
    pub fn authorize(
        &self,
        caller: &Caller,
        op: Operation,
        object: &str,
    ) -> Result<(), ServiceError> {
        if self.state.policy().decide(caller, op, object).is_allowed() {
            return Ok(());
        }
        Err(self.denied(caller, op, object))
    }

    /// Ok when some rule grants `op` to the caller on some key; otherwise Denied with
    /// "{caller} may not {refused}".
    pub fn authorize_any(
        &self,
        caller: &Caller,
        op: Operation,
        refused: &str,
    ) -> Result<(), ServiceError> {
        if self.state.policy().grants_any(caller, op) {
            return Ok(());
        }
        Err(ServiceError::Denied(format!("{caller} may not {refused}")))
    }

    /// Denied for `op` on `object` (as the caller named it), logged at a bounded rate: a
    /// caller with no rule can make many of these.
    fn denied(&self, caller: &Caller, op: Operation, object: &str) -> ServiceError {
        DENIED_LOG.log(|suppressed| {
            tracing::warn!(
                caller = %caller,
                pid = caller.local().map(|peer| peer.pid),
                op = op.as_str(),
                key = %shown(object),
                suppressed,
                "denied by policy"
            )
        });
        let kind = match op {
            Operation::Unlock | Operation::Provision => "backend",
            _ => "key",
        };
        ServiceError::Denied(format!(
            "{caller} may not {} {kind} {}: no policy rule grants it (ask the trustd administrator for a [[policy.rule]])",
            op.as_str(),
            shown(object)
        ))
    }
}
