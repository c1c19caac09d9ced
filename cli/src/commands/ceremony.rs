//! `trustctl ceremony start|show|sign|publish`: a root rotation or certificate renewal signed
//! by officers on different machines, each with their own token and trustd, through a file
//! handed between them (the format and every check are `trustd_notary::ceremony`'s). And
//! `trustctl key root-cert`, the certificate an officer hands over for a new root key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use trustctl::client::signer::TrustdSigner;
use trustctl::client::{self, Trustd};
use trustctl::error::{io_reason, read_bytes, CliError};
use trustctl::reference::ImageRef;
use trustd_notary::ceremony::{
    base_of, CeremonyError, CeremonyFile, Kind, Proposal, Review, MAX_FILE_BYTES,
};
use trustd_notary::keys::{KeyType, PublicKey};
use trustd_notary::publish::draft::with_snapshot;
use trustd_notary::publish::root::{self, RootChange, RootKey};
use trustd_notary::publish::RoleSigner;
use trustd_notary::text::sanitize;
use trustd_notary::trust::{self, VerifiedRepository};

use super::inspect::{trust_error, NotaryArgs};

#[derive(Subcommand)]
pub enum CeremonyCommand {
    /// Start a root ceremony: write the file every officer signs in turn.
    Start(StartArgs),
    /// Show what a ceremony changes, who has signed and who is still needed.
    Show(FileArgs),
    /// Sign a ceremony with a root key held by this machine's trustd.
    Sign(SignArgs),
    /// Check every signature and both thresholds, then publish the new root in one upload.
    Publish(FileArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// New root keys (some may stay), or a new threshold.
    RootRotation,
    /// The same root keys, each with a new certificate.
    RootRenewal,
}

#[derive(Args)]
pub struct StartArgs {
    /// The repository (GUN).
    gun: String,
    /// What the ceremony changes.
    #[arg(value_enum)]
    kind: KindArg,
    /// A current root key that stays, by key ID (as `ceremony show` and `inspect` list them).
    #[arg(long = "keep", value_name = "KEYID")]
    keep: Vec<String>,
    /// A new root key held by this machine's trustd (its certificate is made on the device).
    #[arg(long = "root-key", value_name = "NAME")]
    root_keys: Vec<String>,
    /// An officer's root certificate, from `trustctl key root-cert NAME --gun GUN`.
    #[arg(long = "root-cert", value_name = "FILE")]
    root_certs: Vec<PathBuf>,
    /// How many root keys must sign the new root and every later one [default: the current
    /// threshold]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    root_threshold: Option<u32>,
    /// Days the ceremony stays open (1-90).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    days: i64,
    /// Where to write the ceremony file (it must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct FileArgs {
    /// The ceremony file.
    file: PathBuf,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct SignArgs {
    /// The ceremony file (rewritten with the new signature).
    file: PathBuf,
    /// The root key in this machine's trustd to sign with.
    #[arg(long, value_name = "NAME")]
    key: String,
    /// Do not ask for confirmation (scripts; read the summary first).
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct RootCertArgs {
    /// The key in trustd (ECDSA P-256).
    name: String,
    /// The repository the certificate is for (its common name).
    #[arg(long, value_name = "GUN")]
    gun: String,
    /// Write the certificate here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn ceremony_error(error: CeremonyError) -> CliError {
    let message = error.to_string();
    match error {
        CeremonyError::Malformed(_)
        | CeremonyError::OtherRepository { .. }
        | CeremonyError::BadRoot(_)
        | CeremonyError::BadRole { .. } => CliError::Usage(message),
        CeremonyError::NotASigner(_) => CliError::Denied(message),
        CeremonyError::Expired(_)
        | CeremonyError::BaseMoved { .. }
        | CeremonyError::BadSignature(_)
        | CeremonyError::SignedTwice(_) => CliError::Failed(message),
    }
}

fn repository(text: &str) -> Result<ImageRef, CliError> {
    ImageRef::parse_repository(text).map_err(CliError::Usage)
}

/// The repository's trust data, verified on read, as it is now.
async fn current(notary: &NotaryArgs, gun: &str) -> Result<VerifiedRepository, CliError> {
    let image = repository(gun)?;
    let server = notary.server(&image)?;
    trust::update(
        &server,
        &notary.trust_store(),
        &image.gun,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|e| trust_error(gun, &server, e))
}

fn read_ceremony(path: &Path) -> Result<CeremonyFile, CliError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot read the ceremony file {}: {}",
            path.display(),
            io_reason(&e)
        ))
    };
    // Read at most one byte past the limit, so a file that grows meanwhile is still bounded.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    CeremonyFile::parse(&bytes)
        .map_err(|e| CliError::Usage(format!("{}: {}", path.display(), ceremony_error(e))))
}

