//! `trustctl validate` (and `trustctl sign validate`): checks every image's signatures in
//! each format, per platform for indexes, and says why an image is not valid.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use trustctl::client::Trustd;

use clap::Args;
use trustctl::cosign;
use trustctl::error::CliError;
use trustctl::once::OncePerKey;
use trustctl::registry::RegistryClient;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::trust::{self, TrustStore, VerifiedRepository};

use super::outcome::{Detail, Outcome, Part, Verb};
use super::progress::Tally;
use super::scheduler::Scheduler;
use super::{fetch, parse_entry, read_list, selected_platforms, warn_plain_http, BatchArgs, Entry};
use crate::commands::inspect::{trust_error, NotaryArgs};

#[derive(Args)]
pub struct ValidateArgs {
    /// Images (tag or digest).
    #[arg(value_name = "IMAGE", required_unless_present = "file")]
    images: Vec<String>,
    #[command(flatten)]
    batch: BatchArgs,
    /// A PEM public key to check cosign signatures against, instead of a key in trustd
    /// (--key); what cosign verify calls --key.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    public_key: Option<PathBuf>,
    /// Where the images that are not valid are listed, rewritten on every run that checks a
    /// list or several images [default: validate-failed.txt]
    #[arg(long, value_name = "FILE")]
    failed: Option<PathBuf>,
    #[command(flatten)]
    notary: NotaryArgs,
}

/// Where the Notary half of the checks reads trust data from. A repository's trust data is
/// fetched and verified once per run, however many of its tags the list names.
struct NotarySource {
    store: TrustStore,
    verified: OncePerKey<String, Arc<VerifiedRepository>>,
}

/// Checks one image in each requested format.
async fn validate_one(
    registry: RegistryClient,
    spki: Option<Vec<u8>>,
    entry: Entry,
    batch: Arc<BatchArgs>,
    notary: Option<(NotaryServer, Arc<NotarySource>)>,
) -> Outcome {
    let fetched = fetch(&registry, &entry).await?;
    let digest = fetched.manifest.digest();
    let mut checked = Vec::new();
    if let Some(spki) = &spki {
        let mut digests = vec![digest.clone()];
        digests.extend(selected_platforms(&fetched, &batch).map_err(CliError::Failed)?);
        for digest in &digests {
            cosign::verify_digest(&registry, spki, &entry.image, digest)
                .await
                .map_err(|reason| CliError::Failed(format!("cosign: {digest}: {reason}")))?;
        }
        checked.push(Part {
            digest: digest.clone(),
            detail: Detail::Cosign {
                manifests: digests.len(),
            },
            changed: false,
        });
    }
    if let Some((server, source)) = notary {
        let tag = entry.tag.as_deref().ok_or_else(|| {
            CliError::Usage("notary: Docker Content Trust signs tags: name the tag".into())
        })?;
        let gun = &entry.image.gun;
        let repo = source
            .verified
            .run(gun, || async {
                trust::update(&server, &source.store, gun, time::OffsetDateTime::now_utc())
                    .await
                    .map(Arc::new)
                    .map_err(|e| trust_error(gun, &server, e))
            })
            .await
            .map_err(|e| e.prefixed("notary: "))?;
        let report = trustd_notary::inspect::report(&entry.text, Some(tag), &repo);
        let signed = report
            .signed_tags
            .iter()
            .find(|t| t.signed_tag == tag)
            .ok_or_else(|| CliError::Failed(format!("notary: {tag} is not signed")))?;
        if signed.digest != hex::encode(fetched.manifest.sha256) {
            return Err(CliError::Failed(format!(
                "notary: the signed digest sha256:{} is not the registry's {digest}",
                signed.digest,
            )));
        }
        checked.push(Part {
            digest: digest.clone(),
            detail: Detail::Notary {
                roles: signed.signers.clone(),
                new_repository: false,
            },
            changed: false,
        });
    }
    Ok(checked)
}

/// The public key cosign signatures must verify with: `--public-key PEM` or trustd's key.
async fn cosign_key(trustd: &Trustd, args: &ValidateArgs) -> Result<Vec<u8>, CliError> {
    let key = args.batch.key.as_deref();
    super::super::verifying_key::resolve(trustd, key, args.public_key.as_deref())
        .await?
        .ok_or_else(|| {
            CliError::Usage("cosign validation needs --key NAME or --public-key PEM".into())
        })
}

/// `trustctl validate` (and `trustctl sign validate`).
pub async fn validate(trustd: &Trustd, args: ValidateArgs) -> Result<(), CliError> {
    let started = Instant::now();
    args.batch.check_cosign_flags(args.public_key.is_some())?;
    let batch = Arc::new(args.batch.clone());
    let list = read_list(&args.images, &batch)?;
    let registry = batch.registry_client(&args.notary)?;
    let spki = match batch.format.cosign() {
        true => Some(cosign_key(trustd, &args).await?),
        false => None,
    };
    let source = Arc::new(NotarySource {
        store: args.notary.trust_store(),
        verified: OncePerKey::default(),
    });
    warn_plain_http(&registry, &list, &batch);
    let mut tally = Tally::new(&list, Verb::Validate, batch.json);
    let mut scheduler = Scheduler::new(batch.jobs as usize, batch.timeout);
    for (index, text) in list.iter().enumerate() {
        let entry = match parse_entry(text, &batch) {
            Ok(entry) => entry,
            Err(reason) => {
                tally.report(index, Err(CliError::Usage(reason)));
                continue;
            }
        };
        let notary = match batch.format.notary() {
            true => Some((args.notary.server(&entry.image)?, source.clone())),
            false => None,
        };
        let job = validate_one(registry.clone(), spki.clone(), entry, batch.clone(), notary);
        scheduler.push(async move { (index, job.await) }, move |reason| {
            (index, Err(CliError::Failed(reason)))
        });
    }
    while let Some(done) = scheduler.next().await {
        let (index, result) = done?;
        tally.report(index, result);
    }
    let default = Path::new("validate-failed.txt");
    let failed_file = batch.failed_file(list.len(), args.failed.as_deref(), default);
    tally.finish(failed_file, started)
}
