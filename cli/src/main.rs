//! trustctl: manage and use keys held by trustd.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Where every command's options for reaching trustd are listed in --help, apart from its own.
const TRUSTD_HEADING: &str = "Reaching trustd";

/// A flag's value, else the environment variable's (when set and not empty). Read here rather
/// than by clap, whose usage lines would otherwise list every flag an environment variable
/// happens to set.
fn or_env<T: From<std::ffi::OsString>>(flag: Option<T>, variable: &str) -> Option<T> {
    flag.or_else(|| {
        std::env::var_os(variable)
            .filter(|v| !v.is_empty())
            .map(T::from)
    })
}

/// Sign with keys that never leave hardware: a client of the trustd daemon.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// trustd's socket [env: TRUSTD_SOCKET] [default: socket in ~/.config/trustctl/config.toml
    /// or /etc/trustctl/config.toml, else /run/trustd/trustd.sock]
    #[arg(long, global = true, value_name = "PATH", help_heading = TRUSTD_HEADING)]
    socket: Option<PathBuf>,
    /// A remote trustd's TLS listener, https://host:port, instead of the socket [env: TRUSTD_URL]
    #[arg(long = "trustd", global = true, value_name = "URL", help_heading = TRUSTD_HEADING)]
    trustd_url: Option<String>,
    /// The client certificate (PEM) to present to a remote trustd [env: TRUSTD_TLS_CERT]
    #[arg(long, global = true, value_name = "FILE", help_heading = TRUSTD_HEADING)]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert [env: TRUSTD_TLS_KEY]
    #[arg(long, global = true, value_name = "FILE", help_heading = TRUSTD_HEADING)]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) a remote trustd's certificate chains to [env: TRUSTD_CA] [default: the
    /// system's roots]
    #[arg(long, global = true, value_name = "FILE", help_heading = TRUSTD_HEADING)]
    trustd_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate, list, export public halves of, load and delete keys.
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    /// Sign a file (base64 signature, as cosign sign-blob writes it).
    SignBlob(commands::blob::SignBlobArgs),
    /// Verify a file's signature with a key in trustd or a PEM public key.
    VerifyBlob(commands::blob::VerifyBlobArgs),
    /// Show trustd's backends, their devices and whether they are ready.
    Status(commands::status::StatusArgs),
    /// Show who signed which tags of images (Docker Content Trust), verified on read.
    Inspect(commands::inspect::InspectArgs),
    /// Say whether repositories' trust data expires soon (root certificates within 180 days,
    /// roles within 30) and what renews it; exit 1 when it does, for monitoring.
    Check(commands::check::CheckArgs),
    /// Create a repository's trust data with its root and targets keys in trustd.
    Init(commands::trust::InitArgs),
    /// Sign image tags (Docker Content Trust) or images (cosign) with keys in trustd, one or
    /// a list (--file) at a time.
    Sign(commands::trust::SignArgs),
    /// Check images' signatures (Notary, cosign, or both), one or a list at a time; also
    /// spelled `trustctl sign validate`, as hangar does.
    Validate(commands::batch::ValidateArgs),
    /// Remove the signature of a tag (or of every tag) of an image.
    Revoke(commands::trust::RevokeArgs),
    /// Delete a repository's local trust data, and with --remote the server's.
    Delete(commands::trust::DeleteArgs),
    /// Root ceremonies across machines: start, show, sign and publish a root rotation or
    /// certificate renewal through a file handed between officers.
    #[command(subcommand)]
    Ceremony(commands::ceremony::CeremonyCommand),
    /// Add or remove signers of repositories (as docker trust signer does).
    #[command(subcommand)]
    Signer(commands::signer::SignerCommand),
    /// List, add and remove delegated roles (as notary delegation does).
    #[command(subcommand)]
    Delegation(commands::signer::DelegationCommand),
    /// Set up hardware tokens held by trustd (YubiKey PIV: init, unlock).
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Check trustd's tamper-evident audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::docs::CompletionsArgs),
    /// Write the man pages (for packaging).
    #[command(hide = true)]
    ManPages(commands::docs::ManArgs),
}

