//! One image's result, in each format, as people read it (one line per image) and as scripts
//! read it (`--json`, whose shape docs/json/batch.schema.json fixes). Every way of signing
//! (`sign A B`, `sign --file`, `--format cosign`) and `validate` report through this, so they
//! all speak alike.

use serde_json::{json, Value};
use trustctl::error::CliError;

/// What was done (or found) for an image in one format.
#[derive(Debug, Clone)]
pub struct Part {
    /// The manifest digest signed or checked (`sha256:...`).
    pub digest: String,
    pub detail: Detail,
    /// Whether this run signed anything (false: it was already signed, or only checked).
    pub changed: bool,
}

#[derive(Debug, Clone)]
pub enum Detail {
    /// Docker Content Trust: the roles the tag is signed into (or signed by, when checked).
    Notary {
        roles: Vec<String>,
        new_repository: bool,
    },
    /// cosign: how many manifests (the image or index, and selected platforms).
    Cosign { manifests: usize },
    /// Docker Content Trust, into a role that needs more signatures than this machine holds:
    /// signed here as far as possible, waiting for the others in a release ceremony.
    Pending {
        role: String,
        signed: usize,
        threshold: u32,
        ceremony: String,
    },
}

impl Part {
    fn format(&self) -> &'static str {
        match self.detail {
            Detail::Notary { .. } | Detail::Pending { .. } => "notary",
            Detail::Cosign { .. } => "cosign",
        }
    }

    fn describe(&self) -> String {
        match &self.detail {
            Detail::Notary {
                roles,
                new_repository,
            } => format!(
                "notary: {}{}",
                if *new_repository {
                    "new repository; "
                } else {
                    ""
                },
                roles.join(", ")
            ),
            Detail::Cosign { manifests } => format!(
                "cosign: {manifests} manifest{}",
                if *manifests == 1 { "" } else { "s" }
            ),
            Detail::Pending {
                role,
                signed,
                threshold,
                ceremony,
            } => format!(
                "notary: {role} needs {threshold} signatures, {signed} made here; the other \
                 signers run `trustctl ceremony sign {ceremony} --key NAME`, then `trustctl \
                 ceremony publish {ceremony}`"
            ),
        }
    }

    fn json(&self) -> Value {
        match &self.detail {
            Detail::Notary {
                roles,
                new_repository,
            } => json!({"roles": roles, "new_repository": new_repository, "changed": self.changed}),
            Detail::Cosign { manifests } => {
                json!({"manifests": manifests, "changed": self.changed})
            }
            Detail::Pending {
                role,
                signed,
                threshold,
                ceremony,
            } => json!({
                "roles": [role],
                "new_repository": false,
                "changed": false,
                "pending": {"signed": signed, "threshold": threshold, "ceremony": ceremony},
            }),
        }
    }
}

/// One image's outcome: what was done in every format asked, or the first failure.
pub type Outcome = Result<Vec<Part>, CliError>;

/// One part's outcome, before an image's parts are combined.
pub type PartOutcome = Result<Part, CliError>;

/// An image's parts as one outcome: the first failure, else every part.
pub fn combine(parts: Vec<PartOutcome>) -> Outcome {
    parts.into_iter().collect()
}

/// Whether a command signs or checks: the words its lines and JSON use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Sign,
    Validate,
}

impl Verb {
    /// The result word of a successful image ("signed", "already signed", "valid").
    fn result(self, parts: &[Part]) -> &'static str {
        match self {
            Verb::Validate => "valid",
            Verb::Sign
                if parts
                    .iter()
                    .any(|p| matches!(p.detail, Detail::Pending { .. })) =>
            {
                "pending"
            }
            Verb::Sign if parts.iter().any(|p| p.changed) => "signed",
            Verb::Sign => "already signed",
        }
    }

    pub fn failed(self) -> &'static str {
        match self {
            Verb::Sign => "failed",
            Verb::Validate => "not valid",
        }
    }

    /// The summary's words for the two outcomes.
    pub fn summary_words(self) -> (&'static str, &'static str) {
        match self {
            Verb::Sign => ("Signed", "failed"),
            Verb::Validate => ("Valid", "not valid"),
        }
    }

    pub fn command(self) -> &'static str {
        match self {
            Verb::Sign => "sign",
            Verb::Validate => "validate",
        }
    }
}

/// The line an image gets: `signed IMAGE sha256:... (notary: targets; cosign: 1 manifest)`,
/// or `failed IMAGE: why` (for stderr).
pub fn line(verb: Verb, image: &str, outcome: &Outcome) -> String {
    match outcome {
        Ok(parts) => {
            let digest = parts.first().map(|p| p.digest.as_str()).unwrap_or_default();
            let details: Vec<String> = parts.iter().map(Part::describe).collect();
            format!(
                "{} {image} {digest} ({})",
                verb.result(parts),
                details.join("; ")
            )
        }
        Err(error) => format!("{} {image}: {error}", verb.failed()),
    }
}

/// An image's entry in `--json` output.
pub fn json(verb: Verb, image: &str, outcome: &Outcome) -> Value {
    match outcome {
        Ok(parts) => {
            let mut entry = json!({
                "image": image,
                "result": verb.result(parts).replace(' ', "_"),
                "digest": parts.first().map(|p| p.digest.clone()),
            });
            for part in parts {
                entry[part.format()] = part.json();
            }
            entry
        }
        Err(error) => json!({
            "image": image,
            "result": verb.failed().replace(' ', "_"),
            "error": error.to_string(),
            "exit_code": error.exit_code(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notary(changed: bool) -> Part {
        Part {
            digest: "sha256:ab".into(),
            detail: Detail::Notary {
                roles: vec!["targets/releases".into()],
                new_repository: false,
            },
            changed,
        }
    }

    #[test]
    fn lines_say_what_was_done_and_json_agrees() {
        let cosign = Part {
            digest: "sha256:ab".into(),
            detail: Detail::Cosign { manifests: 3 },
            changed: false,
        };
        let both: Outcome = Ok(vec![notary(false), cosign.clone()]);
        assert_eq!(
            line(Verb::Sign, "r/a:1", &both),
            "already signed r/a:1 sha256:ab (notary: targets/releases; cosign: 3 manifests)"
        );
        assert_eq!(json(Verb::Sign, "r/a:1", &both)["result"], "already_signed");
        let changed: Outcome = Ok(vec![notary(true), cosign]);
        assert!(line(Verb::Sign, "r/a:1", &changed).starts_with("signed r/a:1 "));
        let value = json(Verb::Sign, "r/a:1", &changed);
        assert_eq!(value["notary"]["changed"], true);
        assert_eq!(value["cosign"]["manifests"], 3);
        let failed: Outcome = Err(CliError::NotFound("no such tag".into()));
        assert_eq!(
            line(Verb::Validate, "r/a:1", &failed),
            "not valid r/a:1: no such tag"
        );
        let value = json(Verb::Validate, "r/a:1", &failed);
        assert_eq!(value["result"], "not_valid");
        assert_eq!(value["exit_code"], 5);
        assert!(combine(vec![Ok(notary(true)), Err(CliError::Failed("x".into()))]).is_err());
    }
}
