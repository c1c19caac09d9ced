//! `trustctl key ...`: the key lifecycle, all of it inside trustd.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use trustctl::client::Trustd;

use clap::{Args, Subcommand, ValueEnum};
use trustctl::client;
use trustctl::error::{io_reason, read_bytes, read_text, CliError};
use trustctl::keyfile;
use trustd_proto as pb;
use zeroize::Zeroizing;

use super::{algorithm_name, rfc3339};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a key on a device held by trustd.
    Generate(GenerateArgs),
    /// List the keys you may use, with whether their device attestation verifies.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: super::attest::TrustArgs,
    },
    /// Prove a key was generated inside its device and cannot leave it: fresh evidence from
    /// the device, verified here.
    Attest {
        /// The key's name in trustd.
        name: String,
        #[command(flatten)]
        trust: super::attest::TrustArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a key's public half (PEM SubjectPublicKeyInfo).
    Public {
        /// The key's name in trustd.
        name: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The X.509 certificate loaded with the key (a client bundle's cert.pem) instead.
        #[arg(long)]
        certificate: bool,
    },
    /// Move an existing private key (PEM) onto a device as non-extractable.
    Load(LoadArgs),
    /// Replace a repository's root, targets, snapshot or timestamp key: new key in trustd (or
    /// on the notary server with --server-managed), root re-signed, everything re-published.
    Rotate(RotateArgs),
    /// Print a root certificate for a key in trustd (signed on its device), for an officer
    /// to hand to whoever starts a root ceremony.
    RootCert(super::ceremony::RootCertArgs),
    /// Delete a key from its device and from trustd. This cannot be undone.
    Delete {
        /// The key's name in trustd.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    // No per-value doc comment: one would switch `key generate --help` to clap's long layout,
    // unlike every other command; the flag's help says it.
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    Ed25519,
    #[value(name = "rsa-3072")]
    Rsa3072,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Name for the key in trustd (also names NAME.pub).
    name: String,
    /// Backend name or kind from trustd's config [default: the first backend]
    #[arg(long)]
    backend: Option<String>,
    /// Key algorithm: ecdsa-p256 is what Notary and cosign sign with; ecdsa-p384 is for PIV
    /// cards only (not usable in Notary trust data)
    #[arg(long, value_enum, default_value = "ecdsa-p256")]
    algorithm: AlgorithmArg,
    /// Notary GUN the key is for (recorded with the key).
    #[arg(long)]
    gun: Option<String>,
    /// TUF role the key is for (root, targets, targets/NAME, ...).
    #[arg(long)]
    role: Option<String>,
    /// Where to write NAME.pub, the public key to hand to the repository admin
    /// (`trustctl signer add --key NAME.pub` or `docker trust signer add --key NAME.pub`).
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    piv: PivArgs,
}

/// Where and how a key is generated on a PIV card (YubiKey).
#[derive(Args)]
#[command(next_help_heading = "PIV card (YubiKey) options")]
pub struct PivArgs {
    /// Slot: 9c, 9a, 9d, 9e or a retired slot 82-95 [default: the first free one the
    /// backend may use]
    #[arg(long)]
    slot: Option<String>,
    /// When the card asks for the PIN [default: the slot's: always for 9c, once otherwise]
    #[arg(long, value_enum)]
    pin_policy: Option<PinPolicyArg>,
    /// When the card asks for a touch [default: never]
    #[arg(long, value_enum)]
    touch_policy: Option<TouchPolicyArg>,
    /// Overwrite a key trustd does not know in --slot (it is destroyed)
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PinPolicyArg {
    Never,
    Once,
    Always,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TouchPolicyArg {
    Never,
    Always,
    Cached,
}

impl PivArgs {
    fn options(&self) -> Option<pb::PivOptions> {
        if self.slot.is_none()
            && self.pin_policy.is_none()
            && self.touch_policy.is_none()
            && !self.force
        {
            return None;
        }
        Some(pb::PivOptions {
            slot: self.slot.clone().unwrap_or_default(),
            pin_policy: match self.pin_policy {
                None => pb::PinPolicy::Unspecified,
                Some(PinPolicyArg::Never) => pb::PinPolicy::Never,
                Some(PinPolicyArg::Once) => pb::PinPolicy::Once,
                Some(PinPolicyArg::Always) => pb::PinPolicy::Always,
            } as i32,
            touch_policy: match self.touch_policy {
                None => pb::TouchPolicy::Unspecified,
                Some(TouchPolicyArg::Never) => pb::TouchPolicy::Never,
                Some(TouchPolicyArg::Always) => pb::TouchPolicy::Always,
                Some(TouchPolicyArg::Cached) => pb::TouchPolicy::Cached,
            } as i32,
            force: self.force,
        })
    }

    /// Whether generating will make the card wait for a touch (it self-signs the slot's
    /// certificate).
    fn needs_touch(&self) -> bool {
        matches!(
            self.touch_policy,
            Some(TouchPolicyArg::Always | TouchPolicyArg::Cached)
        )
    }
}

#[derive(Args)]
pub struct LoadArgs {
    /// PEM private key: PKCS#8, encrypted PKCS#8 (docker/notary), SEC1 EC or PKCS#1 RSA.
    file: PathBuf,
    /// Name for the key in trustd.
    #[arg(long)]
    name: String,
    /// Backend name or kind from trustd's config [default: the first backend]
    #[arg(long)]
    backend: Option<String>,
    /// Read the passphrase of an encrypted key from the first line of stdin instead of the
    /// terminal (for automation; never pass it as an argument).
    #[arg(long)]
    passphrase_stdin: bool,
    /// X.509 certificate (PEM) to keep with the key [default: the cert.pem beside a key.pem,
    /// as in UCP/DTR client bundles]
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
}

#[derive(Args)]
pub struct RotateArgs {
    /// Repository (GUN).
    gun: String,
    /// The role whose key to replace.
    #[arg(value_parser = ["root", "targets", "snapshot", "timestamp"])]
    role: String,
    /// root: a key of the new root, by trustd name (repeatable, K of N; a current root key
    /// named here keeps its certificate) [default: one new key]
    #[arg(long = "root-key", value_name = "NAME")]
    root_keys: Vec<String>,
    /// root: how many root keys must sign [default: the current threshold]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    root_threshold: Option<u32>,
    /// root: keep the root keys, give each a new certificate (before the old ones expire)
    #[arg(long, conflicts_with = "root_keys")]
    renew_certificates: bool,
    /// Have the notary server generate and hold the new key (snapshot, timestamp), as
    /// `notary key rotate --server-managed` does.
    #[arg(long, short = 'r')]
    server_managed: bool,
    /// trustd backend for the new key [default: the old key's]
    #[arg(long)]
    backend: Option<String>,
    #[command(flatten)]
    notary: super::inspect::NotaryArgs,
}

pub async fn run(trustd: &Trustd, command: KeyCommand) -> Result<(), CliError> {
    match command {
        KeyCommand::Generate(args) => generate(trustd, args).await,
        KeyCommand::List { json, trust } => list(trustd, json, trust).await,
        KeyCommand::Attest { name, trust, json } => {
            super::attest::attest(trustd, &name, trust, json).await
        }
        KeyCommand::Public {
            name,
            output,
            certificate,
        } => public(trustd, &name, output, certificate).await,
        KeyCommand::Load(args) => load(trustd, args).await,
        KeyCommand::Rotate(args) => rotate(trustd, args).await,
        KeyCommand::RootCert(args) => super::ceremony::root_cert(trustd, args).await,
        KeyCommand::Delete { name, yes } => delete(trustd, &name, yes).await,
    }
}

fn scope(gun: Option<String>, role: Option<String>) -> Option<pb::KeyScope> {
    Some(pb::KeyScope {
        gun: gun.unwrap_or_default(),
        role: role.unwrap_or_default(),
    })
}

/// The key `args` describes, generated on its device by trustd.
async fn generate_in_trustd(
    trustd: &Trustd,
    args: &GenerateArgs,
    algorithm: pb::KeyAlgorithm,
) -> Result<pb::KeyInfo, CliError> {
    let mut client = client::connect(trustd).await?;
    if args.piv.needs_touch() {
        eprintln!("Touch the YubiKey when it blinks: it self-signs the new key's certificate...");
    }
    client
        .generate_key(pb::GenerateKeyRequest {
            name: args.name.clone(),
            backend: args.backend.clone().unwrap_or_default(),
            algorithm: algorithm as i32,
            scope: scope(args.gun.clone(), args.role.clone()),
            piv: args.piv.options(),
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot generate key {:?}", args.name), s))?
        .into_inner()
        .key
        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))
}

async fn generate(trustd: &Trustd, args: GenerateArgs) -> Result<(), CliError> {
    let algorithm = match args.algorithm {
        AlgorithmArg::EcdsaP256 => pb::KeyAlgorithm::EcdsaP256,
        AlgorithmArg::EcdsaP384 => pb::KeyAlgorithm::EcdsaP384,
        AlgorithmArg::Ed25519 => pb::KeyAlgorithm::Ed25519,
        AlgorithmArg::Rsa3072 => pb::KeyAlgorithm::Rsa3072,
    };
    // Like docker: NAME.pub must not exist yet, and the directory must take it. The file is
    // created (empty) before the key, so nothing is generated for a file that cannot be
    // written; '/' in a key name becomes '_' in the file name.
    let pub_file = args
        .dir
        .join(format!("{}.pub", args.name.replace('/', "_")));
    let mut reserved = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&pub_file)
        .map_err(|e| {
            CliError::Usage(match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "{} already exists: remove it or choose another --dir",
                    pub_file.display()
                ),
                std::io::ErrorKind::NotFound => format!(
                    "directory {} does not exist: create it or choose another --dir",
                    args.dir.display()
                ),
                _ => format!(
                    "cannot write {} ({}): choose another --dir",
                    pub_file.display(),
                    io_reason(&e)
                ),
            })
        })?;
    let generated = generate_in_trustd(trustd, &args, algorithm).await;
    let key = match generated {
        Ok(key) => key,
        Err(error) => {
            drop(reserved);
            let _ = std::fs::remove_file(&pub_file);
            return Err(error);
        }
    };
    println!(
        "Generated {} key {:?} on backend {:?}\nKey ID: {}",
        algorithm_name(key.algorithm),
        key.name,
        key.backend,
        key.key_id
    );
    if let Some(piv) = &key.piv {
        println!(
            "Slot: {} of YubiKey serial {} (PIN policy {}, touch policy {})",
            piv.slot,
            piv.serial,
            policy_name(
                pb::PinPolicy::try_from(piv.pin_policy)
                    .ok()
                    .map(|p| p.as_str_name())
            ),
            policy_name(
                pb::TouchPolicy::try_from(piv.touch_policy)
                    .ok()
                    .map(|p| p.as_str_name())
            )
        );
    }
    let role = args.name.rsplit('/').next().unwrap_or(&args.name);
    std::io::Write::write_all(
        &mut reserved,
        keyfile::docker_public_key_pem(&key.public_key_der, role).as_bytes(),
    )
    .map_err(|e| {
        CliError::Failed(format!(
            "the key was generated, but {} cannot be written ({}); `trustctl key public {}` prints it",
            pub_file.display(),
            io_reason(&e),
            key.name
        ))
    })?;
    println!("Public key: {}", pub_file.display());
    Ok(())
}

async fn list(
    trustd: &Trustd,
    json: bool,
    trust: super::attest::TrustArgs,
) -> Result<(), CliError> {
    let trust = trust.load()?;
    let mut client = client::connect(trustd).await?;
    let keys = client
        .list_keys(pb::ListKeysRequest {})
        .await
        .map_err(|s| CliError::from_status("cannot list keys", s))?
        .into_inner()
        .keys;
    let mut attestations = Vec::with_capacity(keys.len());
    let mut verifier =
        trustctl::attestation::Verifier::new(&mut client, trust.tpm.as_ref(), &trust.piv);
    for key in &keys {
        attestations.push(super::attest::list_column(&mut verifier, key, &trust).await);
    }
    if json {
        let rows: Vec<_> = keys
            .iter()
            .zip(&attestations)
            .map(|(k, (_, attestation))| {
                serde_json::json!({
                    "name": k.name,
                    "key_id": k.key_id,
                    "algorithm": algorithm_name(k.algorithm),
                    "backend": k.backend,
                    "gun": k.scope.as_ref().map(|s| s.gun.as_str()).unwrap_or(""),
                    "role": k.scope.as_ref().map(|s| s.role.as_str()).unwrap_or(""),
                    "generated_on_device": k.generated_on_device,
                    "created": rfc3339(k.created.as_ref()),
                    "attestation": attestation,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("JSON serializes")
        );
        return Ok(());
    }
    if keys.is_empty() {
        println!("No keys (or none you may use).");
        return Ok(());
    }
    let rows: Vec<[String; 7]> = keys
        .iter()
        .zip(attestations)
        .map(|(k, (attestation, _))| {
            [
                k.name.clone(),
                k.key_id.clone(),
                algorithm_name(k.algorithm).to_owned(),
                k.backend.clone(),
                if k.generated_on_device {
                    "generated"
                } else {
                    "imported"
                }
                .to_owned(),
                attestation,
                rfc3339(k.created.as_ref()),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "KEY ID",
            "ALGORITHM",
            "BACKEND",
            "ORIGIN",
            "ATTESTATION",
            "CREATED",
        ],
        &rows,
    );
    Ok(())
}

/// "PIN_POLICY_ALWAYS" -> "always".
pub fn policy_name(name: Option<&str>) -> String {
    name.and_then(|n| n.rsplit('_').next())
        .unwrap_or("unknown")
        .to_ascii_lowercase()
}

pub fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths = headers.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn public(
    trustd: &Trustd,
    name: &str,
    output: Option<PathBuf>,
    certificate: bool,
) -> Result<(), CliError> {
    let mut client = client::connect(trustd).await?;
    let key = client::key_info(&mut client, name).await?;
    let pem = if certificate {
        if key.certificate_der.is_empty() {
            return Err(CliError::NotFound(format!(
                "key {name:?} has no certificate (load one with trustctl key load --cert)"
            )));
        }
        keyfile::certificate_pem(&key.certificate_der)
    } else {
        keyfile::public_key_pem(&key.public_key_der)
    };
    match output {
        Some(path) => std::fs::write(&path, pem).map_err(|e| {
            CliError::Failed(format!(
                "cannot write {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?,
        None => print!("{pem}"),
    }
    Ok(())
}

async fn load(trustd: &Trustd, args: LoadArgs) -> Result<(), CliError> {
    let text = Zeroizing::new(read_text(&args.file, "the key file")?);
    let passphrase = if keyfile::is_encrypted(&text) {
        Some(read_passphrase(&args.file, args.passphrase_stdin)?)
    } else {
        None
    };
    let mut der = keyfile::private_key_pkcs8(&text, passphrase.as_ref().map(|p| p.as_bytes()))?;
    drop(passphrase);
    drop(text);
    // A client bundle: key.pem with cert.pem beside it.
    let bundle_cert = (args.file.file_name() == Some(std::ffi::OsStr::new("key.pem")))
        .then(|| args.file.with_file_name("cert.pem"))
        .filter(|p| p.exists());
    let cert_file = args.cert.clone().or(bundle_cert);
    let certificate_der = match &cert_file {
        Some(path) => {
            let text = read_bytes(path, "the certificate")?;
            keyfile::certificate_der(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
        }
        None => Vec::new(),
    };
    let mut client = client::connect(trustd).await?;
    let request = pb::ImportKeyRequest {
        name: args.name.clone(),
        backend: args.backend.unwrap_or_default(),
        scope: None,
        pkcs8_der: std::mem::take(&mut *der),
        certificate_der,
    };
    let result = client.import_key(request).await;
    let key = result
        .map_err(|s| CliError::from_status(&format!("cannot load key {:?}", args.name), s))?
        .into_inner()
        .key
        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))?;
    println!(
        "Loaded {} key {:?} into backend {:?} (non-extractable)\nKey ID: {}\nThe key file {} still holds the private key: delete it once you have checked the key works.",
        algorithm_name(key.algorithm),
        key.name,
        key.backend,
        key.key_id,
        args.file.display()
    );
    if let Some(path) = cert_file {
        println!(
            "Certificate {} is kept with the key (trustctl key public {} --certificate)",
            path.display(),
            key.name
        );
    }
    Ok(())
}

fn read_passphrase(file: &Path, from_stdin: bool) -> Result<Zeroizing<String>, CliError> {
    if from_stdin {
        // Sized up front so reading never reallocates and leaves unwiped copies behind.
        let mut line = Zeroizing::new(String::with_capacity(1024));
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("cannot read the passphrase from stdin: {e}")))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
        return Ok(trimmed);
    }
    rpassword::prompt_password(format!("Passphrase for {}: ", file.display()))
        .map(Zeroizing::new)
        .map_err(|e| {
            CliError::Usage(format!(
                "the key is encrypted and no terminal is available to ask for its passphrase ({e}); use --passphrase-stdin"
            ))
        })
}

async fn delete(trustd: &Trustd, name: &str, yes: bool) -> Result<(), CliError> {
    let mut client = client::connect(trustd).await?;
    if !yes {
        // Say what the key is for: a repository's root or targets key cannot be replaced by
        // generating another one.
        let info = client
            .get_public_key(pb::GetPublicKeyRequest {
                key: client::key_selector(name),
            })
            .await
            .map_err(|s| CliError::from_status(&format!("cannot delete key {name:?}"), s))?
            .into_inner()
            .key;
        let breaks = match info.as_ref().and_then(|k| k.scope.as_ref()) {
            Some(scope) if !scope.gun.is_empty() && scope.role == "root" => format!(
                ", the root key of {gun}: without it {gun}'s keys can never be rotated again",
                gun = scope.gun
            ),
            Some(scope) if !scope.gun.is_empty() && !scope.role.is_empty() => format!(
                ", the {role} key of {gun}: nobody can sign {gun} as {role} until `trustctl key rotate {gun} {role}` replaces it",
                gun = scope.gun,
                role = scope.role
            ),
            _ => String::new(),
        };
        super::confirm(
            &format!("deleting key {name:?}{breaks}"),
            &format!("Delete key {name:?}{breaks}? The device erases it; this cannot be undone."),
        )?;
    }
    let key = client
        .delete_key(pb::DeleteKeyRequest {
            key: client::key_selector(name),
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot delete key {name:?}"), s))?
        .into_inner()
        .key
        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))?;
    println!("Deleted key {:?} ({})", key.name, key.key_id);
    Ok(())
}

async fn rotate(trustd: &Trustd, args: RotateArgs) -> Result<(), CliError> {
    use trustctl::notary::rotate::{self, NewKey};
    use trustctl::reference::ImageRef;
    let image = ImageRef::parse(&args.gun).map_err(CliError::Usage)?;
    let server = args.notary.server(&image)?;
    let store = args.notary.trust_store();
    let repo =
        trustd_notary::trust::update(&server, &store, &image.gun, time::OffsetDateTime::now_utc())
            .await
            .map_err(|e| super::inspect::trust_error(&args.gun, &server, e))?;
    let client = client::connect(trustd).await?;
    let root_only =
        !args.root_keys.is_empty() || args.root_threshold.is_some() || args.renew_certificates;
    if args.role == "root" {
        if args.server_managed {
            return Err(CliError::Usage(
                "the root keys are never the server's: drop --server-managed".into(),
            ));
        }
        let rotation = rotate::RootRotation {
            keys: &args.root_keys,
            threshold: args.root_threshold,
            renew: args.renew_certificates,
            backend: args.backend.as_deref().unwrap_or(""),
        };
        let rotated = rotate::rotate_root(&server, &store, client, &repo, rotation).await?;
        let role = &rotated.repo.root.roles["root"];
        println!(
            "Rotated the root of {}: root version {}, {} of {} keys must sign ({})",
            image.gun,
            rotated.repo.root.version,
            role.threshold,
            role.keyids.len(),
            rotated.keys.join(", ")
        );
        return Ok(());
    }
    if root_only {
        return Err(CliError::Usage(format!(
            "--root-key, --root-threshold and --renew-certificates are for rotating the root, not the {} key",
            args.role
        )));
    }
    let new_key = if args.server_managed {
        NewKey::Server
    } else {
        NewKey::Trustd {
            backend: args.backend.as_deref().unwrap_or(""),
        }
    };
    let rotated = rotate::rotate(&server, &store, client, &repo, &args.role, new_key).await?;
    let holder = match &rotated.held_name {
        Some(name) => format!("trustd key {name:?}"),
        None => format!("held by {}", server.url()),
    };
    println!(
        "Rotated the {} key of {}: new key {} ({holder}); root version {}",
        args.role, image.gun, rotated.key_id, rotated.repo.root.version
    );
    if let Some(previous) = rotated.previous {
        println!(
            "The previous key {previous:?} is no longer trusted for this role; delete it with `trustctl key delete {previous}` once nothing else uses it"
        );
    }
    Ok(())
}
