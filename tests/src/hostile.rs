//! A notary server that lies: an HTTPS proxy in front of a real notary-server that passes
//! everything through except the role files a test tampers with (truncated, corrupted,
//! oversized, replayed from an older version, taken from another repository, or answered
//! with an error).

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::http::{HttpServer, Response};
use crate::notary::NotaryServer;

/// What to serve for a role instead of the real file; gets the real file (if any).
pub type Tamper = Arc<dyn Fn(Option<Vec<u8>>) -> Response + Send + Sync>;

pub struct HostileNotary {
    pub url: String,
    tampers: Arc<Mutex<HashMap<String, Tamper>>>,
    _server: HttpServer,
}

/// The role a TUF file name is for: `targets` for `targets.json` and `targets.<sha>.json`.
fn role_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

impl HostileNotary {
    /// A proxy to `upstream`, with TLS from the same CA.
    pub fn start(upstream: &NotaryServer) -> HostileNotary {
        let tampers: Arc<Mutex<HashMap<String, Tamper>>> = Arc::default();
        let (cert, key) = upstream.ca.server_cert();
        let upstream_url = upstream.url.clone();
        let ca = upstream.ca.ca_cert();
        let table = tampers.clone();
        let server = HttpServer::start(Some((&cert, &key)), move |request| {
            let file = request
                .path()
                .rsplit_once("/_trust/tuf/")
                .map(|(_, f)| f.to_owned())
                .unwrap_or_default();
            let tamper = table.lock().unwrap().get(role_of(&file)).cloned();
            let out = Command::new("curl")
                .args(["--silent", "--cacert"])
                .arg(&ca)
                .args(["-X", &request.method, "-w", "\n%{http_code}"])
                .arg(format!("{upstream_url}{}", request.target))
                .output()
                .expect("curl runs");
            let mut body = out.stdout;
            let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            let status: u16 = String::from_utf8_lossy(&body[split + 1..])
                .trim()
                .parse()
                .unwrap_or(502);
            body.truncate(split);
            match tamper {
                Some(tamper) if request.method == "GET" => tamper((status == 200).then_some(body)),
                _ => Response::new(status, body).header("Content-Type", "application/json"),
            }
        });
        HostileNotary {
            url: server.url.clone(),
            tampers,
            _server: server,
        }
    }

    /// Serves `tamper`'s answer for every file of `role` from now on.
    pub fn tamper(
        &self,
        role: &str,
        tamper: impl Fn(Option<Vec<u8>>) -> Response + Send + Sync + 'static,
    ) {
        self.tampers
            .lock()
            .unwrap()
            .insert(role.to_owned(), Arc::new(tamper));
    }

    /// Serves every role as it is again.
    pub fn honest(&self) {
        self.tampers.lock().unwrap().clear();
    }
}
