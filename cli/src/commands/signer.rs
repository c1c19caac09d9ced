//! `trustctl signer add|remove` (docker trust signer) and `trustctl delegation
//! list|add|remove` (notary delegation): who may sign a repository's tags, changed by its
//! admin with the targets key in trustd.

use std::path::PathBuf;
use trustctl::client::Trustd;
use trustd_notary::text::sanitize;

use clap::{Args, Subcommand};
use trustctl::client;
use trustctl::error::{io_reason, CliError};
use trustctl::notary::draft::{self, Draft};
use trustctl::reference::ImageRef;
use trustd_notary::delegation::{self, DelegationError, RELEASES};
use trustd_notary::keys::PublicKey;
use trustd_notary::model::RoleKeys;
use trustd_notary::trust::{self, VerifiedRepository};
use trustd_notary::{envelope::RawEnvelope, threshold};

use super::inspect::{trust_error, NotaryArgs};
use super::repository::open_or_init;

#[derive(Subcommand)]
pub enum SignerCommand {
    /// Let NAME sign tags of each REPO: its key goes into targets/NAME and targets/releases
    /// (the repository is initialized first if it has no trust data).
    Add {
        /// PEM public key or X.509 certificate of the signer (repeat for several keys).
        #[arg(long = "key", required = true, value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// The signer's name (its role is targets/NAME).
        name: String,
        /// Repositories (GUNs) the signer may sign for.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<String>,
        /// trustd backend for keys created if a repository is new.
        #[arg(long)]
        backend: Option<String>,
        /// Signatures of distinct signers every release (targets/releases) needs: K of its
        /// keys, a k-of-n release; a signer holding fewer starts a release ceremony
        #[arg(long, value_name = "K")]
        threshold: Option<u32>,
        #[command(flatten)]
        notary: NotaryArgs,
    },
    /// Stop NAME signing tags of each REPO: targets/NAME goes, and NAME's keys leave
    /// targets/releases.
    Remove {
        /// The signer's name.
        name: String,
        /// Repositories (GUNs) to remove the signer from.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<String>,
        /// Remove even when the signer signed the latest released tags, which then lose
        /// their only valid signature.
        #[arg(long, short)]
        force: bool,
        #[command(flatten)]
        notary: NotaryArgs,
    },
}

#[derive(Subcommand)]
pub enum DelegationCommand {
    /// List the delegated roles of GUN with their paths, thresholds and key IDs.
    List {
        /// The repository (GUN), e.g. registry.example.com/team/app.
        gun: String,
        /// Print one JSON document (docs/json/delegation-list.schema.json).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        notary: NotaryArgs,
    },
    /// Add keys and paths to a delegated role, creating it if needed.
    Add(DelegationAddArgs),
    /// Remove a delegated role, or only some of its keys or paths.
    Remove(DelegationRemoveArgs),
}

#[derive(Args)]
pub struct DelegationAddArgs {
    /// The repository (GUN), e.g. registry.example.com/team/app.
    gun: String,
    /// The delegated role to add or extend, targets/NAME.
    role: String,
    /// PEM public key or X.509 certificate (repeatable).
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Path prefixes the role may sign: repeat the flag or separate with commas, as notary
    /// does (`--paths ci-,nightly-`). Takes one value, so GUN and ROLE may follow it.
    #[arg(
        long = "paths",
        value_name = "PREFIX",
        value_delimiter = ',',
        conflicts_with = "all_paths"
    )]
    paths: Vec<String>,
    /// The role may sign every path.
    #[arg(long)]
    all_paths: bool,
    /// Signatures of distinct keys the role needs (K of its keys); a signer holding fewer
    /// starts a release ceremony
    #[arg(long, value_name = "K")]
    threshold: Option<u32>,
    #[command(flatten)]
    notary: NotaryArgs,
}

#[derive(Args)]
pub struct DelegationRemoveArgs {
    /// The repository (GUN), e.g. registry.example.com/team/app.
    gun: String,
    /// The delegated role, targets/NAME.
    role: String,
    /// Remove only this key ID (repeatable), as `delegation list` shows it.
    #[arg(long = "key-id", value_name = "KEYID")]
    keyids: Vec<String>,
    /// Remove only these path prefixes (repeatable, or separated with commas).
    #[arg(
        long = "paths",
        value_name = "PREFIX",
        value_delimiter = ',',
        conflicts_with = "all_paths"
    )]
    paths: Vec<String>,
    /// Remove the "every path" grant.
    #[arg(long)]
    all_paths: bool,
    /// Do not ask before removing the whole role.
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

fn delegation_error(error: DelegationError) -> CliError {
    match error {
        DelegationError::NoSuchRole(_) => CliError::NotFound(error.to_string()),
        _ => CliError::Usage(error.to_string()),
    }
}

