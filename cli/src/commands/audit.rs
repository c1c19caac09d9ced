//! `trustctl audit verify`: checks trustd's audit log files (the chain and the checkpoints,
//! see `trustctl::audit_log`) and says where the first break is.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use trustctl::audit_log::{Report, Walk};
use trustctl::client::Trustd;
use trustctl::error::{io_reason, CliError};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check audit log files: every record's link to the one before, and the checkpoints
    /// trustd signed. Exit 0: intact; 1: broken (the first break is named).
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Audit log files, oldest first (rotated files before the current one).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The checkpoint key's name in trustd (`[audit] checkpoint_key`).
    #[arg(long, value_name = "NAME", conflicts_with = "public_key")]
    key: Option<String>,
    /// The checkpoint key's public key (PEM, from `trustctl key public NAME`), to check
    /// without trustd.
    #[arg(long, value_name = "PEM")]
    public_key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(trustd: &Trustd, command: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify(args) = command;
    let key =
        super::verifying_key::resolve(trustd, args.key.as_deref(), args.public_key.as_deref())
            .await?;
    let mut walk = Walk::new(key.as_deref());
    for path in &args.files {
        let name = path.display().to_string();
        let unreadable =
            |e: std::io::Error| CliError::Usage(format!("cannot read {name}: {}", io_reason(&e)));
        let file = std::fs::File::open(path).map_err(unreadable)?;
        walk.file(&name, file).map_err(unreadable)?;
    }
    let report = walk.finish();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print_summary(&report, key.is_some());
    }
    match &report.broken {
        None => Ok(()),
        Some(_) if args.json => Err(CliError::Reported(1)),
        Some(broken) => Err(CliError::Failed(format!(
            "{} line {}{}: {}",
            broken.file,
            broken.line,
            broken
                .seq
                .map(|s| format!(" (seq {s})"))
                .unwrap_or_default(),
            broken.reason
        ))),
    }
}

fn print_summary(report: &Report, key_given: bool) {
    let span = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!(" (seq {first} to {last})"),
        _ => String::new(),
    };
    let verdict = if report.intact() {
        "chain intact"
    } else {
        "chain BROKEN"
    };
    println!("{} records{span}: {verdict}", report.records);
    if let Some(after) = report.starts_after_seq {
        println!("  the first record follows seq {after}, in an earlier file not given");
    }
    if report.unchained_records > 0 {
        println!(
            "  {} records before the chain began (written by an older trustd)",
            report.unchained_records
        );
    }
    if key_given {
        println!(
            "  {} checkpoints verified{}",
            report.checkpoints_verified,
            report
                .covered_through_seq
                .map(|s| format!(", covering every record through seq {s}"))
                .unwrap_or_default()
        );
    } else if report.checkpoints_unchecked > 0 {
        println!(
            "  {} checkpoints NOT checked: give --key NAME or --public-key PEM",
            report.checkpoints_unchecked
        );
    }
    if report.checkpoints_failed > 0 {
        println!(
            "  {} checkpoints trustd could not sign (its log says why)",
            report.checkpoints_failed
        );
    }
    if report.intact() && report.uncovered_records > 0 {
        println!(
            "  {} records not covered by a verified checkpoint yet: anyone who can edit the file could have rewritten them",
            report.uncovered_records
        );
    }
}
