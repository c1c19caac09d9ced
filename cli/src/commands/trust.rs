//! `trustctl init` and `trustctl sign`: Docker Content Trust with every key in trustd.

use std::collections::BTreeMap;
use std::path::PathBuf;
use trustctl::client::Trustd;

use clap::Args;
use trustctl::client;
use trustctl::error::CliError;
use trustctl::notary::publish::{self, InitOptions, SignAs, Target};
use trustctl::reference::ImageRef;
use trustctl::registry::{ManifestRef, RegistryError};
use trustd_notary::trust;

use super::inspect::{trust_error, NotaryArgs};
use super::repository::open_or_init;

#[derive(Args)]
pub struct InitArgs {
    /// Repository (GUN), e.g. registry.example.com/team/app.
    gun: String,
    /// trustd backend for the new root and targets keys [default: trustd's first backend]
    #[arg(long)]
    backend: Option<String>,
    /// Keep the snapshot key in trustd instead of on the notary server.
    #[arg(long)]
    local_snapshot: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct SignArgs {
    /// IMAGE:TAG (resolved in the registry), or IMAGE:TAG@sha256:DIGEST. Several images are
    /// signed with one signature per changed role of each repository.
    #[arg(required_unless_present = "file", value_name = "IMAGE:TAG")]
    images: Vec<String>,
    #[command(flatten)]
    batch: super::batch::BatchArgs,
    /// Where a batch writes the images it could not sign.
    #[arg(long, value_name = "FILE", default_value = "sign-failed.txt")]
    failed: PathBuf,
    /// Manifest digest (sha256:HEX) of the tag; with --size, signs without asking the
    /// registry. One image only.
    #[arg(long, value_name = "sha256:HEX", requires = "size")]
    digest: Option<String>,
    /// Manifest size in bytes (with a digest given by --digest or IMAGE:TAG@sha256:...).
    #[arg(long)]
    size: Option<i64>,
    /// trustd backend for keys created if the repository is new.
    #[arg(long)]
    backend: Option<String>,
    /// Sign as this signer only, or `targets` to sign as the repository admin [default: every
    /// signer whose key trustd holds for you and whose paths cover the tag, else the admin]
    #[arg(long, value_name = "NAME")]
    signer: Option<String>,
    #[command(flatten)]
    notary: NotaryArgs,
}

pub async fn init(trustd: &Trustd, args: InitArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.gun).map_err(CliError::Usage)?;
    let server = args.notary.server(&image)?;
    let store = args.notary.trust_store();
    let client = client::connect(trustd).await?;
    let options = InitOptions {
        backend: args.backend.as_deref().unwrap_or(""),
        local_snapshot: args.local_snapshot,
    };
    let repo = publish::init(&server, &store, client, &image.gun, &options).await?;
    println!(
        "Initialized {} on {}\nRoot key:       {}\nRepository key: {}",
        image.gun,
        server.url(),
        repo.root.roles["root"].keyids.join(", "),
        repo.root.roles["targets"].keyids.join(", ")
    );
    Ok(())
}

fn parse_digest(text: &str) -> Result<[u8; 32], CliError> {
    let hex_part = text.strip_prefix("sha256:").ok_or_else(|| {
        CliError::Usage(format!(
            "digest {text:?} must look like sha256:<64 hex digits>"
        ))
    })?;
    let bytes = hex::decode(hex_part)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| CliError::Usage(format!("digest {text:?} must have 64 hex digits")))?;
    Ok(bytes)
}

/// One tag to sign, as the user named it, with its manifest once known.
struct SignRequest {
    text: String,
    image: ImageRef,
    tag: String,
    manifest: Option<ManifestRef>,
}

/// Reads `IMAGE:TAG[@sha256:...]` with the --digest/--size flags into what to sign; a tag
/// without a digest is left for the registry to resolve.
fn sign_request(text: &str, args: &SignArgs) -> Result<SignRequest, CliError> {
    let (reference, inline_digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    let digest = match (inline_digest, args.digest.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(CliError::Usage(format!(
                "{text}: the image's @digest and --digest differ"
            )))
        }
        (Some(d), _) | (None, Some(d)) => Some(parse_digest(d)?),
        (None, None) => None,
    };
    let manifest = match (digest, args.size) {
        (Some(sha256), Some(size)) if size > 0 => Some(ManifestRef { sha256, size }),
        (Some(_), _) => {
            return Err(CliError::Usage(format!(
                "{text}: with a digest, give the manifest's size in bytes (--size)"
            )))
        }
        (None, Some(_)) => {
            return Err(CliError::Usage(
                "--size goes with a digest (--digest or IMAGE:TAG@sha256:...)".into(),
            ))
        }
        (None, None) => None,
    };
    let image = ImageRef::parse(reference).map_err(CliError::Usage)?;
    let tag = image
        .tag
        .clone()
        .ok_or_else(|| CliError::Usage(format!("{reference}: name the tag to sign (IMAGE:TAG)")))?;
    Ok(SignRequest {
        text: text.to_owned(),
        image,
        tag,
        manifest,
    })
}

fn registry_error(image: &str, error: RegistryError) -> CliError {
    let message = format!("{image}: {error}");
    match error {
        RegistryError::Unreachable { .. } => CliError::Unreachable(message),
        RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => {
            CliError::Denied(message)
        }
        RegistryError::TagNotFound { .. } => CliError::NotFound(message),
        RegistryError::BadCa { .. } => CliError::Usage(message),
        RegistryError::Credentials(_)
        | RegistryError::Refused { .. }
        | RegistryError::BadManifest { .. } => CliError::Failed(message),
    }
}