/// Reads the file and checks it against the repository as it is now.
async fn open(
    path: &Path,
    notary: &NotaryArgs,
) -> Result<(CeremonyFile, VerifiedRepository, Review), CliError> {
    let file = read_ceremony(path)?;
    let repo = current(notary, &file.gun).await?;
    let review = file
        .review(&repo, time::OffsetDateTime::now_utc())
        .map_err(ceremony_error)?;
    Ok((file, repo, review))
}

/// A key ID with the name an officer gave it, for people.
fn named(file: &CeremonyFile, keyid: &str) -> String {
    match file.names.get(keyid) {
        Some(name) => format!("{keyid} ({})", sanitize(name)),
        None => keyid.to_owned(),
    }
}

/// What the ceremony changes in plain words, who signed, who is still needed.
fn summary(file: &CeremonyFile, review: &Review) -> String {
    let mut lines = vec![
        format!(
            "Ceremony: {} of {}, {} version {} -> {}",
            file.kind.as_str(),
            sanitize(&file.gun),
            sanitize(&file.role),
            review.versions.0,
            review.versions.1
        ),
        format!("Fingerprint (read it aloud): {}", review.fingerprint),
        format!("Open until: {}", sanitize(&file.expires)),
    ];
    for change in &review.changes {
        lines.push(format!("  {}", sanitize(change)));
    }
    for progress in &review.thresholds {
        let state = if progress.met() { "met" } else { "not met" };
        lines.push(format!(
            "Signed for the {}: {} of {} needed ({state})",
            progress.label,
            progress.signed.len(),
            progress.threshold
        ));
        for id in &progress.signed {
            lines.push(format!("  signed:  {}", named(file, id)));
        }
        if !progress.met() {
            for id in progress.missing() {
                lines.push(format!("  may sign: {}", named(file, id)));
            }
        }
    }
    lines.join("\n")
}

/// Writes `file` in place: a temporary file beside it, then a rename, so an interrupted
/// signature never leaves half a file.
fn write_ceremony(path: &Path, file: &CeremonyFile) -> Result<(), CliError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let temporary = tempfile_in(dir.unwrap_or(Path::new(".")), path)?;
    std::fs::write(&temporary, file.to_bytes())
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            CliError::Failed(format!(
                "cannot write {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })
}

fn tempfile_in(dir: &Path, path: &Path) -> Result<PathBuf, CliError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ceremony".into());
    Ok(dir.join(format!(".{name}.{}.tmp", std::process::id())))
}

/// An officer's root certificate file: one certificate, for this GUN, not a CA, valid now,
/// around an ECDSA P-256 key; written back as Go writes PEM, so its key ID is notary's.
fn officer_certificate(path: &Path, gun: &str) -> Result<PublicKey, CliError> {
    let bad = |why: String| CliError::Usage(format!("{}: {why}", path.display()));
    let pem = read_bytes(path, "the root certificate")?;
    let cert = trustd_notary::certificate::from_pem(&pem).map_err(bad)?;
    let cn = trustd_notary::certificate::common_name(&cert);
    if cn.as_deref() != Some(gun) {
        return Err(bad(format!(
            "the certificate is for {}, not {gun}: the officer must make it with `trustctl key root-cert NAME --gun {gun}`",
            cn.map_or("no common name".to_owned(), |cn| format!("{cn:?}"))
        )));
    }
    if trustd_notary::certificate::is_ca(&cert) {
        return Err(bad(
            "it is a CA certificate; a root key's certificate is its own leaf".into(),
        ));
    }
    if !trustd_notary::certificate::is_valid_at(&cert, time::OffsetDateTime::now_utc()) {
        return Err(bad("it is outside its validity period".into()));
    }
    let text = trustd_notary::root_cert::to_pem(&cert).map_err(|e| bad(e.to_string()))?;
    let key = PublicKey::new(KeyType::EcdsaX509, text.into_bytes());
    let spki = key.spki_der().map_err(|e| bad(e.to_string()))?;
    if <p256::PublicKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(&spki).is_err() {
        return Err(bad(
            "its key is not ECDSA P-256 (notary root certificates are ecdsa-x509)".into(),
        ));
    }
    Ok(key)
}