fn read_keys(files: &[PathBuf]) -> Result<Vec<PublicKey>, CliError> {
    let now = time::OffsetDateTime::now_utc();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read(file).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the public key file {}: {}; --key takes a PEM file, as docker \
                     trust signer add does (trustctl key generate NAME writes NAME.pub, trustctl \
                     key public NAME prints one)",
                    file.display(),
                    io_reason(&e)
                ))
            })?;
            delegation::key_from_pem(&file.display().to_string(), &text, now)
                .map_err(delegation_error)
        })
        .collect()
}

fn repository(text: &str) -> Result<ImageRef, CliError> {
    ImageRef::parse_repository(text).map_err(CliError::Usage)
}

async fn verified(
    notary: &NotaryArgs,
    text: &str,
) -> Result<(ImageRef, VerifiedRepository), CliError> {
    let image = repository(text)?;
    let server = notary.server(&image)?;
    let repo = trust::update(
        &server,
        &notary.trust_store(),
        &image.gun,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|e| trust_error(text, &server, e))?;
    Ok((image, repo))
}

pub async fn run_signer(trustd: &Trustd, command: SignerCommand) -> Result<(), CliError> {
    match command {
        SignerCommand::Add {
            keys,
            name,
            repos,
            backend,
            threshold,
            notary,
        } => {
            let role = delegation::signer_role(&name).map_err(delegation_error)?;
            let keys = read_keys(&keys)?;
            let images = repos
                .iter()
                .map(|r| repository(r))
                .collect::<Result<Vec<_>, _>>()?;
            let client = client::connect(trustd).await?;
            let store = notary.trust_store();
            for image in images {
                let server = notary.server(&image)?;
                let backend = backend.as_deref().unwrap_or("");
                let repo = open_or_init(&server, &store, &client, &image.gun, backend).await?;
                let mut draft = Draft::new(&repo);
                let delegations = &mut draft.targets_mut().delegations;
                let all = ["".to_owned()];
                let mut changed = delegation::add(delegations, &role, &keys, &all)
                    | delegation::add(delegations, RELEASES, &keys, &all);
                if let Some(k) = threshold {
                    changed |= delegation::set_threshold(delegations, RELEASES, k)
                        .map_err(delegation_error)?;
                }
                if !changed {
                    println!("{name} already signs {} with these keys", image.gun);
                    continue;
                }
                draft::publish(&server, &store, client.clone(), draft).await?;
                let ids: Vec<String> = keys.iter().map(|k| k.id()).collect();
                println!(
                    "Added signer {name} to {} (key {})",
                    image.gun,
                    ids.join(", ")
                );
            }
            Ok(())
        }
        SignerCommand::Remove {
            name,
            repos,
            force,
            notary,
        } => {
            let role = delegation::signer_role(&name).map_err(delegation_error)?;
            let client = client::connect(trustd).await?;
            let store = notary.trust_store();
            for text in &repos {
                let (image, repo) = verified(&notary, text).await?;
                let Some(entry) = repo
                    .targets
                    .delegations
                    .roles
                    .iter()
                    .find(|r| r.name == role)
                else {
                    return Err(CliError::NotFound(format!(
                        "{name} is not a signer of {}",
                        image.gun
                    )));
                };
                let signer_keys = entry.keyids.clone();
                if !force && signed_latest_release(&repo, &signer_keys) {
                    super::confirm_or(
                        &format!("removing {name}, the only valid signer of the latest release of {}", image.gun),
                        &format!(
                            "{name} signed the latest release of {}; without {name} its released tags have no valid signature. Remove {name}?",
                            image.gun
                        ),
                        "--force",
                    )?;
                }
                let mut draft = Draft::new(&repo);
                let delegations = &mut draft.targets_mut().delegations;
                delegation::remove_role(delegations, &role).map_err(delegation_error)?;
                // The signer's keys leave releases unless another signer uses them too.
                let still_used: Vec<String> = delegations
                    .roles
                    .iter()
                    .filter(|r| r.name != RELEASES)
                    .flat_map(|r| r.keyids.clone())
                    .collect();
                let leaving: Vec<String> = signer_keys
                    .into_iter()
                    .filter(|id| !still_used.contains(id))
                    .collect();
                if delegations.roles.iter().any(|r| r.name == RELEASES) {
                    delegation::remove_from_role(delegations, RELEASES, &leaving, &[])
                        .map_err(delegation_error)?;
                }
                let server = notary.server(&image)?;
                let updated = draft::publish(&server, &store, client.clone(), draft).await?;
                if updated
                    .targets
                    .delegations
                    .roles
                    .iter()
                    .any(|r| r.name == role)
                {
                    return Err(CliError::Failed(format!(
                        "the server accepted the update but {} still delegates to {name}",
                        image.gun
                    )));
                }
                println!("Removed signer {name} from {}", image.gun);
            }
            Ok(())
        }
    }
}

