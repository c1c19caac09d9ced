//! Signing and validating many images at once (`hangar sign` / `hangar sign validate`
//! parity): image lists, parallel jobs, multi-platform indexes, Notary and cosign formats,
//! a failed-images file, and a summary.

mod outcome;
mod progress;
mod scheduler;
mod sign;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use trustctl::client::{self, Client};
use trustctl::error::CliError;
use trustctl::reference::ImageRef;
use trustctl::registry::{reference, Fetched, InsecureRegistries, RegistryClient, RegistryOptions};

use crate::commands::inspect::NotaryArgs;

pub use outcome::{Detail, Part, Verb};
pub use progress::{FailedFile, Tally};
pub use sign::sign;
pub use validate::{validate, ValidateArgs};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Notary,
    Cosign,
    Both,
}

impl Format {
    pub fn notary(self) -> bool {
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
    #[arg(long, short = 'f', value_name = "LIST")]
    pub file: Option<PathBuf>,
    /// Parallel jobs (1-20).
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub jobs: u16,
    /// Platforms of a multi-platform index to sign or check (cosign), by architecture.
    #[arg(
        long,
        short = 'a',
        value_delimiter = ',',
        default_value = "amd64,arm64"
    )]
    pub arch: Vec<String>,
    /// Platforms of a multi-platform index to sign or check (cosign), by operating system.
    #[arg(long, short = 'o', value_delimiter = ',', default_value = "linux")]
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
    /// Time allowed for each image (30s, 5m, 1m30s, 1h), and, when signing, for each
    /// repository's Notary publish once its tags are resolved.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// The cosign key in trustd (ECDSA P-256), by name: sign signs with it, validate checks
    /// signatures against it.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Reach this registry over plain HTTP, unprotected (a lab's registry:2); repeatable,
    /// added to insecure_registries in trustctl's config. Never applies to the notary server.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Print one JSON document (docs/json/batch.schema.json) on stdout instead of a line per
    /// image.
    #[arg(long)]
    pub json: bool,
}

impl BatchArgs {
    /// Refuses the cosign key flags when no cosign signature is made or checked, rather than
    /// ignoring them: `sign --key release IMAGE` in Notary format does not sign with
    /// `release`, and silence would let the user think it did.
    pub fn check_cosign_flags(&self, public_key: bool) -> Result<(), CliError> {
        if self.format.cosign() {
            return Ok(());
        }
        let flag = match (self.key.is_some(), public_key) {
            (true, _) => "--key",
            (false, true) => "--public-key",
            (false, false) => return Ok(()),
        };
        Err(CliError::Usage(format!(
            "{flag} names a cosign key, and --format is notary: Notary signatures use the \
             repository's keys in trustd (pick a signer with --signer). Add --format cosign \
             (or both), or drop {flag}"
        )))
    }

    /// Where the failed images go: the file asked for, or `default`, when the images came
    /// from a list, were several, or a file was asked for; one image named on the command
    /// line is only reported.
    fn failed_file<'p>(
        &self,
        images: usize,
        asked: Option<&'p Path>,
        default: &'p Path,
    ) -> FailedFile<'p> {
        match (asked, self.file.is_some() || images > 1) {
            (Some(path), _) => FailedFile::At(path),
            (None, true) => FailedFile::At(default),
            (None, false) => FailedFile::None,
        }
    }

    /// The registry client for this command: the extra CA of --tls-ca, and plain HTTP for
    /// the registries the user allowed it for here or in the config, and no other.
    pub fn registry_client(&self, notary: &NotaryArgs) -> Result<RegistryClient, CliError> {
        let config = &crate::commands::config().insecure_registries;
        let insecure = InsecureRegistries::parse(
            self.insecure_registries
                .iter()
                .chain(config)
                .map(String::as_str),
        )
        .map_err(CliError::Usage)?;
        RegistryClient::new(RegistryOptions {
            ca: notary.tls_ca(),
            insecure,
        })
        .map_err(|e| CliError::Usage(e.to_string()))
    }
}

