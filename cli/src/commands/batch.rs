//! Signing and validating many images at once (`hangar sign` / `hangar sign validate`
//! parity): image lists, parallel jobs, multi-platform indexes, Notary and cosign formats,
//! a failed-images file, and a summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use trustctl::client::{self, Client};
use trustctl::cosign::{self, SignOutcome, UploadedConfigs};
use trustctl::error::CliError;
use trustctl::notary::publish::{self, SignAs, Target};
use trustctl::notary::trust;
use trustctl::reference::ImageRef;
use trustctl::registry::{reference, Fetched, RegistryClient, RegistryOptions};
use trustctl::tuf::signer::TrustdSigner;

use super::inspect::NotaryArgs;
use super::trust::open_or_init;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Notary,
    Cosign,
    Both,
}

impl Format {
    fn notary(self) -> bool {
        matches!(self, Format::Notary | Format::Both)
    }
    fn cosign(self) -> bool {
        matches!(self, Format::Cosign | Format::Both)
    }
}

/// Options shared by batch signing and validation.
#[derive(Args, Clone)]
pub struct BatchArgs {
    /// Image list: one reference per line (tag or digest); blank lines and # comments allowed.
    #[arg(long, value_name = "LIST")]
    pub file: Option<PathBuf>,
    /// Parallel jobs (1-20).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub jobs: u16,
    /// Platforms of a multi-platform index to sign or check (cosign), by architecture.
    #[arg(long, value_delimiter = ',', default_value = "amd64,arm64")]
    pub arch: Vec<String>,
    /// Platforms of a multi-platform index to sign or check (cosign), by operating system.
    #[arg(long, value_delimiter = ',', default_value = "linux")]
    pub os: Vec<String>,
    /// Replace the registry of every image.
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
    /// Replace the project (the path before the image name) of every image.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Signature format.
    #[arg(long, value_enum, default_value = "notary")]
    pub format: Format,
    /// Time allowed for each image (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// trustd key for cosign signatures (ECDSA P-256).
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: give a duration like 30s or 5m"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: give a duration like 30s or 5m")),
    };
    if seconds == 0 {
        return Err("the timeout must be positive".into());
    }
    Ok(Duration::from_secs(seconds))
}

/// One image of a batch, as listed and as understood.
#[derive(Clone)]
struct Entry {
    text: String,
    image: ImageRef,
    tag: Option<String>,
    digest: Option<String>,
}

/// Applies --registry and --project, then parses `IMAGE[:TAG][@sha256:D]`.
fn parse_entry(text: &str, batch: &BatchArgs) -> Result<Entry, String> {
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => {
            if !digest.starts_with("sha256:") || digest.len() != 71 {
                return Err(format!("{digest:?} is not a sha256 digest"));
            }
            (name, Some(digest.to_owned()))
        }
        None => (text, None),
    };
    let mut image = ImageRef::parse(name)?;
    if batch.registry.is_some() || batch.project.is_some() {
        let registry = batch
            .registry
            .clone()
            .unwrap_or_else(|| image.registry().to_owned());
        let path = &image.gun[image.registry().len() + 1..];
        let (project, repo) = path.rsplit_once('/').unwrap_or(("", path));
        let project = batch.project.clone().unwrap_or_else(|| project.to_owned());
        image.gun = [registry.as_str(), project.as_str(), repo]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/");
    }
    let tag = image.tag.take();
    if tag.is_none() && digest.is_none() {
        return Err("name a tag or a digest".into());
    }
    Ok(Entry {
        text: text.to_owned(),
        image,
        tag,
        digest,
    })
}

/// The image list: from --file and from the command line.
fn read_list(images: &[String], batch: &BatchArgs) -> Result<Vec<String>, CliError> {
    let mut list: Vec<String> = images.to_vec();
    if let Some(file) = &batch.file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::Usage(format!(
                "cannot read the image list {}: {e}",
                file.display()
            ))
        })?;
        list.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if list.is_empty() {
        return Err(CliError::Usage("no images to work on".into()));
    }
    Ok(list)
}

