//! `trustctl inspect [--pretty] IMAGE[:TAG]...`: who signed what, as docker trust inspect
//! shows it, from trust data verified on read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trustd_notary::text::sanitize;

use clap::Args;
use trustctl::error::CliError;
use trustctl::reference::ImageRef;
use trustctl::registry::Credentials;
use trustd_notary::client::server::{NotaryServer, ServerError};
use trustd_notary::inspect;
use trustd_notary::trust::{self, TrustError, TrustStore};

/// A path from the environment, when the variable is set and not empty.
fn env_path(variable: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where trust data comes from and where it is cached.
#[derive(Args)]
#[command(next_help_heading = "Notary server and trust data")]
pub struct NotaryArgs {
    /// Notary server URL, https:// only [default: $TRUSTCTL_SERVER, then
    /// $DOCKER_CONTENT_TRUST_SERVER, then [notary] server in the config, then the one docker
    /// would use for the image]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Extra CA certificate (PEM) to trust for the notary server and the registry, besides the
    /// system roots [env: TRUSTCTL_TLS_CA]
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Local cache of verified trust data [env: TRUSTCTL_TRUST_DIR] [default:
    /// ~/.local/share/trustctl]
    #[arg(long, value_name = "DIR")]
    pub trust_dir: Option<PathBuf>,
    /// Clients made so far, per server URL and registry (whose credentials they carry): a
    /// command over many repositories keeps one client's TLS connections and tokens instead
    /// of reading the system roots and shaking hands again for every repository.
    #[arg(skip)]
    clients: Mutex<HashMap<(String, String), NotaryServer>>,
}

impl NotaryArgs {
    /// The notary server for `image` and where its URL came from, for messages.
    fn server_choice(&self, image: &ImageRef) -> (String, String) {
        let set = |value: Option<String>| value.filter(|s| !s.is_empty());
        if let Some(url) = set(self.server.clone()) {
            return (url, "--server".into());
        }
        for variable in ["TRUSTCTL_SERVER", "DOCKER_CONTENT_TRUST_SERVER"] {
            if let Some(url) = set(std::env::var(variable).ok()) {
                return (url, format!("${variable}"));
            }
        }
        if let Some(url) = set(super::config().notary.server.clone()) {
            return (url, "[notary] server in trustctl's config".into());
        }
        (
            image.default_notary_server(),
            format!(
                "no notary server was set, so the default for {}, as docker uses it; set --server, $TRUSTCTL_SERVER or [notary] server",
                image.registry()
            ),
        )
    }

    /// The extra CA: --tls-ca, else $TRUSTCTL_TLS_CA, else the config file's.
    pub fn tls_ca(&self) -> Option<&Path> {
        static FROM_ENV: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let from_env = FROM_ENV.get_or_init(|| env_path("TRUSTCTL_TLS_CA"));
        self.tls_ca
            .as_deref()
            .or(from_env.as_deref())
            .or(super::config().notary.tls_ca.as_deref())
    }

    /// The notary server for `image`, authenticating with the docker credentials of the
    /// image's registry, as `docker trust` does.
    pub fn server(&self, image: &ImageRef) -> Result<NotaryServer, CliError> {
        let (url, origin) = self.server_choice(image);
        let key = (url, image.registry().to_owned());
        let mut clients = self.clients.lock().expect("notary clients lock");
        if let Some(server) = clients.get(&key) {
            return Ok(server.clone());
        }
        let credentials = Credentials::for_registry(image.registry())
            .map_err(|e| CliError::Failed(e.to_string()))?;
        let server = NotaryServer::new(&key.0, self.tls_ca(), credentials)
            .map_err(|e| match e {
                ServerError::BadUrl { .. } => {
                    CliError::Usage(format!("{e} (the URL came from {origin})"))
                }
                other => CliError::from(other),
            })?
            .with_origin(origin);
        clients.insert(key, server.clone());
        Ok(server)
    }

    pub fn trust_store(&self) -> TrustStore {
        let configured = super::config().notary.trust_dir.clone();
        let dir = self
            .trust_dir
            .clone()
            .or_else(|| env_path("TRUSTCTL_TRUST_DIR"))
            .or(configured)
            .unwrap_or_else(|| {
                std::env::var_os("XDG_DATA_HOME")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share"))
                    })
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("trustctl")
            });
        TrustStore::new(dir).with_pinning(super::config().trust_pinning.clone())
    }
}

