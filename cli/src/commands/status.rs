//! `trustctl status`: is trustd up, and can each backend sign right now?

use trustctl::client::Trustd;

use clap::Args;
use trustctl::client;
use trustctl::error::CliError;
use trustd_proto as pb;

use super::algorithm_name;

#[derive(Args)]
pub struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn state_name(value: i32) -> &'static str {
    match pb::BackendState::try_from(value) {
        Ok(pb::BackendState::Ready) => "ready",
        Ok(pb::BackendState::Locked) => "locked",
        Ok(pb::BackendState::Unavailable) => "unavailable",
        Ok(pb::BackendState::Misconfigured) => "misconfigured",
        _ => "unknown",
    }
}

pub async fn run(trustd: &Trustd, args: StatusArgs) -> Result<(), CliError> {
    let mut client = client::connect(trustd).await?;
    let status = client
        .status(pb::StatusRequest {})
        .await
        .map_err(|s| CliError::from_status("cannot read trustd's status", s))?
        .into_inner();
    let all_ready = status
        .backends
        .iter()
        .all(|b| b.state == pb::BackendState::Ready as i32);
    let any_unavailable = status
        .backends
        .iter()
        .any(|b| b.state == pb::BackendState::Unavailable as i32);
    if args.json {
        let backends: Vec<_> = status
            .backends
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name,
                    "state": state_name(b.state),
                    "device": b.device,
                    "detail": b.detail,
                    "queued": b.queued,
                    "queue_depth": b.queue_depth,
                    "algorithms": b.algorithms.iter().map(|a| algorithm_name(*a)).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                // docs/json/status.schema.json; bumped only for a change that is not an addition.
                "schema_version": 1,
                "version": status.version,
                "keys": status.keys,
                "requests_in_flight": status.requests_in_flight,
                "protection": status.protection.as_ref().map(|p| serde_json::json!({
                    "connections_open": p.connections_open,
                    "connections_refused": p.connections_refused,
                    "requests_refused": p.requests_refused,
                    "buffered_bytes": p.buffered_bytes,
                })),
                "backends": backends,
            }))
            .expect("JSON serializes")
        );
    } else {
        println!(
            "trustd {} at {}: {} keys, {} requests in flight",
            status.version, trustd, status.keys, status.requests_in_flight
        );
        if let Some(p) = status
            .protection
            .as_ref()
            .filter(|p| p.connections_refused + p.requests_refused > 0)
        {
            println!(
                "  refused since start: {} connections (over limits.max_connections*), {} requests (no rule, too large or over the buffer budget)",
                p.connections_refused, p.requests_refused
            );
        }
        for b in &status.backends {
            println!("\nbackend {:?}: {}", b.name, state_name(b.state));
            println!("  device:     {}", b.device);
            if !b.algorithms.is_empty() {
                let names: Vec<_> = b.algorithms.iter().map(|a| algorithm_name(*a)).collect();
                println!("  algorithms: {}", names.join(", "));
            }
            if b.queue_depth > 0 {
                println!("  queue:      {} of {} waiting", b.queued, b.queue_depth);
            }
            if b.state != pb::BackendState::Ready as i32 {
                println!("  problem:    {}", b.detail);
            } else if b.detail != "ready" && !b.detail.is_empty() {
                println!("  detail:     {}", b.detail);
            }
        }
    }
    // The README's table: a device that is not there is 3; one that is there but locked or
    // misconfigured is 1.
    if all_ready {
        Ok(())
    } else if any_unavailable {
        Err(CliError::Unreachable(
            "not every backend is ready (see above)".into(),
        ))
    } else {
        Err(CliError::Failed(
            "not every backend is ready (see above)".into(),
        ))
    }
}