/// Progress: a bar on a terminal (with failures printed above it as they happen), plain
/// lines otherwise, so logs of CI jobs stay readable.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    failed: u64,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "[{bar:30}] {pos}/{len} {percent}%  {msg}  {elapsed}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message("0 failed");
            bar
        });
        Progress { bar, failed: 0 }
    }

    fn report(&mut self, text: &str, result: &Result<String, String>) {
        match (result, &self.bar) {
            (Ok(what), None) => println!("{what} {text}"),
            (Ok(_), Some(_)) => {}
            (Err(reason), bar) => {
                self.failed += 1;
                let line = format!("failed {text}: {reason}");
                match bar {
                    Some(bar) => bar.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} failed", self.failed));
            bar.inc(1);
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
    }
}

/// Jobs run at most `jobs` at a time, each within its timeout, each reporting for the
/// image (by index) it works on.
struct Jobs<T> {
    set: JoinSet<(usize, T)>,
    permits: Arc<Semaphore>,
}

impl<T: Send + 'static> Jobs<T> {
    fn new(permits: Arc<Semaphore>) -> Jobs<T> {
        Jobs {
            set: JoinSet::new(),
            permits,
        }
    }

    /// Runs `job` for image `i`; past `timeout`, `on_timeout` stands for its result.
    fn spawn(
        &mut self,
        i: usize,
        timeout: Duration,
        job: impl std::future::Future<Output = T> + Send + 'static,
        on_timeout: impl FnOnce(String) -> T + Send + 'static,
    ) {
        let permits = self.permits.clone();
        self.set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let result = tokio::time::timeout(timeout, job)
                .await
                .unwrap_or_else(|_| on_timeout(format!("timed out after {}s", timeout.as_secs())));
            (i, result)
        });
    }

    /// The next finished job's image index and result.
    async fn next(&mut self) -> Option<Result<(usize, T), CliError>> {
        let done = self.set.join_next().await?;
        Some(done.map_err(|e| CliError::Failed(format!("a job failed: {e}"))))
    }
}

/// The platform manifests of an index that `batch` selects.
fn selected_platforms(fetched: &Fetched, batch: &BatchArgs) -> Result<Vec<String>, String> {
    if fetched.platforms.is_empty() {
        return Ok(Vec::new());
    }
    let chosen: Vec<String> = fetched
        .platforms
        .iter()
        .filter(|p| batch.arch.contains(&p.architecture) && batch.os.contains(&p.os))
        .map(|p| p.digest.clone())
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "the index has no manifest for {} / {}",
            batch.os.join(","),
            batch.arch.join(",")
        ));
    }
    Ok(chosen)
}

async fn fetch(registry: &RegistryClient, entry: &Entry) -> Result<Fetched, String> {
    let reference = match (&entry.digest, &entry.tag) {
        (Some(digest), _) => reference(&entry.image, "latest").clone_with_digest(digest.clone()),
        (None, Some(tag)) => reference(&entry.image, tag),
        (None, None) => unreachable!("entries name a tag or digest"),
    };
    let fetched = registry
        .manifest(&reference)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no such tag or digest in the registry".to_owned())?;
    if let Some(digest) = &entry.digest {
        if &fetched.manifest.digest() != digest {
            return Err(format!(
                "the registry served another manifest than {digest}"
            ));
        }
    }
    Ok(fetched)
}

