//! `trustctl token piv init` and `trustctl token piv unlock`: what a security officer does to
//! a YubiKey before trustd uses it, and how a PIN reaches trustd without a file.
//!
//! Secrets are read from the terminal (or from stdin, one per line, with --stdin) and never
//! from argv or the environment; they cross trustd's socket once and are zeroized here.

use std::io::BufRead;
use trustctl::client::Trustd;

use clap::{Args, Subcommand};
use rand::Rng;
use trustctl::client;
use trustctl::error::CliError;
use trustd_proto as pb;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// PIV cards (YubiKeys) held by trustd.
    #[command(subcommand)]
    Piv(PivCommand),
}

#[derive(Subcommand)]
pub enum PivCommand {
    /// Replace a YubiKey's factory PIN, PUK and management key. The new management key is
    /// random and stored on the card behind the PIN: nobody sees it. The new PIN and PUK are
    /// asked for twice, or generated with --generate and shown once.
    Init(InitArgs),
    /// Hand trustd the card's PIN; trustd checks it and keeps it in memory only (it takes the
    /// place of a configured PIN source until trustd restarts).
    Unlock(UnlockArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The PIV backend's name in trustd's config.
    #[arg(long)]
    backend: String,
    /// Generate a random PIN and PUK and print them once.
    #[arg(long)]
    generate: bool,
    /// Provision a card that is not in its factory state; the current PIN, PUK and
    /// management key (hex) are asked for.
    #[arg(long)]
    force: bool,
    /// Read the secrets from stdin, one per line (new PIN, new PUK, then with --force the
    /// current PIN, PUK and management key), instead of the terminal.
    #[arg(long)]
    stdin: bool,
}

#[derive(Args)]
pub struct UnlockArgs {
    /// The PIV backend's name in trustd's config.
    #[arg(long)]
    backend: String,
    /// Read the PIN from stdin instead of the terminal.
    #[arg(long)]
    stdin: bool,
}

pub async fn run(trustd: &Trustd, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Piv(PivCommand::Init(args)) => init(trustd, args).await,
        TokenCommand::Piv(PivCommand::Unlock(args)) => unlock(trustd, args).await,
    }
}

/// Where secrets come from: the terminal, or stdin lines.
struct Secrets {
    stdin: bool,
}

impl Secrets {
    fn read(&self, prompt: &str) -> Result<Zeroizing<String>, CliError> {
        if self.stdin {
            let mut line = Zeroizing::new(String::with_capacity(256));
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
            return Ok(Zeroizing::new(
                line.trim_end_matches(['\n', '\r']).to_owned(),
            ));
        }
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| {
                CliError::Usage(format!(
                    "no terminal to ask on ({e}): use --stdin, or --generate for new values"
                ))
            })
    }

    /// A new secret, typed twice on a terminal.
    fn read_new(&self, what: &str) -> Result<Zeroizing<String>, CliError> {
        let first = self.read(&format!("New {what} (6-8 characters): "))?;
        if !self.stdin {
            let again = self.read(&format!("New {what} again: "))?;
            if *again != *first {
                return Err(CliError::Usage(format!("the two {what}s differ")));
            }
        }
        if !(6..=8).contains(&first.len()) {
            return Err(CliError::Usage(format!("a {what} has 6 to 8 characters")));
        }
        Ok(first)
    }
}

fn random_digits(n: usize) -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    Zeroizing::new(
        (0..n)
            .map(|_| char::from(b'0' + rng.gen_range(0..10)))
            .collect(),
    )
}

async fn init(trustd: &Trustd, args: InitArgs) -> Result<(), CliError> {
    let secrets = Secrets { stdin: args.stdin };
    let (new_pin, new_puk) = if args.generate {
        (random_digits(8), random_digits(8))
    } else {
        (secrets.read_new("PIN")?, secrets.read_new("PUK")?)
    };
    let (current_pin, current_puk, current_management_key) = if args.force {
        (
            secrets.read("Current PIN: ")?,
            secrets.read("Current PUK: ")?,
            secrets.read("Current management key (48 hex digits, empty for the default): ")?,
        )
    } else {
        Default::default()
    };
    let mut client = client::connect(trustd).await?;
    let reply = client
        .provision_piv(pb::ProvisionPivRequest {
            backend: args.backend.clone(),
            new_pin: new_pin.to_string(),
            new_puk: new_puk.to_string(),
            current_pin: current_pin.to_string(),
            current_puk: current_puk.to_string(),
            current_management_key: current_management_key.to_string(),
            force: args.force,
        })
        .await
        .map_err(|s| CliError::from_status("cannot provision the card", s))?
        .into_inner();
    println!(
        "YubiKey serial {} provisioned: new PIN and PUK set, a new random management key stored on the card behind the PIN.",
        reply.serial
    );
    if args.generate {
        // Shown once, on the terminal that asked for them; never written anywhere.
        println!("PIN: {}\nPUK: {}", *new_pin, *new_puk);
        println!("Write these down now: they are not shown again.");
    }
    println!(
        "trustd holds the new PIN until it restarts; put it where trustd's config reads it (pin = {{ credential = ... }}) or run `trustctl token piv unlock` after a restart."
    );
    Ok(())
}

async fn unlock(trustd: &Trustd, args: UnlockArgs) -> Result<(), CliError> {
    let pin = Secrets { stdin: args.stdin }.read("YubiKey PIN: ")?;
    let mut client = client::connect(trustd).await?;
    client
        .unlock_backend(pb::UnlockBackendRequest {
            backend: args.backend.clone(),
            pin: pin.to_string(),
        })
        .await
        .map_err(|s| CliError::from_status("cannot unlock the card", s))?;
    println!(
        "Backend {:?} unlocked: trustd keeps the PIN in memory until it stops.",
        args.backend
    );
    Ok(())
}
