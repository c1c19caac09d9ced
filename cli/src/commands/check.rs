//! `trustctl check GUN...`: for monitoring, whether any repository's trust data expires soon
//! (root certificates within 180 days, roles within 30), with the command that renews each.
//! Exit 0 when nothing does, 1 when something does; `--json` for dashboards.

use clap::Args;
use trustctl::error::CliError;
use trustctl::reference::ImageRef;
use trustd_notary::expiry::{self, Expiring};
use trustd_notary::text::sanitize;
use trustd_notary::trust;

use super::inspect::{expiry_sentence, trust_error, NotaryArgs};

#[derive(Args)]
pub struct CheckArgs {
    /// Repositories (GUNs) to check.
    #[arg(required = true, value_name = "GUN")]
    repositories: Vec<String>,
    /// Print one JSON document (docs/json/check.schema.json).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    notary: NotaryArgs,
}

fn item_json(item: &Expiring) -> serde_json::Value {
    serde_json::json!({
        "what": item.what,
        "expires": trustd_notary::model::format_expires(item.expires),
        "days_left": item.days_left,
        "soon": item.soon,
        "renew": item.renew,
    })
}

pub async fn run(args: CheckArgs) -> Result<(), CliError> {
    let store = args.notary.trust_store();
    let now = time::OffsetDateTime::now_utc();
    let mut reports = Vec::new();
    let mut worst: u8 = 0;
    for text in &args.repositories {
        let image = ImageRef::parse_repository(text).map_err(CliError::Usage)?;
        let server = args.notary.server(&image)?;
        let repo = match trust::update(&server, &store, &image.gun, now).await {
            Ok(repo) => repo,
            Err(error) => {
                // An expired role fails verification: that is what check is for, too.
                let error = trust_error(text, &server, error);
                eprintln!("trustctl: {}", sanitize(&error.to_string()));
                worst = worst.max(error.exit_code());
                reports.push(serde_json::json!({
                    "repository": image.gun,
                    "ok": false,
                    "error": error.to_string(),
                    "items": [],
                }));
                continue;
            }
        };
        let items = expiry::expiring(&repo, now);
        let soon: Vec<&Expiring> = items.iter().filter(|i| i.soon).collect();
        if !soon.is_empty() {
            worst = worst.max(1);
        }
        if !args.json {
            match soon.as_slice() {
                [] => println!(
                    "{}: ok (first to expire: {}, in {} days)",
                    sanitize(&image.gun),
                    sanitize(&items.first().map(|i| i.what.clone()).unwrap_or_default()),
                    items.first().map_or(0, |i| i.days_left)
                ),
                soon => {
                    for item in soon {
                        println!("{}", sanitize(&expiry_sentence(&image.gun, item)));
                    }
                }
            }
        }
        reports.push(serde_json::json!({
            "repository": image.gun,
            "ok": soon.is_empty(),
            "items": items.iter().map(item_json).collect::<Vec<_>>(),
        }));
    }
    if args.json {
        let document = serde_json::json!({"schema_version": 1, "repositories": reports});
        println!(
            "{}",
            serde_json::to_string_pretty(&document).expect("JSON values serialize")
        );
    }
    match worst {
        0 => Ok(()),
        code => Err(CliError::Reported(code)),
    }
}
