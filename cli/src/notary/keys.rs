//! The trustd keys of a repository's roles: their names, and making them.

use trustd_proto as pb;

use crate::client::signer::TrustdSigner;
use crate::client::Client;
use crate::error::CliError;

/// The trustd key names trustctl uses for a repository's roles.
pub fn key_name(gun: &str, role: &str) -> String {
    format!("{gun}/{role}")
}

/// The key named for `role` of `gun`, generated on `backend` when trustd has none yet.
pub async fn ensure_key(
    signer: &mut TrustdSigner,
    client: &mut Client,
    gun: &str,
    role: &str,
    backend: &str,
) -> Result<String, CliError> {
    let name = key_name(gun, role);
    if signer.key(&name).await.is_ok() {
        return Ok(name);
    }
    generate_key(client, &name, gun, role, backend).await?;
    Ok(name)
}

/// A trustd name for a role's next key that no existing key has: `GUN/role` for the first,
/// then `GUN/role.2`, `GUN/role.3`, ...
pub async fn free_name(
    signer: &mut TrustdSigner,
    gun: &str,
    role: &str,
) -> Result<String, CliError> {
    let base = key_name(gun, role);
    if signer.key(&base).await.is_err() {
        return Ok(base);
    }
    for n in 2.. {
        let name = format!("{base}.{n}");
        if signer.key(&name).await.is_err() {
            return Ok(name);
        }
    }
    unreachable!("some name is free")
}

/// A new ECDSA P-256 key in trustd, recorded as `role`'s key of `gun`.
pub async fn generate_key(
    client: &mut Client,
    name: &str,
    gun: &str,
    role: &str,
    backend: &str,
) -> Result<(), CliError> {
    client
        .generate_key(pb::GenerateKeyRequest {
            name: name.to_owned(),
            backend: backend.to_owned(),
            algorithm: pb::KeyAlgorithm::EcdsaP256 as i32,
            scope: Some(pb::KeyScope {
                gun: gun.to_owned(),
                role: role.to_owned(),
            }),
            piv: None,
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot generate the {role} key"), s))?;
    Ok(())
}