#[derive(Args)]
pub struct InspectArgs {
    /// Human-friendly tables instead of JSON.
    #[arg(long)]
    pretty: bool,
    #[command(flatten)]
    notary: NotaryArgs,
    /// Images, with an optional tag.
    #[arg(required = true, value_name = "IMAGE[:TAG]")]
    images: Vec<String>,
}

/// What a failed read of `image`'s trust data from `server` means to the user. Failures that
/// a wrong server would cause name the server and where its URL came from, and say to check
/// that before anything else.
pub fn trust_error(image: &str, server: &NotaryServer, error: TrustError) -> CliError {
    let from = match server.origin() {
        "" => String::new(),
        origin => format!(" (from {origin})"),
    };
    match error {
        TrustError::NoTrustData(_) => CliError::NotFound(format!(
            "no signatures or cannot access {image}: the repository has no trust data on {}{from}",
            server.url()
        )),
        TrustError::Vanished { gun, role } => CliError::Failed(format!(
            "{image}: {} no longer has {role} for {gun}, which was trusted before. Check that it is the right notary server{from} first; only if the repository was deleted on purpose, `trustctl delete {gun}` forgets its local trust data",
            server.url()
        )),
        // A server error names the server and where its URL came from itself.
        TrustError::Server(e @ (ServerError::Unreachable { .. } | ServerError::Auth { .. })) => {
            CliError::Unreachable(format!("{image}: {e}"))
        }
        TrustError::Server(e) => CliError::Failed(format!("{image}: {e}")),
        other => CliError::Failed(format!(
            "{image}: trust data failed verification and was not trusted: {other}"
        )),
    }
}

pub async fn run(args: InspectArgs) -> Result<(), CliError> {
    let store = args.notary.trust_store();
    let mut reports = Vec::new();
    let mut first_error = None;
    for text in &args.images {
        match inspect_one(&args.notary, &store, text).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("trustctl: {}", sanitize(&error.to_string()));
                first_error.get_or_insert(error);
            }
        }
    }
    if args.pretty {
        let texts: Vec<_> = reports.iter().map(inspect::pretty).collect();
        print!("{}", sanitize(&texts.join("\n\n")));
    } else {
        println!("{}", inspect::to_json(&reports));
    }
    // Each failure was printed as it happened; the exit code is the first one's.
    match first_error {
        Some(error) => Err(CliError::Reported(error.exit_code())),
        None => Ok(()),
    }
}

async fn inspect_one(
    notary: &NotaryArgs,
    store: &TrustStore,
    text: &str,
) -> Result<inspect::TrustReport, CliError> {
    let image = ImageRef::parse(text).map_err(CliError::Usage)?;
    let server = notary.server(&image)?;
    let repo = trust::update(&server, store, &image.gun, time::OffsetDateTime::now_utc())
        .await
        .map_err(|e| trust_error(text, &server, e))?;
    for skipped in &repo.skipped {
        eprintln!(
            "warning: {text}: ignoring {}, whose signatures do not verify: {}",
            sanitize(&skipped.role),
            sanitize(&skipped.reason)
        );
    }
    warn_expiring(&repo);
    // An unsigned tag of a signed repository is a report with no signed tags and exit 0, as
    // docker prints it (scripts tell it by `SignedTags` being empty).
    Ok(inspect::report(text, image.tag.as_deref(), &repo))
}

/// Says on stderr what in `repo` expires soon and which command renews it.
pub fn warn_expiring(repo: &trust::VerifiedRepository) {
    let now = time::OffsetDateTime::now_utc();
    for item in trustd_notary::expiry::expiring(repo, now)
        .into_iter()
        .filter(|e| e.soon)
    {
        eprintln!("warning: {}", sanitize(&expiry_sentence(&repo.gun, &item)));
    }
}

/// One expiring item, in a sentence that says what to do.
pub fn expiry_sentence(gun: &str, item: &trustd_notary::expiry::Expiring) -> String {
    let when = trustd_notary::model::format_expires(item.expires);
    let how_long = match item.days_left {
        d if d < 0 => format!("expired {} days ago", -d),
        0 => "expires today".to_owned(),
        d => format!("expires in {d} days"),
    };
    let lost = if item.what.starts_with("root certificate") {
        "; once it has expired, notary clients that cached this root cannot recover"
    } else {
        ""
    };
    format!(
        "{gun}: the {} {how_long} ({when}){lost}: renew it with `{}`",
        item.what, item.renew
    )
}
