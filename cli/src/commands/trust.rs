//! `trustctl init` and `trustctl sign`: Docker Content Trust with every key in trustd.

use std::path::PathBuf;
use trustctl::client::Trustd;

use clap::Args;
use trustctl::client;
use trustctl::error::CliError;
use trustctl::notary::publish::{self, InitOptions, SignAs, Target};
use trustctl::reference::ImageRef;
use trustctl::registry::ManifestRef;
use trustd_notary::trust;

use super::inspect::{trust_error, NotaryArgs};
use super::repository::open_or_init_announcing;

#[derive(Args)]
pub struct InitArgs {
    /// Repository (GUN), e.g. registry.example.com/team/app.
    gun: String,
    /// trustd backend for the keys generated here [default: trustd's first backend]
    #[arg(long)]
    backend: Option<String>,
    /// Keep the snapshot key in trustd instead of on the notary server.
    #[arg(long)]
    local_snapshot: bool,
    /// A root key already in trustd, by name (repeatable: a K-of-N root, each key with its own
    /// root certificate, possibly on different devices) [default: one generated, GUN/root]
    #[arg(long = "root-key", value_name = "NAME")]
    root_keys: Vec<String>,
    /// How many root keys must sign every later root [default: 1]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    root_threshold: Option<u32>,
    /// trustd backend for a generated root key, when not --backend
    #[arg(long, value_name = "BACKEND", conflicts_with = "root_keys")]
    root_backend: Option<String>,
    /// trustd backend for the targets key, when not --backend
    #[arg(long, value_name = "BACKEND")]
    targets_backend: Option<String>,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct SignArgs {
    /// IMAGE:TAG (resolved in the registry), or IMAGE:TAG@sha256:DIGEST (that manifest,
    /// checked in the registry). Several images are signed with one signature per changed
    /// role of each repository; an image that fails does not stop the others.
    #[arg(required_unless_present = "file", value_name = "IMAGE:TAG")]
    images: Vec<String>,
    #[command(flatten)]
    batch: super::batch::BatchArgs,
    /// Where the images that could not be signed are listed, rewritten on every run that
    /// signs a list or several images [default: sign-failed.txt]
    #[arg(long, value_name = "FILE")]
    failed: Option<PathBuf>,
    /// Manifest digest (sha256:HEX) of the tag; with --size, signs without asking the
    /// registry. One image, Notary format.
    #[arg(long, value_name = "sha256:HEX", requires = "size")]
    digest: Option<String>,
    /// Manifest size in bytes, with a digest given by --digest or IMAGE:TAG@sha256:...; signs
    /// without asking the registry.
    #[arg(long, value_name = "BYTES")]
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
        root_backend: args.root_backend.as_deref(),
        targets_backend: args.targets_backend.as_deref(),
        local_snapshot: args.local_snapshot,
        root_keys: &args.root_keys,
        root_threshold: args.root_threshold.unwrap_or(1),
    };
    let repo = publish::init(&server, &store, client, &image.gun, &options).await?;
    let root = &repo.root.roles["root"];
    println!(
        "Initialized {} on {}\n{:<16}{} ({} of {} must sign)\nRepository key: {}",
        image.gun,
        server.url(),
        if root.keyids.len() == 1 {
            "Root key:"
        } else {
            "Root keys:"
        },
        root.keyids.join(", "),
        root.threshold,
        root.keyids.len(),
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

/// `trustctl sign`: every way of naming images goes through the batch (one output style,
/// failures reported per image), except a tag signed with a given digest and size, which
/// needs no registry at all.
pub async fn sign(trustd: &Trustd, args: SignArgs) -> Result<(), CliError> {
    args.batch.check_cosign_flags(false)?;
    if !args.batch.format.notary() && (args.signer.is_some() || args.backend.is_some()) {
        return Err(CliError::Usage(
            "--signer and --backend choose Notary roles and keys; they do not apply to --format cosign (use --format both)".into(),
        ));
    }
    let Some(size) = args.size else {
        return super::batch::sign(
            trustd,
            &args.images,
            &args.batch,
            &args.notary,
            args.backend.as_deref().unwrap_or(""),
            args.signer.as_deref(),
            args.failed.as_deref(),
        )
        .await;
    };
    let batch_only = args.batch.file.is_some()
        || args.batch.format != super::batch::Format::Notary
        || args.batch.registry.is_some()
        || args.batch.project.is_some();
    if batch_only || args.images.len() != 1 {
        return Err(CliError::Usage(
            "--digest and --size sign one image in Notary format; for several, let the registry resolve each tag".into(),
        ));
    }
    let text = &args.images[0];
    let (reference, digest) = match (text.split_once('@'), args.digest.as_deref()) {
        (Some((_, inline)), Some(flag)) if inline != flag => {
            return Err(CliError::Usage(format!(
                "{text}: the image's @digest and --digest differ"
            )))
        }
        (Some((name, inline)), _) => (name, inline),
        (None, Some(flag)) => (text.as_str(), flag),
        (None, None) => {
            return Err(CliError::Usage(
                "--size goes with a digest (--digest or IMAGE:TAG@sha256:...)".into(),
            ))
        }
    };
    let image = ImageRef::parse(reference).map_err(CliError::Usage)?;
    let tag = image
        .tag
        .clone()
        .ok_or_else(|| CliError::Usage(format!("{reference}: name the tag to sign (IMAGE:TAG)")))?;
    if size <= 0 {
        return Err(CliError::Usage(format!(
            "--size {size}: give the manifest's size in bytes"
        )));
    }
    let manifest = ManifestRef {
        sha256: parse_digest(digest)?,
        size,
    };
    let started = std::time::Instant::now();
    let list = [text.clone()];
    let mut tally = super::batch::Tally::new(&list, super::batch::Verb::Sign, args.batch.json);
    let outcome = sign_digest(trustd, &args, &image, &tag, &manifest).await;
    tally.report(0, outcome.map(|part| vec![part]));
    tally.finish(super::batch::FailedFile::None, started)
}

/// Signs `image`'s `tag` as `manifest` in Notary format.
async fn sign_digest(
    trustd: &Trustd,
    args: &SignArgs,
    image: &ImageRef,
    tag: &str,
    manifest: &ManifestRef,
) -> Result<super::batch::Part, CliError> {
    let store = args.notary.trust_store();
    let client = client::connect(trustd).await?;
    let server = args.notary.server(image)?;
    let backend = args.backend.as_deref().unwrap_or("");
    let announce = || eprintln!("{} has no trust data yet: initializing it", image.gun);
    let (repo, new_repository) =
        open_or_init_announcing(&server, &store, &client, &image.gun, backend, announce).await?;
    let targets = [Target {
        tag,
        sha256: manifest.sha256,
        size: manifest.size,
    }];
    let sign_as = SignAs::from_option(args.signer.as_deref());
    let signed = publish::sign_targets(&server, &store, client, &repo, &targets, sign_as).await?;
    let done = signed.tags.into_iter().next().expect("one tag, one result");
    let detail = match signed.pending {
        Some(pending) => super::ceremony::pending_release(&signed.repo, pending)?,
        None => super::batch::Detail::Notary {
            roles: done.roles,
            new_repository,
        },
    };
    Ok(super::batch::Part {
        digest: manifest.digest(),
        detail,
        changed: !done.already_signed,
    })
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
