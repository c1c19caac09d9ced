//! `trustctl init` and `trustctl sign`: Docker Content Trust with every key in trustd.

use std::path::Path;

use clap::Args;
use trustctl::client;
use trustctl::error::CliError;
use trustctl::notary::publish::{self, InitOptions, Target};
use trustctl::notary::server::NotaryServer;
use trustctl::notary::trust::{self, TrustError};
use trustctl::reference::ImageRef;

use super::inspect::{trust_error, NotaryArgs};

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
    /// IMAGE:TAG, or IMAGE:TAG@sha256:DIGEST.
    image: String,
    /// Manifest digest (sha256:HEX) of the tag.
    #[arg(long, value_name = "sha256:HEX")]
    digest: Option<String>,
    /// Manifest size in bytes.
    #[arg(long)]
    size: i64,
    /// trustd backend for keys created if the repository is new.
    #[arg(long)]
    backend: Option<String>,
    #[command(flatten)]
    notary: NotaryArgs,
}

fn server_for(notary: &NotaryArgs, image: &ImageRef) -> Result<NotaryServer, CliError> {
    NotaryServer::new(&notary.server_for(image), notary.tls_ca.as_deref())
        .map_err(|e| CliError::Usage(e.to_string()))
}

pub async fn init(socket: &Path, args: InitArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.gun).map_err(CliError::Usage)?;
    let server = server_for(&args.notary, &image)?;
    let store = args.notary.trust_store();
    let client = client::connect(socket).await?;
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

pub async fn sign(socket: &Path, args: SignArgs) -> Result<(), CliError> {
    let (reference, inline_digest) = match args.image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (args.image.as_str(), None),
    };
    let digest = match (inline_digest, args.digest.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(CliError::Usage(
                "the image's @digest and --digest differ".into(),
            ))
        }
        (Some(d), _) | (None, Some(d)) => parse_digest(d)?,
        (None, None) => {
            return Err(CliError::Usage(
                "give the manifest digest: IMAGE:TAG@sha256:... or --digest sha256:...".into(),
            ))
        }
    };
    if args.size <= 0 {
        return Err(CliError::Usage(
            "--size must be the manifest's size in bytes".into(),
        ));
    }
    let image = ImageRef::parse(reference).map_err(CliError::Usage)?;
    let tag = image
        .tag
        .clone()
        .ok_or_else(|| CliError::Usage(format!("{reference}: name the tag to sign (IMAGE:TAG)")))?;
    let server = server_for(&args.notary, &image)?;
    let store = args.notary.trust_store();
    let client = client::connect(socket).await?;
    let repo =
        match trust::update(&server, &store, &image.gun, time::OffsetDateTime::now_utc()).await {
            Ok(repo) => repo,
            Err(TrustError::NoTrustData(_)) => {
                eprintln!("{} has no trust data yet: initializing it", image.gun);
                let options = InitOptions {
                    backend: args.backend.as_deref().unwrap_or(""),
                    local_snapshot: false,
                };
                publish::init(&server, &store, client.clone(), &image.gun, &options).await?
            }
            Err(e) => return Err(trust_error(&args.image, e)),
        };
    let target = Target {
        tag: &tag,
        sha256: digest,
        size: args.size,
    };
    let updated = publish::sign_targets(&server, &store, client, &repo, &[target]).await?;
    println!(
        "Signed {}:{} (sha256:{}) in targets version {}",
        image.gun,
        tag,
        hex::encode(digest),
        updated.targets.version
    );
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

pub async fn revoke(socket: &Path, args: RevokeArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.image).map_err(CliError::Usage)?;
    let server = server_for(&args.notary, &image)?;
    let store = args.notary.trust_store();
    let repo = trust::update(&server, &store, &image.gun, time::OffsetDateTime::now_utc())
        .await
        .map_err(|e| trust_error(&args.image, e))?;
    let what = match &image.tag {
        Some(tag) => format!("the signature of {}:{tag}", image.gun),
        None => format!("every signature of {}", image.gun),
    };
    if !args.yes {
        super::confirm(&format!("revoking {what}"), &format!("Revoke {what}?"))?;
    }
    let client = client::connect(socket).await?;
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
    #[command(flatten)]
    notary: NotaryArgs,
}

pub async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let image = ImageRef::parse(&args.gun).map_err(CliError::Usage)?;
    let store = args.notary.trust_store();
    if args.remote {
        let server = server_for(&args.notary, &image)?;
        server
            .delete(&image.gun)
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?;
        println!(
            "Deleted the trust data of {} on {}",
            image.gun,
            server.url()
        );
    }
    store
        .delete(&image.gun)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    println!("Deleted the local trust data of {}", image.gun);
    Ok(())
}
