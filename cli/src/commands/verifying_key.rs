//! The public key a signature is checked against, named the same two ways on every command
//! that verifies (`verify-blob`, `validate`, `audit verify`): `--key NAME`, a key held by
//! trustd, as `--key` means on every command that signs; or `--public-key FILE`, a PEM public
//! key. A cosign user's `--key cosign.pub` names no trustd key: it is told which flag takes a
//! file instead of getting "no key in trustd".

use std::path::Path;

use trustctl::client::{self, Trustd};
use trustctl::error::{read_text, CliError};
use trustctl::keyfile;

/// The public key (SubjectPublicKeyInfo DER) `--key` or `--public-key` names, if either does.
pub async fn resolve(
    trustd: &Trustd,
    key: Option<&str>,
    public_key: Option<&Path>,
) -> Result<Option<Vec<u8>>, CliError> {
    match (key, public_key) {
        (Some(_), Some(_)) => Err(CliError::Usage(
            "give --key (a key in trustd) or --public-key (a PEM file), not both".into(),
        )),
        (Some(name), None) => from_trustd(trustd, name).await.map(Some),
        (None, Some(path)) => {
            let text = read_text(path, "the public key")?;
            keyfile::public_key_der(&text).map(Some)
        }
        (None, None) => Ok(None),
    }
}

async fn from_trustd(trustd: &Trustd, name: &str) -> Result<Vec<u8>, CliError> {
    let found = async {
        let mut client = client::connect(trustd).await?;
        Ok::<_, CliError>(client::key_info(&mut client, name).await?.public_key_der)
    }
    .await;
    match found {
        Err(error) if Path::new(name).is_file() => Err(CliError::Usage(format!(
            "--key names a key in trustd, and {error}; {name} is a file: to check against a PEM \
             public key, give it with --public-key {name} (what cosign calls --key)"
        ))),
        other => other,
    }
}
