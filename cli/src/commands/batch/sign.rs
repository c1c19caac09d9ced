//! `trustctl sign --file LIST | --format cosign IMAGE...`: every image is resolved once in
//! the registry by its own job, signed there in cosign format, and its tag joins its
//! repository's single Notary publish, which starts as soon as the repository's last tag
//! is resolved.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use trustctl::client::Trustd;

use trustctl::client::signer::TrustdSigner;
use trustctl::client::{self, Client};
use trustctl::cosign::{self, SignOutcome, UploadedConfigs};
use trustctl::error::CliError;
use trustctl::notary::publish::{self, SignAs, Target};
use trustctl::registry::{Fetched, RegistryClient};
use trustd_notary::client::server::NotaryServer;
use trustd_notary::trust::TrustStore;

use super::outcome::{combine, Detail, Part, PartOutcome, Verb};
use super::progress::Tally;
use super::scheduler::Scheduler;
use super::{
    fetch, parse_entry, public_key, read_list, selected_platforms, warn_plain_http, BatchArgs,
    Entry,
};
use crate::commands::inspect::NotaryArgs;
use crate::commands::repository::open_or_init_announcing;

/// What every job of one batch shares.
struct Shared {
    registry: RegistryClient,
    client: Client,
    batch: BatchArgs,
    /// The cosign key, when cosign signatures are asked for.
    cosign: Option<CosignKey>,
    /// trustd backend for the keys of repositories initialized on the way.
    backend: String,
    /// Sign Notary targets as this signer only.
    signer: Option<String>,
}

struct CosignKey {
    name: String,
    spki: Vec<u8>,
    configs: UploadedConfigs,
}

impl CosignKey {
    /// The trustd key `--key` names; its public key is read once, before any job starts.
    async fn from_trustd(client: &Client, name: Option<&str>) -> Result<CosignKey, CliError> {
        let name = name.ok_or_else(|| {
            CliError::Usage(
                "cosign signatures need --key NAME (an ECDSA P-256 key in trustd)".into(),
            )
        })?;
        Ok(CosignKey {
            spki: public_key(&mut client.clone(), name).await?,
            name: name.to_owned(),
            configs: UploadedConfigs::default(),
        })
    }
}

/// A finished job.
enum Done {
    /// One image resolved (and signed in cosign format, when asked).
    Image {
        index: usize,
        /// The manifest the tag names: what the repository's Notary publish signs.
        fetched: Result<Fetched, CliError>,
        cosign: Option<PartOutcome>,
    },
    /// One repository's Notary publish: each image (by index) whose tag it signed, with
    /// what was done for it.
    Published(Vec<(usize, PartOutcome)>),
}

/// A tag resolved in the registry, for its repository's Notary publish.
struct ResolvedTag {
    index: usize,
    tag: String,
    fetched: Fetched,
}

/// Each repository's tags on their way to its one Notary publish: it is published once the
/// last of its tags is resolved, with those that were.
#[derive(Default)]
struct Repositories(HashMap<String, PendingRepository>);

#[derive(Default)]
struct PendingRepository {
    unresolved: usize,
    resolved: Vec<ResolvedTag>,
}

impl Repositories {
    /// One more tag of `gun` to wait for.
    fn expect(&mut self, gun: &str) {
        self.0.entry(gun.to_owned()).or_default().unresolved += 1;
    }

    /// One of `gun`'s tags is done (resolved, or None when it failed); when it was the last,
    /// the tags to publish, if any.
    fn done(&mut self, gun: &str, tag: Option<ResolvedTag>) -> Option<Vec<ResolvedTag>> {
        let repository = self
            .0
            .get_mut(gun)
            .expect("tags are expected before they are done");
        repository.unresolved -= 1;
        repository.resolved.extend(tag);
        if repository.unresolved > 0 || repository.resolved.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut repository.resolved))
    }
}