/// Signs one image with cosign: its manifest (an index's too) and each selected platform's.
async fn cosign_one(
    registry: RegistryClient,
    configs: UploadedConfigs,
    client: Client,
    key: String,
    spki: Vec<u8>,
    entry: Entry,
    batch: BatchArgs,
) -> Result<String, String> {
    let fetched = fetch(&registry, &entry).await?;
    let mut digests = vec![fetched.manifest.digest()];
    digests.extend(selected_platforms(&fetched, &batch)?);
    let mut signer = TrustdSigner::new(client);
    let mut added = 0;
    for digest in &digests {
        let outcome = cosign::sign_digest(
            &registry,
            &configs,
            &mut signer,
            &key,
            &spki,
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

async fn public_key(client: &mut Client, key: &str) -> Result<Vec<u8>, CliError> {
    Ok(client::key_info(client, key).await?.public_key_der)
}

fn write_failed(path: &Path, failed: &[String]) -> Result<(), CliError> {
    if failed.is_empty() {
        return Ok(());
    }
    let mut text = failed.join("\n");
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
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
    let mut progress = Progress::new(list.len());
    let mut failed: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for text in &list {
        match parse_entry(text, batch) {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                progress.report(text, &Err(reason));
                failed.push(text.clone());
            }
        }
    }
    let client = client::connect(socket).await?;
    let registry = RegistryClient::new(RegistryOptions {
        ca: notary.tls_ca(),
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let key_and_spki = if batch.format.cosign() {
        let key = batch.key.clone().ok_or_else(|| {
            CliError::Usage(
                "cosign signatures need --key NAME (an ECDSA P-256 key in trustd)".into(),
            )
        })?;
        let spki = public_key(&mut client.clone(), &key).await?;
        Some((key, spki))
    } else {
        None
    };
    let semaphore = Arc::new(Semaphore::new(batch.jobs as usize));
    // Per image: Ok(what was done) or Err(why not), for each format.
    let mut results: BTreeMap<usize, Vec<Result<String, String>>> = BTreeMap::new();

    if let Some((key, spki)) = &key_and_spki {
        let configs = UploadedConfigs::default();
        let mut jobs = Jobs::new(semaphore.clone());
        for (i, entry) in entries.iter().enumerate() {
            let job = cosign_one(
                registry.clone(),
                configs.clone(),
                client.clone(),
                key.clone(),
                spki.clone(),
                entry.clone(),
                batch.clone(),
            );
            jobs.spawn(i, batch.timeout, job, Err);
        }
        while let Some(done) = jobs.next().await {
            let (i, result) = done?;
            results.entry(i).or_default().push(result);
        }
    }

    if batch.format.notary() {
        // One publish per repository: group its tags, repositories in parallel.
        let mut by_gun: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry.tag.is_none() {
                results
                    .entry(i)
                    .or_default()
                    .push(Err("Docker Content Trust signs tags: name the tag".into()));
                continue;
            }
            by_gun.entry(entry.image.gun.clone()).or_default().push(i);
        }
        let mut jobs = Jobs::new(semaphore.clone());
        for (gun, members) in by_gun {
            let members_entries: Vec<Entry> = members.iter().map(|&i| entries[i].clone()).collect();
            let registry = registry.clone();
            let client = client.clone();
            let server = notary.server(&members_entries[0].image)?;
            let store = notary.trust_store();
            let backend = backend.to_owned();
            let signer = signer.map(str::to_owned);
            let timeout = batch.timeout * members.len().max(1) as u32;
            let timed_out = members.clone();
            let work = async move {
                // Resolve every tag first; those that fail drop out, the rest are signed.
                let mut per_member: Vec<Result<Fetched, String>> = Vec::new();
                for entry in &members_entries {
                    per_member.push(fetch(&registry, entry).await);
                }
                let tags: Vec<(usize, String, Fetched)> = members
                    .iter()
                    .zip(&members_entries)
                    .zip(&per_member)
                    .filter_map(|((&i, e), f)| Some((i, e.tag.clone()?, f.as_ref().ok()?.clone())))
                    .collect();
                let mut outcome: Vec<(usize, Result<String, String>)> = members
                    .iter()
                    .zip(per_member)
                    .filter_map(|(&i, f)| f.err().map(|e| (i, Err(e))))
                    .collect();
                if tags.is_empty() {
                    return outcome;
                }
                let published = async {
                    let repo = open_or_init(&server, &store, &client, &gun, &backend)
                        .await
                        .map_err(|e| e.to_string())?;
                    let targets: Vec<Target> = tags
                        .iter()
                        .map(|(_, tag, f)| Target {
                            tag,
                            sha256: f.manifest.sha256,
                            size: f.manifest.size,
                        })
                        .collect();
                    let sign_as = signer.as_deref().map_or(SignAs::Auto, SignAs::Signer);
                    publish::sign_targets(&server, &store, client.clone(), &repo, &targets, sign_as)
                        .await
                        .map(|(_, roles)| roles.join(", "))
                        .map_err(|e| e.to_string())
                }
                .await;
                for (i, _, _) in &tags {
                    outcome.push((
                        *i,
                        published
                            .clone()
                            .map(|roles| format!("signed (notary: {roles})")),
                    ));
                }
                outcome
            };
            jobs.spawn(0, timeout, work, move |reason| {
                timed_out
                    .iter()
                    .map(|&i| (i, Err(reason.clone())))
                    .collect()
            });
        }
        while let Some(done) = jobs.next().await {
            let (_, outcomes) = done?;
            for (i, result) in outcomes {
                results.entry(i).or_default().push(result);
            }
        }
    }

    for (i, entry) in entries.iter().enumerate() {
        let outcomes = results.remove(&i).unwrap_or_default();
        let combined = match outcomes.iter().find_map(|r| r.clone().err()) {
            Some(reason) => Err(reason),
            None => Ok(outcomes
                .into_iter()
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
                .join("; ")),
        };
        if combined.is_err() {
            failed.push(entry.text.clone());
        }
        progress.report(&entry.text, &combined);
    }
    write_failed(failed_file, &failed)?;
    let signed = list.len() - failed.len();
    eprintln!(
        "Signed {signed}, failed {} of {} images in {:.1}s{}",
        failed.len(),
        list.len(),
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (failed images listed in {})", failed_file.display())
        }
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} images were not signed",
            failed.len(),
            list.len()
        )))
    }
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Images (tag or digest).
    #[arg(value_name = "IMAGE", required_unless_present = "file")]
    images: Vec<String>,
    #[command(flatten)]
    batch: BatchArgs,
    /// PEM public key to check cosign signatures against (instead of --key).
    #[arg(long, value_name = "PEM", conflicts_with = "key")]
    public_key: Option<PathBuf>,
    /// Write the images that are not valid here.
    #[arg(long, value_name = "FILE", default_value = "validate-failed.txt")]
    failed: PathBuf,
    #[command(flatten)]
    notary: NotaryArgs,
}

