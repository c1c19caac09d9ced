//! `trustd-e2e-attack MODE ...`: what a hostile local user does to trustd's socket, for tests
//! that run it under another uid (setpriv). Prints one JSON line of what it saw.
//!
//! - `idle SOCKET N HOLD_SECS`: opens N connections that never send a byte and holds them;
//!   reports how many connected and how many trustd closed.
//! - `partial SOCKET PATH CONNS STREAMS DECLARED SENT HOLD_SECS`: on CONNS HTTP/2
//!   connections, starts STREAMS requests to gRPC method PATH, each declaring a DECLARED-byte
//!   message and sending only SENT bytes of it, then holds them; reports the statuses trustd
//!   answered with meanwhile.
//! - `impostor SOCKET HOLD_SECS`: serves SOCKET as a fake trustd would (accepts, reads) and
//!   reports how many bytes callers sent it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};

fn usage() -> ! {
    eprintln!("usage: trustd-e2e-attack idle SOCKET N HOLD_SECS | partial SOCKET PATH CONNS STREAMS DECLARED SENT HOLD_SECS | impostor SOCKET HOLD_SECS");
    std::process::exit(2)
}

fn num(text: &str) -> u64 {
    text.parse().unwrap_or_else(|_| usage())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = match args.as_slice() {
        ["idle", socket, n, hold] => idle(socket, num(n), num(hold)).await,
        ["partial", socket, path, conns, streams, declared, sent, hold] => {
            partial(
                socket,
                path,
                num(conns),
                num(streams),
                num(declared),
                num(sent),
                num(hold),
            )
            .await
        }
        ["impostor", socket, hold] => impostor(socket, num(hold)).await,
        _ => usage(),
    };
    println!("{report}");
}

/// Room for a flood on this side: the soft descriptor limit up to the hard one.
// unsafe_code allowed here: getrlimit and setrlimit (FFI).
#[allow(unsafe_code)]
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn idle(socket: &str, n: u64, hold: u64) -> serde_json::Value {
    raise_descriptor_limit();
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match UnixStream::connect(socket).await {
            Ok(stream) => streams.push(stream),
            Err(_) => refused += 1,
        }
    }
    let connected = streams.len();
    // Each connection: did trustd close it (read returns 0 or an error) before the hold ends?
    let deadline = tokio::time::Instant::now() + Duration::from_secs(hold);
    let mut tasks = Vec::new();
    for mut stream in streams {
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Err(_) => return (false, None),
                    Ok(Ok(0)) | Ok(Err(_)) => return (true, Some(Instant::now())),
                    Ok(Ok(_)) => continue,
                }
            }
        }));
    }
    let started = Instant::now();
    let mut closed = 0;
    let mut last_close = Duration::ZERO;
    for task in tasks {
        if let (true, Some(at)) = task.await.unwrap() {
            closed += 1;
            last_close = last_close.max(at.duration_since(started));
        }
    }
    serde_json::json!({
        "connected": connected,
        "refused_at_connect": refused,
        "closed_by_server": closed,
        "last_close_ms": last_close.as_millis() as u64,
    })
}

async fn partial(
    socket: &str,
    path: &str,
    conns: u64,
    streams: u64,
    declared: u64,
    sent: u64,
    hold: u64,
) -> serde_json::Value {
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut held = Vec::new();
    // One buffer shared by every stream (they all send the same bytes).
    let mut message = Vec::with_capacity(sent.max(5) as usize);
    message.push(0);
    message.extend_from_slice(&(declared as u32).to_be_bytes());
    message.resize(sent.max(5) as usize, b'A');
    let message = Bytes::from(message);
    for _ in 0..conns {
        let Ok(io) = UnixStream::connect(socket).await else {
            *statuses.entry("connect failed".into()).or_default() += 1;
            continue;
        };
        let Ok((client, connection)) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .handshake::<_, Bytes>(io)
            .await
        else {
            *statuses.entry("handshake failed".into()).or_default() += 1;
            continue;
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..streams {
            let client = client.clone();
            let path = path.to_owned();
            let message = message.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(mut ready) = client.ready().await else {
                    return ("stream refused".to_owned(), None);
                };
                let request = http::Request::builder()
                    .method("POST")
                    .uri(format!("http://trustd{path}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap();
                let Ok((response, mut body)) = ready.send_request(request, false) else {
                    return ("send failed".to_owned(), None);
                };
                let mut data = message;
                let mut sent_any = false;
                // Send what flow control allows, in pieces, without ever finishing.
                while !data.is_empty() {
                    body.reserve_capacity(data.len().min(64 * 1024));
                    let capacity = match tokio::time::timeout(
                        Duration::from_secs(2),
                        std::future::poll_fn(|cx| body.poll_capacity(cx)),
                    )
                    .await
                    {
                        Ok(Some(Ok(n))) if n > 0 => n,
                        _ => break,
                    };
                    let piece = data.split_to(capacity.min(data.len()));
                    if body.send_data(piece, false).is_err() {
                        break;
                    }
                    sent_any = true;
                }
                let held = match (sent_any, data.is_empty()) {
                    (false, _) => "held: flow control let nothing out",
                    (true, false) => "held: flow control stopped it",
                    (true, true) => "held: sent",
                };
                match tokio::time::timeout(Duration::from_secs(hold), response).await {
                    Err(_) => (held.to_owned(), Some(body)),
                    Ok(Err(e)) => (format!("reset: {e}"), None),
                    Ok(Ok(response)) => {
                        let grpc = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let code = match grpc {
                            Some(code) => code,
                            None => {
                                let mut body = response.into_body();
                                while let Some(Ok(_)) = body.data().await {}
                                match body.trailers().await {
                                    Ok(Some(t)) => t
                                        .get("grpc-status")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("?")
                                        .to_owned(),
                                    _ => "no status".to_owned(),
                                }
                            }
                        };
                        (format!("grpc-status {code}"), None)
                    }
                }
            }));
        }
        held.push(client);
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        drop(body);
    }
    serde_json::json!({ "statuses": statuses })
}

async fn impostor(socket: &str, hold: u64) -> serde_json::Value {
    let listener = UnixListener::bind(socket).expect("bind the impostor socket");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(hold);
    let mut received = 0u64;
    let mut connections = 0u64;
    loop {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout_at(deadline, listener.accept()).await
        else {
            break;
        };
        connections += 1;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            received += n as u64;
        }
    }
    let _ = std::fs::remove_file(socket);
    serde_json::json!({ "connections": connections, "bytes_received": received })
}