/// Signs one image's manifest (an index's too) and each selected platform's, cosign-style.
async fn cosign_sign(
    shared: &Shared,
    key: &CosignKey,
    entry: &Entry,
    fetched: &Fetched,
) -> PartOutcome {
    let mut digests = vec![fetched.manifest.digest()];
    digests.extend(selected_platforms(fetched, &shared.batch).map_err(CliError::Failed)?);
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
        .await?;
        if outcome == SignOutcome::Added {
            added += 1;
        }
    }
    Ok(Part {
        digest: fetched.manifest.digest(),
        detail: Detail::Cosign {
            manifests: digests.len(),
        },
        changed: added > 0,
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

/// Where a repository's tags are published in Notary format.
struct NotaryPublish {
    server: NotaryServer,
    store: TrustStore,
    gun: String,
}

/// One publish for all of a repository's resolved tags: one signature per changed role.
async fn publish_job(shared: Arc<Shared>, publish: NotaryPublish, tags: Vec<ResolvedTag>) -> Done {
    let published = async {
        // A new repository is said in the image's outcome, not over the progress bar.
        let (repo, initialized) = open_or_init_announcing(
            &publish.server,
            &publish.store,
            &shared.client,
            &publish.gun,
            &shared.backend,
            || {},
        )
        .await?;
        let targets: Vec<Target> = tags
            .iter()
            .map(|t| Target {
                tag: &t.tag,
                sha256: t.fetched.manifest.sha256,
                size: t.fetched.manifest.size,
            })
            .collect();
        let sign_as = SignAs::from_option(shared.signer.as_deref());
        let signed = publish::sign_targets(
            &publish.server,
            &publish.store,
            shared.client.clone(),
            &repo,
            &targets,
            sign_as,
        )
        .await?;
        Ok::<_, CliError>((signed, initialized))
    }
    .await;
    let outcomes = match published {
        Ok((signed, new_repository)) => {
            let ceremony = match signed.pending {
                Some(pending) => {
                    match crate::commands::ceremony::pending_release(&signed.repo, pending) {
                        Ok(detail) => Some(detail),
                        Err(error) => {
                            let failed = tags.iter().map(|t| (t.index, Err(error.clone())));
                            return Done::Published(failed.collect());
                        }
                    }
                }
                None => None,
            };
            tags.iter()
                .zip(signed.tags)
                .map(|(tag, done)| {
                    let detail = match &ceremony {
                        Some(pending) if !done.roles.is_empty() => pending.clone(),
                        // Its roles were left out with everything else of the publish.
                        Some(_) => {
                            let error = CliError::Failed(
                                "not signed: this run started a release ceremony for the \
                                 repository and published nothing; sign this tag again once it is \
                                 published"
                                    .into(),
                            );
                            return (tag.index, Err(error));
                        }
                        None => Detail::Notary {
                            roles: done.roles,
                            new_repository,
                        },
                    };
                    let part = Part {
                        digest: tag.fetched.manifest.digest(),
                        detail,
                        changed: !done.already_signed,
                    };
                    (tag.index, Ok(part))
                })
                .collect()
        }
        Err(error) => tags.iter().map(|t| (t.index, Err(error.clone()))).collect(),
    };
    Done::Published(outcomes)
}

/// Collects each image's results (one per format) and reports an image once all are in.
struct Outcomes<'a> {
    tally: Tally<'a>,
    parts_per_image: usize,
    parts: HashMap<usize, Vec<PartOutcome>>,
}

impl Outcomes<'_> {
    fn add(&mut self, index: usize, result: PartOutcome) {
        let parts = self.parts.entry(index).or_default();
        parts.push(result);
        if parts.len() < self.parts_per_image {
            return;
        }
        let parts = self.parts.remove(&index).unwrap_or_default();
        self.tally.report(index, combine(parts));
    }
}