/// Whether every valid signature on the published targets/releases is by one of `keys`:
/// removing them would leave the released tags with no valid signature.
fn signed_latest_release(repo: &VerifiedRepository, keys: &[String]) -> bool {
    let Some(bytes) = repo.files.get(RELEASES) else {
        return false;
    };
    let Some(releases) = repo
        .targets
        .delegations
        .roles
        .iter()
        .find(|r| r.name == RELEASES)
    else {
        return false;
    };
    let Ok(raw) = RawEnvelope::parse(bytes) else {
        return false;
    };
    let listed = RoleKeys {
        keyids: releases.keyids.clone(),
        threshold: 1,
    };
    match threshold::check_message(
        RELEASES,
        &raw.signed_as_written(),
        &raw.signatures,
        &repo.targets.delegations.keys,
        &listed,
    ) {
        Ok(valid) => valid.iter().all(|id| keys.contains(id)),
        Err(_) => false,
    }
}

pub async fn run_delegation(trustd: &Trustd, command: DelegationCommand) -> Result<(), CliError> {
    match command {
        DelegationCommand::List { gun, json, notary } => {
            let (image, repo) = verified(&notary, &gun).await?;
            let roles = &repo.targets.delegations.roles;
            if json {
                let listed: Vec<serde_json::Value> = roles
                    .iter()
                    .map(|role| {
                        serde_json::json!({
                            "role": role.name,
                            "paths": role.paths,
                            "all_paths": role.paths.iter().any(|p| p.is_empty()),
                            "threshold": role.threshold,
                            "keyids": role.keyids,
                        })
                    })
                    .collect();
                let document = serde_json::json!({
                    "schema_version": 1,
                    "repository": image.gun,
                    "delegations": listed,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&document).expect("JSON values serialize")
                );
                return Ok(());
            }
            if roles.is_empty() {
                println!("No delegations present in this repository.");
                return Ok(());
            }
            println!("{:<24} {:<20} {:<66} THRESHOLD", "ROLE", "PATHS", "KEY IDS");
            for role in roles {
                let paths = if role.paths.iter().any(|p| p.is_empty()) {
                    "\"\" <all paths>".to_owned()
                } else {
                    sanitize(&role.paths.join(",")).into_owned()
                };
                let role_keyids: Vec<_> = role.keyids.iter().map(|k| sanitize(k)).collect();
                for (i, keyid) in role_keyids.iter().enumerate() {
                    if i == 0 {
                        println!(
                            "{:<24} {:<20} {:<66} {}",
                            role.name, paths, keyid, role.threshold
                        );
                    } else {
                        println!("{:<24} {:<20} {keyid}", "", "");
                    }
                }
            }
            Ok(())
        }
        DelegationCommand::Add(args) => {
            delegation::check_role_name(&args.role).map_err(delegation_error)?;
            let keys = read_keys(&args.keys)?;
            let (image, repo) = verified(&args.notary, &args.gun).await?;
            let exists = repo
                .targets
                .delegations
                .roles
                .iter()
                .any(|r| r.name == args.role);
            if !exists && keys.is_empty() {
                return Err(CliError::Usage(format!(
                    "{} is a new role: give at least one --key",
                    args.role
                )));
            }
            let mut paths = args.paths.clone();
            if args.all_paths {
                paths.push(String::new());
            }
            let mut draft = Draft::new(&repo);
            let delegations = &mut draft.targets_mut().delegations;
            let mut changed = delegation::add(delegations, &args.role, &keys, &paths);
            if let Some(k) = args.threshold {
                changed |= delegation::set_threshold(delegations, &args.role, k)
                    .map_err(delegation_error)?;
            }
            if !changed {
                println!("{} already has these keys, paths and threshold", args.role);
                return Ok(());
            }
            let client = client::connect(trustd).await?;
            let server = args.notary.server(&image)?;
            draft::publish(&server, &args.notary.trust_store(), client, draft).await?;
            println!("Updated delegation {} of {}", args.role, image.gun);
            if paths.is_empty() && !exists {
                eprintln!("warning: {} has no paths yet, so it can sign nothing (add --paths or --all-paths)", args.role);
            }
            Ok(())
        }
        DelegationCommand::Remove(args) => {
            delegation::check_role_name(&args.role).map_err(delegation_error)?;
            let (image, repo) = verified(&args.notary, &args.gun).await?;
            let mut paths = args.paths.clone();
            if args.all_paths {
                paths.push(String::new());
            }
            let mut draft = Draft::new(&repo);
            let delegations = &mut draft.targets_mut().delegations;
            if args.keyids.is_empty() && paths.is_empty() {
                if !args.yes {
                    super::confirm(
                        &format!("removing the role {}", args.role),
                        &format!("Remove {} from {}?", args.role, image.gun),
                    )?;
                }
                delegation::remove_role(delegations, &args.role).map_err(delegation_error)?;
            } else if !delegation::remove_from_role(delegations, &args.role, &args.keyids, &paths)
                .map_err(delegation_error)?
            {
                return Err(CliError::NotFound(format!(
                    "{} has none of those keys or paths",
                    args.role
                )));
            }
            let client = client::connect(trustd).await?;
            let server = args.notary.server(&image)?;
            draft::publish(&server, &args.notary.trust_store(), client, draft).await?;
            println!("Updated delegation {} of {}", args.role, image.gun);
            Ok(())
        }
    }
}
