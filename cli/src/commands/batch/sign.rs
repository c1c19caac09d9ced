//! `trustctl sign --file LIST | --format cosign IMAGE...`: every image is resolved once in
//! the registry by its own job, signed there in cosign format, and its tag joins its
//! repository's single Notary publish, which starts as soon as the repository's last tag
//! is resolved.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use trustctl::client::{self, Client};
use trustctl::cosign::{self, SignOutcome, UploadedConfigs};
use trustctl::error::CliError;
use trustctl::notary::publish::{self, SignAs, Target};
use trustctl::notary::server::NotaryServer;
use trustctl::notary::trust::TrustStore;
use trustctl::registry::{Fetched, RegistryClient, RegistryOptions};
use trustctl::tuf::signer::TrustdSigner;

use super::progress::Progress;
use super::scheduler::Scheduler;
use super::{
    combine, fetch, parse_entry, public_key, read_list, selected_platforms, write_failed,
    BatchArgs, Entry,
};
use crate::commands::inspect::NotaryArgs;
use crate::commands::trust::open_or_init;

/// What every job of one batch shares.
struct Shared {
    registry: RegistryClient,
    client: Client,
    batch: BatchArgs,
    /// The cosign key, when cosign signatures are asked for.
    cosign: Option<CosignKey>,
}

struct CosignKey {
    name: String,
    spki: Vec<u8>,
    configs: UploadedConfigs,
}

/// A finished job.
enum Done {
    /// One image resolved (and signed in cosign format, when asked).
    Image {
        index: usize,
        /// The manifest the tag names: what the repository's Notary publish signs.
        fetched: Result<Fetched, String>,
        cosign: Option<Result<String, String>>,
    },
    /// One repository's Notary publish, for the images (by index) whose tags it signed.
    Published {
        members: Vec<usize>,
        outcome: Result<String, String>,
    },
}

/// A repository's tags on their way to its one Notary publish.
#[derive(Default)]
struct PendingRepository {
    unresolved: usize,
    resolved: Vec<(usize, String, Fetched)>,
}

/// Signs one image's manifest (an index's too) and each selected platform's, cosign-style.
async fn cosign_sign(
    shared: &Shared,
    key: &CosignKey,
    entry: &Entry,
    fetched: &Fetched,
) -> Result<String, String> {
    let mut digests = vec![fetched.manifest.digest()];
    digests.extend(selected_platforms(fetched, &shared.batch)?);
    let mut signer = TrustdSigner::new(shared.client.clone());
    let mut added = 0;
    for digest in &digests {
        let outcome = cosign::sign_digest(
            &shared.registry,
            &key.configs,
            &mut signer,
            &key.name,
            &key.spki,
            &entry.image,
            digest,
        )
        .await
        .map_err(|e| e.to_string())?;
        if outcome == SignOutcome::Added {
            added += 1;
        }
    }
    Ok(if added == 0 {
        "already signed (cosign)".to_owned()
    } else {
        format!(
            "signed (cosign, {} manifest{})",
            digests.len(),
            if digests.len() == 1 { "" } else { "s" }
        )
    })
}

async fn image_job(shared: Arc<Shared>, index: usize, entry: Entry) -> Done {
    let fetched = fetch(&shared.registry, &entry).await;
    let cosign = match (&shared.cosign, &fetched) {
        (None, _) => None,
        (Some(_), Err(reason)) => Some(Err(reason.clone())),
        (Some(key), Ok(fetched)) => Some(cosign_sign(&shared, key, &entry, fetched).await),
    };
    Done::Image {
        index,
        fetched,
        cosign,
    }
}

/// How a repository's tags are signed in Notary format.
struct NotaryPublish {
    server: NotaryServer,
    store: TrustStore,
    gun: String,
    backend: String,
    signer: Option<String>,
}

/// One publish for all of a repository's resolved tags: one signature per changed role.
async fn publish_job(
    shared: Arc<Shared>,
    publish: NotaryPublish,
    tags: Vec<(usize, String, Fetched)>,
) -> Done {
    let members = tags.iter().map(|(index, _, _)| *index).collect();
    let outcome = async {
        let repo = open_or_init(
            &publish.server,
            &publish.store,
            &shared.client,
            &publish.gun,
            &publish.backend,
        )
        .await
        .map_err(|e| e.to_string())?;
        let targets: Vec<Target> = tags
            .iter()
            .map(|(_, tag, fetched)| Target {
                tag,
                sha256: fetched.manifest.sha256,
                size: fetched.manifest.size,
            })
            .collect();
        let sign_as = publish
            .signer
            .as_deref()
            .map_or(SignAs::Auto, SignAs::Signer);
        publish::sign_targets(
            &publish.server,
            &publish.store,
            shared.client.clone(),
            &repo,
            &targets,
            sign_as,
        )
        .await
        .map(|(_, roles)| format!("signed (notary: {})", roles.join(", ")))
        .map_err(|e| e.to_string())
    }
    .await;
    Done::Published { members, outcome }
}

/// Collects each image's results (one per format) and reports an image once all are in.
struct Outcomes<'a> {
    list: &'a [String],
    parts_per_image: usize,
    parts: HashMap<usize, Vec<Result<String, String>>>,
    failed: Vec<(usize, String)>,
    progress: Progress,
}