/// `trustctl sign --file LIST | --format cosign IMAGE...`.
pub async fn sign(
    trustd: &Trustd,
    images: &[String],
    batch: &BatchArgs,
    notary: &NotaryArgs,
    backend: &str,
    signer: Option<&str>,
    failed_file: Option<&Path>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let list = read_list(images, batch)?;
    let client = client::connect(trustd).await?;
    let registry = batch.registry_client(notary)?;
    warn_plain_http(&registry, &list, batch);
    let cosign = match batch.format.cosign() {
        true => Some(CosignKey::from_trustd(&client, batch.key.as_deref()).await?),
        false => None,
    };
    let shared = Arc::new(Shared {
        registry,
        client,
        batch: batch.clone(),
        cosign,
        backend: backend.to_owned(),
        signer: signer.map(str::to_owned),
    });
    let mut outcomes = Outcomes {
        tally: Tally::new(&list, Verb::Sign, batch.json),
        parts_per_image: usize::from(batch.format.cosign()) + usize::from(batch.format.notary()),
        parts: HashMap::new(),
    };

    let mut scheduler = Scheduler::new(batch.jobs as usize, batch.timeout);
    let mut entries: HashMap<usize, Entry> = HashMap::new();
    let mut repositories = Repositories::default();
    for (index, text) in list.iter().enumerate() {
        let entry = match parse_entry(text, batch) {
            Ok(entry) => entry,
            Err(reason) => {
                outcomes.tally.report(index, Err(CliError::Usage(reason)));
                continue;
            }
        };
        if batch.format.notary() {
            if entry.tag.is_none() {
                outcomes.add(
                    index,
                    Err(CliError::Usage(
                        "Docker Content Trust signs tags: name the tag".into(),
                    )),
                );
                if !batch.format.cosign() {
                    continue;
                }
            } else {
                repositories.expect(&entry.image.gun);
            }
        }
        let wants_cosign = batch.format.cosign();
        scheduler.push(
            image_job(shared.clone(), index, entry.clone()),
            move |reason| Done::Image {
                index,
                fetched: Err(CliError::Failed(reason.clone())),
                cosign: wants_cosign.then_some(Err(CliError::Failed(reason))),
            },
        );
        entries.insert(index, entry);
    }

    while let Some(done) = scheduler.next().await {
        let (index, fetched, cosign) = match done? {
            Done::Published(published) => {
                for (member, outcome) in published {
                    outcomes.add(member, outcome);
                }
                continue;
            }
            Done::Image {
                index,
                fetched,
                cosign,
            } => (index, fetched, cosign),
        };
        if let Some(result) = cosign {
            outcomes.add(index, result);
        }
        let entry = &entries[&index];
        let (Some(tag), true) = (&entry.tag, batch.format.notary()) else {
            continue;
        };
        let resolved = match fetched {
            Ok(fetched) => Some(ResolvedTag {
                index,
                tag: tag.clone(),
                fetched,
            }),
            Err(reason) => {
                outcomes.add(index, Err(reason));
                None
            }
        };
        let Some(tags) = repositories.done(&entry.image.gun, resolved) else {
            continue;
        };
        let members: Vec<usize> = tags.iter().map(|t| t.index).collect();
        let publish = notary.server(&entry.image).map(|server| NotaryPublish {
            server,
            store: notary.trust_store(),
            gun: entry.image.gun.clone(),
        });
        match publish {
            Ok(publish) => scheduler.push_follow_up(
                publish_job(shared.clone(), publish, tags),
                move |reason| {
                    let failed = members.into_iter().map(|member| {
                        let error = CliError::Failed(reason.clone());
                        (member, Err(error))
                    });
                    Done::Published(failed.collect())
                },
            ),
            Err(e) => {
                for member in members {
                    outcomes.add(member, Err(e.clone()));
                }
            }
        }
    }

    let failed_file = batch.failed_file(list.len(), failed_file, Path::new("sign-failed.txt"));
    outcomes.tally.finish(failed_file, started)
}
