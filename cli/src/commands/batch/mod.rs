//! Signing and validating many images at once (`hangar sign` / `hangar sign validate`
//! parity): image lists, parallel jobs, multi-platform indexes, Notary and cosign formats,
//! a failed-images file, and a summary.

mod progress;
mod scheduler;
mod sign;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use trustctl::client::{self, Client};
use trustctl::error::CliError;
use trustctl::reference::ImageRef;
use trustctl::registry::{reference, Fetched, RegistryClient};

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
    /// Time allowed for each image (e.g. 30s, 5m), and for each repository's Notary publish
    /// once its tags are resolved.
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

/// A trustd key's public key (SubjectPublicKeyInfo DER), read once per batch.
async fn public_key(client: &mut Client, key: &str) -> Result<Vec<u8>, CliError> {
    Ok(client::key_info(client, key).await?.public_key_der)
}

/// One image's results, one per format, as a single outcome: the first failure, else what
/// was done in each format.
fn combine(parts: Vec<Result<String, String>>) -> Result<String, String> {
    if let Some(reason) = parts.iter().find_map(|r| r.clone().err()) {
        return Err(reason);
    }
    Ok(parts
        .into_iter()
        .filter_map(Result::ok)
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod tests {
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