impl Outcomes<'_> {
    fn add(&mut self, index: usize, result: Result<String, String>) {
        let parts = self.parts.entry(index).or_default();
        parts.push(result);
        if parts.len() < self.parts_per_image {
            return;
        }
        let parts = self.parts.remove(&index).unwrap_or_default();
        self.finish(index, combine(parts));
    }

    /// The image is done, whatever formats remain: a list line that is not an image.
    fn finish(&mut self, index: usize, result: Result<String, String>) {
        if result.is_err() {
            self.failed.push((index, self.list[index].clone()));
        }
        self.progress.report(&self.list[index], &result);
    }
}

/// `trustctl sign --file LIST | --format cosign IMAGE...`.
pub async fn sign(
    socket: &Path,
    images: &[String],
    batch: &BatchArgs,
    notary: &NotaryArgs,
    backend: &str,
    signer: Option<&str>,
    failed_file: &Path,
) -> Result<(), CliError> {
    let started = Instant::now();
    let list = read_list(images, batch)?;
    let client = client::connect(socket).await?;
    let registry = RegistryClient::new(RegistryOptions {
        ca: notary.tls_ca(),
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let cosign = match batch.format.cosign() {
        false => None,
        true => {
            let name = batch.key.clone().ok_or_else(|| {
                CliError::Usage(
                    "cosign signatures need --key NAME (an ECDSA P-256 key in trustd)".into(),
                )
            })?;
            let spki = public_key(&mut client.clone(), &name).await?;
            Some(CosignKey {
                name,
                spki,
                configs: UploadedConfigs::default(),
            })
        }
    };
    let shared = Arc::new(Shared {
        registry,
        client,
        batch: batch.clone(),
        cosign,
    });
    let mut outcomes = Outcomes {
        list: &list,
        parts_per_image: usize::from(batch.format.cosign()) + usize::from(batch.format.notary()),
        parts: HashMap::new(),
        failed: Vec::new(),
        progress: Progress::new(list.len()),
    };

    let mut scheduler = Scheduler::new(batch.jobs as usize, batch.timeout);
    let mut entries: HashMap<usize, Entry> = HashMap::new();
    let mut repositories: HashMap<String, PendingRepository> = HashMap::new();
    for (index, text) in list.iter().enumerate() {
        let entry = match parse_entry(text, batch) {
            Ok(entry) => entry,
            Err(reason) => {
                outcomes.finish(index, Err(reason));
                continue;
            }
        };
        if batch.format.notary() {
            if entry.tag.is_none() {
                outcomes.add(
                    index,
                    Err("Docker Content Trust signs tags: name the tag".into()),
                );
                if !batch.format.cosign() {
                    continue;
                }
            } else {
                repositories
                    .entry(entry.image.gun.clone())
                    .or_default()
                    .unresolved += 1;
            }
        }
        let wants_cosign = batch.format.cosign();
        scheduler.push(
            image_job(shared.clone(), index, entry.clone()),
            move |reason| Done::Image {
                index,
                fetched: Err(reason.clone()),
                cosign: wants_cosign.then_some(Err(reason)),
            },
        );
        entries.insert(index, entry);
    }

    while let Some(done) = scheduler.next().await {
        match done? {
            Done::Image {
                index,
                fetched,
                cosign,
            } => {
                if let Some(result) = cosign {
                    outcomes.add(index, result);
                }
                let entry = &entries[&index];
                let (Some(tag), true) = (&entry.tag, batch.format.notary()) else {
                    continue;
                };
                let gun = &entry.image.gun;
                let repository = repositories.get_mut(gun).expect("counted above");
                repository.unresolved -= 1;
                match fetched {
                    Ok(fetched) => repository.resolved.push((index, tag.clone(), fetched)),
                    Err(reason) => outcomes.add(index, Err(reason)),
                }
                if repository.unresolved > 0 || repository.resolved.is_empty() {
                    continue;
                }
                let tags = std::mem::take(&mut repository.resolved);
                let members: Vec<usize> = tags.iter().map(|(index, _, _)| *index).collect();
                let server = match notary.server(&entry.image) {
                    Ok(server) => server,
                    Err(e) => {
                        for member in members {
                            outcomes.add(member, Err(e.to_string()));
                        }
                        continue;
                    }
                };
                let publish = NotaryPublish {
                    server,
                    store: notary.trust_store(),
                    gun: gun.clone(),
                    backend: backend.to_owned(),
                    signer: signer.map(str::to_owned),
                };
                scheduler.push_follow_up(
                    publish_job(shared.clone(), publish, tags),
                    move |reason| Done::Published {
                        members,
                        outcome: Err(reason),
                    },
                );
            }
            Done::Published { members, outcome } => {
                for member in members {
                    outcomes.add(member, outcome.clone());
                }
            }
        }
    }

    let failed = std::mem::take(&mut outcomes.failed);
    let failed_count = failed.len();
    write_failed(failed_file, failed)?;
    eprintln!(
        "Signed {}, failed {failed_count} of {} images in {:.1}s{}",
        list.len() - failed_count,
        list.len(),
        started.elapsed().as_secs_f64(),
        if failed_count == 0 {
            String::new()
        } else {
            format!(" (failed images listed in {})", failed_file.display())
        }
    );
    if failed_count == 0 {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{failed_count} of {} images were not signed",
            list.len()
        )))
    }
}