/// Die quietly on a closed pipe (`trustctl key list | head`) like other Unix tools.
// unsafe_code allowed here: signal (FFI).
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    // `trustctl sign validate ...` is `trustctl validate ...` (hangar's spelling).
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(at) = argv.iter().position(|a| a == "sign") {
        if argv.get(at + 1).is_some_and(|a| a == "validate") {
            argv.remove(at);
        }
    }
    let cli = Cli::parse_from(argv);
    // Neither needs trustd nor the configuration.
    let command = match cli.command {
        Command::Completions(args) => {
            commands::docs::completions(args, Cli::command());
            return ExitCode::SUCCESS;
        }
        Command::ManPages(args) => {
            return match commands::docs::man_pages(args, Cli::command()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("trustctl: cannot write the man pages: {error}");
                    ExitCode::from(2)
                }
            };
        }
        command => command,
    };
    let config = match trustctl::config::Config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("trustctl: bad configuration file {error}");
            return ExitCode::from(2);
        }
    };
    let url = cli
        .trustd_url
        .or_else(|| std::env::var("TRUSTD_URL").ok().filter(|v| !v.is_empty()));
    let where_trustd = trustctl::client::TrustdArgs {
        socket: or_env(cli.socket, "TRUSTD_SOCKET"),
        url,
        tls_cert: or_env(cli.tls_cert, "TRUSTD_TLS_CERT"),
        tls_key: or_env(cli.tls_key, "TRUSTD_TLS_KEY"),
        trustd_ca: or_env(cli.trustd_ca, "TRUSTD_CA"),
    };
    let trustd = match trustctl::client::resolve(where_trustd, &config) {
        Ok(trustd) => trustd,
        Err(error) => {
            eprintln!("trustctl: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    if let Some(user) = &config.trustd_user {
        let _ = trustctl::client::TRUSTD_USER.set(user.clone());
    }
    commands::set_config(config);
    // Two workers: a batch's parallel jobs spend their CPU on TLS and JSON, and a single
    // command costs no more than with one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match command {
            Command::Key(cmd) => commands::key::run(&trustd, cmd).await,
            Command::SignBlob(args) => commands::blob::sign(&trustd, args).await,
            Command::VerifyBlob(args) => commands::blob::verify(&trustd, args).await,
            Command::Status(args) => commands::status::run(&trustd, args).await,
            Command::Inspect(args) => commands::inspect::run(args).await,
            Command::Check(args) => commands::check::run(args).await,
            Command::Ceremony(cmd) => commands::ceremony::run(&trustd, cmd).await,
            Command::Init(args) => commands::trust::init(&trustd, args).await,
            Command::Sign(args) => commands::trust::sign(&trustd, args).await,
            Command::Validate(args) => commands::batch::validate(&trustd, args).await,
            Command::Revoke(args) => commands::trust::revoke(&trustd, args).await,
            Command::Delete(args) => commands::trust::delete(args).await,
            Command::Signer(cmd) => commands::signer::run_signer(&trustd, cmd).await,
            Command::Delegation(cmd) => commands::signer::run_delegation(&trustd, cmd).await,
            Command::Token(cmd) => commands::token::run(&trustd, cmd).await,
            Command::Audit(cmd) => commands::audit::run(&trustd, cmd).await,
            Command::Completions(_) | Command::ManPages(_) => unreachable!("answered above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !matches!(error, trustctl::error::CliError::Reported(_)) {
                eprintln!(
                    "trustctl: {}",
                    trustd_notary::text::sanitize(&error.to_string())
                );
            }
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument and flag of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "trustctl", &mut missing);
        assert!(
            missing.is_empty(),
            "no help text for:\n{}",
            missing.join("\n")
        );
    }
}