/// Checks one image in each requested format.
async fn validate_one(
    registry: RegistryClient,
    spki: Option<Vec<u8>>,
    entry: Entry,
    batch: BatchArgs,
    server: Option<trustctl::notary::server::NotaryServer>,
    store: trustctl::notary::trust::TrustStore,
) -> Result<String, String> {
    let fetched = fetch(&registry, &entry).await?;
    let mut checked = Vec::new();
    if let Some(spki) = &spki {
        let mut digests = vec![fetched.manifest.digest()];
        digests.extend(selected_platforms(&fetched, &batch)?);
        for digest in &digests {
            cosign::verify_digest(&registry, spki, &entry.image, digest)
                .await
                .map_err(|reason| format!("cosign: {digest}: {reason}"))?;
        }
        checked.push(format!(
            "cosign ({} manifest{})",
            digests.len(),
            if digests.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(server) = server {
        let tag = entry
            .tag
            .as_deref()
            .ok_or("notary: Docker Content Trust signs tags: name the tag")?;
        let repo = trust::update(
            &server,
            &store,
            &entry.image.gun,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| format!("notary: {e}"))?;
        let report = trustctl::inspect::report(&entry.text, Some(tag), &repo);
        let signed = report
            .signed_tags
            .iter()
            .find(|t| t.signed_tag == tag)
            .ok_or_else(|| format!("notary: {tag} is not signed"))?;
        if signed.digest != hex::encode(fetched.manifest.sha256) {
            return Err(format!(
                "notary: the signed digest sha256:{} is not the registry's {}",
                signed.digest,
                fetched.manifest.digest()
            ));
        }
        checked.push(format!("notary ({})", signed.signers.join(", ")));
    }
    Ok(format!("valid: {}", checked.join(", ")))
}

/// `trustctl validate` (and `trustctl sign validate`).
pub async fn validate(socket: &Path, args: ValidateArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let batch = &args.batch;
    let list = read_list(&args.images, batch)?;
    let registry = RegistryClient::new(RegistryOptions {
        ca: args.notary.tls_ca(),
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let spki = if batch.format.cosign() {
        match (&args.public_key, &batch.key) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
                Some(trustctl::keyfile::public_key_der(&text)?)
            }
            (None, Some(key)) => Some(public_key(&mut client::connect(socket).await?, key).await?),
            (None, None) => {
                return Err(CliError::Usage(
                    "cosign validation needs --key NAME or --public-key PEM".into(),
                ))
            }
        }
    } else {
        None
    };
    let mut progress = Progress::new(list.len());
    let mut failed = Vec::new();
    let semaphore = Arc::new(Semaphore::new(batch.jobs as usize));
    let mut jobs = Jobs::new(semaphore);
    for (i, text) in list.iter().enumerate() {
        let entry = match parse_entry(text, batch) {
            Ok(entry) => entry,
            Err(reason) => {
                jobs.spawn(i, batch.timeout, async move { Err(reason) }, Err);
                continue;
            }
        };
        let server = if batch.format.notary() {
            Some(args.notary.server(&entry.image)?)
        } else {
            None
        };
        let job = validate_one(
            registry.clone(),
            spki.clone(),
            entry,
            batch.clone(),
            server,
            args.notary.trust_store(),
        );
        jobs.spawn(i, batch.timeout, job, Err);
    }
    let mut results = BTreeMap::new();
    while let Some(done) = jobs.next().await {
        let (i, result) = done?;
        results.insert(i, result);
    }
    for (i, result) in results {
        if result.is_err() {
            failed.push(list[i].clone());
        }
        progress.report(&list[i], &result);
    }
    write_failed(&args.failed, &failed)?;
    eprintln!(
        "Valid {}, not valid {} of {} images in {:.1}s",
        list.len() - failed.len(),
        failed.len(),
        list.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} images are not validly signed",
            failed.len(),
            list.len()
        )))
    }
}