pub async fn sign(trustd: &Trustd, args: SignArgs) -> Result<(), CliError> {
    if args.batch.file.is_some()
        || args.batch.format != super::batch::Format::Notary
        || args.batch.registry.is_some()
        || args.batch.project.is_some()
    {
        if args.digest.is_some() || args.size.is_some() {
            return Err(CliError::Usage(
                "--digest and --size sign one image in Notary format; a batch resolves every image in the registry".into(),
            ));
        }
        return super::batch::sign(
            trustd,
            &args.images,
            &args.batch,
            &args.notary,
            args.backend.as_deref().unwrap_or(""),
            args.signer.as_deref(),
            &args.failed,
        )
        .await;
    }
    if args.images.len() > 1 && (args.digest.is_some() || args.size.is_some()) {
        return Err(CliError::Usage(
            "--digest and --size sign one image; for several, let the registry resolve each tag"
                .into(),
        ));
    }
    let mut requests = args
        .images
        .iter()
        .map(|text| sign_request(text, &args))
        .collect::<Result<Vec<_>, _>>()?;
    // One client for every tag: one connection and one login per repository.
    let registry = args.batch.registry_client(&args.notary)?;
    for request in requests.iter_mut().filter(|r| r.manifest.is_none()) {
        let manifest = registry
            .resolve_tag(&request.image)
            .await
            .map_err(|e| registry_error(&request.text, e))?;
        request.manifest = Some(manifest);
    }

    // One update per repository, however many of its tags are signed.
    let mut by_gun: BTreeMap<&str, Vec<&SignRequest>> = BTreeMap::new();
    for request in &requests {
        let same_repo = by_gun.entry(&request.image.gun).or_default();
        if same_repo.iter().any(|r| r.tag == request.tag) {
            return Err(CliError::Usage(format!(
                "{}:{} is named twice; sign each tag once",
                request.image.gun, request.tag
            )));
        }
        same_repo.push(request);
    }
    let store = args.notary.trust_store();
    let client = client::connect(trustd).await?;
    for (gun, requests) in by_gun {
        let image = &requests[0].image;
        let server = args.notary.server(image)?;
        let backend = args.backend.as_deref().unwrap_or("");
        let repo = open_or_init(&server, &store, &client, gun, backend).await?;
        let targets: Vec<Target> = requests
            .iter()
            .map(|r| {
                let manifest = r.manifest.as_ref().expect("every tag was resolved");
                Target {
                    tag: &r.tag,
                    sha256: manifest.sha256,
                    size: manifest.size,
                }
            })
            .collect();
        let sign_as = SignAs::from_option(args.signer.as_deref());
        let (_, roles) =
            publish::sign_targets(&server, &store, client.clone(), &repo, &targets, sign_as)
                .await?;
        for target in &targets {
            println!(
                "Signed {gun}:{} (sha256:{}, {} bytes) in {}",
                target.tag,
                hex::encode(target.sha256),
                target.size,
                roles.join(", ")
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct RevokeArgs {
    /// IMAGE:TAG to revoke one tag, IMAGE to revoke every tag.
    image: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

pub async fn revoke(trustd: &Trustd, args: RevokeArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.image).map_err(CliError::Usage)?;
    let server = args.notary.server(&image)?;
    let store = args.notary.trust_store();
    let repo = trust::update(&server, &store, &image.gun, time::OffsetDateTime::now_utc())
        .await
        .map_err(|e| trust_error(&args.image, &server, e))?;
    let what = match &image.tag {
        Some(tag) => format!("the signature of {}:{tag}", image.gun),
        None => format!("every signature of {}", image.gun),
    };
    if !args.yes {
        super::confirm(&format!("revoking {what}"), &format!("Revoke {what}?"))?;
    }
    let client = client::connect(trustd).await?;
    let tags = image.tag.clone().map(|t| vec![t]);
    publish::revoke_targets(&server, &store, client, &repo, tags.as_deref()).await?;
    println!("Revoked {what}");
    Ok(())
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Repository (GUN).
    gun: String,
    /// Also delete the repository's trust data on the notary server.
    #[arg(long)]
    remote: bool,
    /// Do not ask before deleting the server's trust data (--remote).
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

pub async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.gun).map_err(CliError::Usage)?;
    let store = args.notary.trust_store();
    if args.remote {
        let server = args.notary.server(&image)?;
        // The server answers a delete of a repository it never had as if it had deleted one:
        // look first, so the message says what happened.
        let exists = server
            .get(
                &image.gun,
                "root.json",
                trustd_notary::client::server::MAX_SMALL_ROLE_BYTES,
            )
            .await?
            .is_some();
        if exists {
            if !args.yes {
                super::confirm(
                    &format!("deleting the trust data of {} on {}", image.gun, server.url()),
                    &format!(
                        "Delete every signature of {} on {}? Docker Content Trust clients will refuse its images until it is signed again.",
                        image.gun,
                        server.url()
                    ),
                )?;
            }
            server.delete(&image.gun).await?;
            println!(
                "Deleted the trust data of {} on {}",
                image.gun,
                server.url()
            );
        } else {
            eprintln!(
                "trustctl: {} has no trust data for {}: nothing to delete there",
                server.url(),
                image.gun
            );
        }
    }
    store
        .delete(&image.gun)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    println!("Deleted the local trust data of {}", image.gun);
    Ok(())
}