pub async fn run(trustd: &Trustd, command: CeremonyCommand) -> Result<(), CliError> {
    match command {
        CeremonyCommand::Start(args) => start(trustd, args).await,
        CeremonyCommand::Show(args) => {
            let (file, _, review) = open(&args.file, &args.notary).await?;
            println!("{}", summary(&file, &review));
            if review.complete() {
                println!("Both thresholds are met: `trustctl ceremony publish` publishes it.");
            }
            Ok(())
        }
        CeremonyCommand::Sign(args) => sign(trustd, args).await,
        CeremonyCommand::Publish(args) => publish(trustd, args).await,
    }
}

async fn start(trustd: &Trustd, args: StartArgs) -> Result<(), CliError> {
    let repo = current(&args.notary, &args.gun).await?;
    let gun = repo.gun.clone();
    let current_role = &repo.root.roles["root"];
    if args.out.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: a ceremony file is never overwritten; choose another --out",
            args.out.display()
        )));
    }
    let mut names = BTreeMap::new();
    let mut keys: Vec<RootKey> = Vec::new();
    for keyid in &args.keep {
        if !current_role.keyids.contains(keyid) {
            return Err(CliError::Usage(format!(
                "--keep {keyid} is not a current root key of {gun} (they are {})",
                current_role.keyids.join(", ")
            )));
        }
        keys.push(RootKey {
            name: String::new(),
            certificate: repo.root.keys[keyid].clone(),
        });
    }
    for path in &args.root_certs {
        let certificate = officer_certificate(path, &gun)?;
        let label = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        names.insert(certificate.id(), label);
        keys.push(RootKey {
            name: String::new(),
            certificate,
        });
    }
    if !args.root_keys.is_empty() {
        let mut signer = TrustdSigner::new(client::connect(trustd).await?);
        let made = root::root_keys(&mut signer, &gun, &args.root_keys, &BTreeMap::new()).await?;
        for key in made {
            names.insert(key.certificate.id(), key.name.clone());
            keys.push(key);
        }
    }
    // One key behind two certificates would count twice: refused across every source.
    let mut seen = BTreeMap::new();
    for key in &keys {
        let spki = key
            .certificate
            .spki_der()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if let Some(other) = seen.insert(spki, key.certificate.id()) {
            return Err(CliError::Usage(format!(
                "root keys {other} and {} are the same key: notary would count it twice",
                key.certificate.id()
            )));
        }
    }
    let kind = match args.kind {
        KindArg::RootRotation => Kind::RootRotation,
        KindArg::RootRenewal => {
            check_renewal(&repo, &keys)?;
            Kind::RootRenewal
        }
    };
    let threshold = args.root_threshold.unwrap_or(current_role.threshold);
    if args.root_threshold.is_none() && threshold as usize > keys.len() {
        return Err(CliError::Usage(format!(
            "the root threshold is {threshold} and the new root has {} keys: name more keys, or lower it with --root-threshold",
            keys.len()
        )));
    }
    root::check_threshold(threshold, keys.len())?;
    let new_root = root::next_root(&repo.root, &RootChange { keys, threshold });
    let proposal = Proposal {
        kind,
        gun: &gun,
        role: "root",
        body: trustd_notary::publish::roles::canonical_body(&new_root)?,
        base: base_of(repo.root.version, repo.files.get("root").map(Vec::as_slice)),
        names,
        days: args.days,
    };
    let now = time::OffsetDateTime::now_utc();
    let file = CeremonyFile::start(proposal, now).map_err(ceremony_error)?;
    let review = file.review(&repo, now).map_err(ceremony_error)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .and_then(|mut out| std::io::Write::write_all(&mut out, &file.to_bytes()))
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot write {}: {}",
                args.out.display(),
                io_reason(&e)
            ))
        })?;
    println!("{}", summary(&file, &review));
    println!(
        "Wrote {}. Each officer runs `trustctl ceremony sign {} --key NAME` on their machine, then `trustctl ceremony publish`.",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// A renewal keeps exactly the current root keys, each with a new certificate.
fn check_renewal(repo: &VerifiedRepository, keys: &[RootKey]) -> Result<(), CliError> {
    let current = &repo.root.roles["root"];
    let spki = |key: &PublicKey| key.spki_der().unwrap_or_default();
    for id in &current.keyids {
        let old = &repo.root.keys[id];
        match keys.iter().find(|k| spki(&k.certificate) == spki(old)) {
            None => {
                return Err(CliError::Usage(format!(
                    "a renewal gives every current root key a new certificate: none is given for {id}"
                )))
            }
            Some(k) if k.certificate.id() == *id => {
                return Err(CliError::Usage(format!(
                    "{id} keeps its old certificate: a renewal needs a new one (`trustctl key root-cert`)"
                )))
            }
            Some(_) => {}
        }
    }
    if keys.len() != current.keyids.len() {
        return Err(CliError::Usage(
            "a renewal keeps the same root keys: use root-rotation to add or remove keys".into(),
        ));
    }
    Ok(())
}

async fn sign(trustd: &Trustd, args: SignArgs) -> Result<(), CliError> {
    let (mut file, _, review) = open(&args.file, &args.notary).await?;
    let mut signer = TrustdSigner::new(client::connect(trustd).await?);
    let candidates = review.keys.clone();
    let ids: Vec<String> = candidates.keys().cloned().collect();
    let mine: Vec<String> = signer
        .held(&candidates, &ids)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .into_iter()
        .filter(|held| held.name == args.key)
        .map(|held| held.keyid)
        .collect();
    if mine.is_empty() {
        signer.key(&args.key).await?;
        return Err(CliError::Denied(format!(
            "key {:?} is not a signer of this ceremony of {}",
            args.key,
            sanitize(&file.gun)
        )));
    }
    let unsigned: Vec<&String> = mine
        .iter()
        .filter(|id| !file.signatures.iter().any(|s| &s.keyid == *id))
        .collect();
    if unsigned.is_empty() {
        return Err(CliError::Failed(format!(
            "key {:?} has already signed this ceremony",
            args.key
        )));
    }
    eprintln!("{}", summary(&file, &review));
    if !args.yes {
        super::confirm_or(
            "signing a root ceremony",
            &format!(
                "Sign this with {:?}? Check the fingerprint with the other officers first.",
                args.key
            ),
            "--yes",
        )?;
    }
    let mut signatures = Vec::new();
    for keyid in unsigned {
        signatures.push(
            signer
                .sign(&args.key, keyid, &file.signed)
                .await
                .map_err(|e| match e.0.downcast::<CliError>() {
                    Ok(cli) => *cli,
                    Err(other) => CliError::Failed(other.to_string()),
                })?,
        );
    }
    file.add(signatures).map_err(ceremony_error)?;
    for keyid in &mine {
        file.names
            .entry(keyid.clone())
            .or_insert_with(|| args.key.clone());
    }
    write_ceremony(&args.file, &file)?;
    let repo = current(&args.notary, &file.gun).await?;
    let review = file
        .review(&repo, time::OffsetDateTime::now_utc())
        .map_err(ceremony_error)?;
    let tallies: Vec<String> = review
        .thresholds
        .iter()
        .map(|p| format!("{} {} of {}", p.label, p.signed.len(), p.threshold))
        .collect();
    println!(
        "Signed {} with {:?}: {}{}",
        args.file.display(),
        args.key,
        tallies.join(", "),
        if review.complete() {
            "; ready to publish"
        } else {
            ""
        }
    );
    Ok(())
}

async fn publish(trustd: &Trustd, args: FileArgs) -> Result<(), CliError> {
    let (file, repo, review) = open(&args.file, &args.notary).await?;
    if !review.complete() {
        let mut needed = Vec::new();
        for progress in &review.thresholds {
            if !progress.met() {
                needed.push(format!(
                    "the {} has {} of {} signatures (may still sign: {})",
                    progress.label,
                    progress.signed.len(),
                    progress.threshold,
                    progress
                        .missing()
                        .iter()
                        .map(|id| named(&file, id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        return Err(CliError::Failed(format!(
            "not published, nothing was sent: {}",
            needed.join("; ")
        )));
    }
    let mut files = vec![(file.role.clone(), file.role_file())];
    // A snapshot key this machine's trustd holds re-signs the snapshot; a machine without
    // trustd publishes for a server that holds it.
    if let Ok(connected) = client::connect(trustd).await {
        with_snapshot(&mut TrustdSigner::new(connected), &repo, &mut files).await?;
    }
    let image = repository(&file.gun)?;
    let server = args.notary.server(&image)?;
    let published = trustd_notary::publish::roles::publish_and_verify(
        &server,
        &args.notary.trust_store(),
        &repo.gun,
        &files,
    )
    .await?;
    match file.kind {
        Kind::Release => println!(
            "Published {} version {} of {} with {} signatures",
            sanitize(&file.role),
            review.versions.1,
            sanitize(&published.gun),
            file.signatures.len()
        ),
        Kind::RootRotation | Kind::RootRenewal => {
            let role = &published.root.roles["root"];
            println!(
                "Published root version {} of {}: {} of {} root keys must sign",
                published.root.version,
                sanitize(&published.gun),
                role.threshold,
                role.keyids.len()
            );
        }
    }
    Ok(())
}

/// `trustctl key root-cert NAME --gun GUN`: a root certificate for a key in this trustd,
/// signed on its device, for an officer to hand to whoever starts a ceremony.
pub async fn root_cert(trustd: &Trustd, args: RootCertArgs) -> Result<(), CliError> {
    let image = repository(&args.gun)?;
    let mut signer = TrustdSigner::new(client::connect(trustd).await?);
    let key =
        trustd_notary::publish::root::root_certificate(&mut signer, &args.name, &image.gun).await?;
    let pem = String::from_utf8_lossy(&key.keyval.public).into_owned();
    match &args.out {
        Some(path) => {
            std::fs::write(path, &pem).map_err(|e| {
                CliError::Failed(format!(
                    "cannot write {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
            eprintln!(
                "Wrote the root certificate of {:?} for {} to {} (key ID {})",
                args.name,
                image.gun,
                path.display(),
                key.id()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}

/// Starts a release ceremony for a role that needs more signatures than this machine's
/// trustd holds: the file, with the signatures made here, in the current directory, named
/// after the repository, role and version. It is never overwritten.
fn start_release(
    repo: &VerifiedRepository,
    pending: trustd_notary::publish::draft::Pending,
) -> Result<PathBuf, CliError> {
    let current_version = trustd_notary::ceremony::delegated_version(repo, &pending.role);
    let proposal = Proposal {
        kind: Kind::Release,
        gun: &repo.gun,
        role: &pending.role,
        body: pending.body,
        base: base_of(
            current_version,
            repo.files.get(&pending.role).map(Vec::as_slice),
        ),
        names: BTreeMap::new(),
        days: 7,
    };
    let mut file =
        CeremonyFile::start(proposal, time::OffsetDateTime::now_utc()).map_err(ceremony_error)?;
    file.add(pending.signatures).map_err(ceremony_error)?;
    let safe = |text: &str| text.replace(['/', ':'], "_");
    let fingerprint = trustd_notary::ceremony::fingerprint(&file.signed);
    let path = PathBuf::from(format!(
        "{}.{}.v{}.{}.ceremony.json",
        safe(&repo.gun),
        safe(&pending.role),
        current_version + 1,
        &fingerprint[..9]
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut out| std::io::Write::write_all(&mut out, &file.to_bytes()))
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot write the release ceremony {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
    Ok(path)
}

/// Starts the release ceremony for `pending` and says so as an image's Notary outcome.
pub fn pending_release(
    repo: &VerifiedRepository,
    pending: trustd_notary::publish::draft::Pending,
) -> Result<super::batch::Detail, CliError> {
    let role = pending.role.clone();
    let (signed, threshold) = (pending.signatures.len(), pending.threshold);
    let path = start_release(repo, pending)?;
    Ok(super::batch::Detail::Pending {
        role,
        signed,
        threshold,
        ceremony: path.display().to_string(),
    })
}
