//! trustd: keeps signing keys on hardware and signs for authorized local callers. The
//! daemon itself is the `trustd` library; this is its command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Exit code for a configuration that cannot be read or is not valid, as trustctl uses 2 for
/// bad input; 1 is every other failure.
const BAD_CONFIG: u8 = 2;

/// Hardware-backed signing daemon for container image trust.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/trustd/trustd.toml")]
    config: PathBuf,
    /// Check the configuration and policy, then exit.
    #[arg(long)]
    check_config: bool,
    /// Write trustd(8) and trustd.toml(5) into DIR and exit (for packaging).
    #[arg(long, hide = true, value_name = "DIR")]
    write_man_page: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.write_man_page {
        let pages = [
            ("trustd.8", trustd::manual::page(Args::command())),
            ("trustd.toml.5", trustd::manual::config_page()),
        ];
        for (name, text) in pages {
            if let Err(e) = std::fs::write(dir.join(name), text) {
                eprintln!("trustd: cannot write {}: {e}", dir.join(name).display());
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    let logging = trustd::logging::LogFormat::from_environment().and_then(trustd::logging::init);
    if let Err(message) = logging {
        eprintln!("trustd: {message}");
        return ExitCode::from(BAD_CONFIG);
    }
    harden_process();

    if args.check_config {
        return match trustd::check_config(&args.config) {
            Ok(_) => {
                println!("{}: ok", args.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("trustd: {e:#}");
                ExitCode::from(BAD_CONFIG)
            }
        };
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("trustd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trustd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(trustd::server::run(&args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, on stderr (the journal, under systemd).
            eprintln!("trustd: {e:#}");
            if trustd::is_config_error(&e) {
                ExitCode::from(BAD_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// PINs pass through this process's memory: keep it out of core dumps and away from ptrace by
/// other processes of the same user.
// unsafe_code allowed here: prctl and setrlimit (FFI).
#[allow(unsafe_code)]
fn harden_process() {
    // SAFETY: plain prctl/setrlimit calls with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
}