/// A duration as hangar and Go spell them: one or more number-unit pairs (`30s`, `5m`,
/// `1m30s`, `1h`). A bare number is refused rather than guessed at: hangar would reject it, and
/// `--timeout 5` meaning five seconds to one user is five minutes to another.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint =
        || format!("{text:?} is not a duration: give a number with a unit, like 30s, 5m or 1m30s");
    let mut seconds: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(hint());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: u64 = number.parse().map_err(|_| hint())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(hint()),
        };
        seconds = n
            .checked_mul(scale)
            .and_then(|s| seconds.checked_add(s))
            .filter(|s| *s <= 24 * 3600)
            .ok_or_else(|| format!("{text:?} is too long: at most 24h"))?;
        rest = next;
    }
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

/// The image a line of a list file names, if any: `#` at the start of the line or after a
/// space starts a comment, as in a shell; a `#` inside a word stays, so the reference check
/// refuses `app:v1#x` rather than signing `app:v1`. Blank lines name nothing.
fn list_entry(line: &str) -> Option<&str> {
    let comment = line
        .char_indices()
        .find(|&(at, c)| c == '#' && (at == 0 || line[..at].ends_with(char::is_whitespace)))
        .map_or(line.len(), |(at, _)| at);
    let entry = line[..comment].trim();
    (!entry.is_empty()).then_some(entry)
}

/// Says, before a progress bar is drawn, which registries of the list are reached over
/// plain HTTP.
fn warn_plain_http(registry: &RegistryClient, list: &[String], batch: &BatchArgs) {
    for entry in list.iter().filter_map(|text| parse_entry(text, batch).ok()) {
        registry.warn_if_plain(entry.image.registry());
    }
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
        list.extend(text.lines().filter_map(list_entry).map(str::to_owned));
    }
    if list.is_empty() {
        return Err(CliError::Usage("no images to work on".into()));
    }
    Ok(list)
}

/// Progress: a bar on a terminal (with failures printed above it as they happen), plain
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

async fn fetch(registry: &RegistryClient, entry: &Entry) -> Result<Fetched, CliError> {
    let reference = match (&entry.digest, &entry.tag) {
        (Some(digest), _) => reference(&entry.image, "latest").clone_with_digest(digest.clone()),
        (None, Some(tag)) => reference(&entry.image, tag),
        (None, None) => unreachable!("entries name a tag or digest"),
    };
    let fetched = registry.manifest(&reference).await?.ok_or_else(|| {
        CliError::NotFound(match &entry.digest {
            Some(digest) => format!("the registry has no manifest {digest}"),
            None => "no such tag in the registry".to_owned(),
        })
    })?;
    if let Some(digest) = &entry.digest {
        if &fetched.manifest.digest() != digest {
            return Err(CliError::Failed(format!(
                "the registry served another manifest than {digest}"
            )));
        }
    }
    Ok(fetched)
}

/// A trustd key's public key (SubjectPublicKeyInfo DER), read once per batch.
async fn public_key(client: &mut Client, key: &str) -> Result<Vec<u8>, CliError> {
    Ok(client::key_info(client, key).await?.public_key_der)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations_are_spelled_as_hangar_and_go_spell_them() {
        let parse = super::parse_duration;
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h5m"), Ok(Duration::from_secs(3900)));
        for bad in ["5", "", "m", "5x", "1.5m", "-5s", "5s5", "s5", "25h", "0s"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse("5").unwrap_err().contains("with a unit"));
    }

    #[test]
    fn list_lines_lose_comments_and_blanks() {
        assert_eq!(
            super::list_entry("  reg.test/app:v1  "),
            Some("reg.test/app:v1")
        );
        assert_eq!(
            super::list_entry("reg.test/app:v1 # the release"),
            Some("reg.test/app:v1")
        );
        assert_eq!(
            super::list_entry("reg.test/app:v1#x"),
            Some("reg.test/app:v1#x")
        );
        assert_eq!(super::list_entry("# release 3.0"), None);
        assert_eq!(super::list_entry("   "), None);
    }
}
