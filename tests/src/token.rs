//! A registry token service (the Docker distribution token protocol), the kind Docker Hub
//! runs at auth.docker.io: it checks a user's basic credentials and issues an ES256 JWT
//! granting the requested repository actions. docker-registry and notary-server are
//! configured to trust its certificate, so the tokens it issues are checked for real.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;

use crate::ca::TestCa;
use crate::http::{HttpServer, Response};

pub const ISSUER: &str = "trustd-test-token-issuer";

pub struct TokenService {
    pub realm: String,
    /// The certificate (PEM) servers verify tokens with.
    pub cert: PathBuf,
    /// One line per token request: "user scope" ("-" for an anonymous one).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Repositories the service grants pull on but never push, as a registry's access
    /// rules would for a protected project.
    read_only: Arc<Mutex<HashSet<String>>>,
    _server: HttpServer,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl TokenService {
    /// Issues tokens to `user` with `password`; anonymous requests get tokens with no access.
    pub fn start(ca: &TestCa, user: &str, password: &str) -> TokenService {
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=trustd test token issuer",
        ]);
        let key_pem = std::fs::read_to_string(ca.dir.path().join("token.key")).unwrap();
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&key_pem).unwrap();
        let cert_pem = std::fs::read(ca.dir.path().join("token.crt")).unwrap();
        let cert_der = pem::parse(&cert_pem).unwrap().into_contents();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let read_only: Arc<Mutex<HashSet<String>>> = Arc::default();
        let protected = read_only.clone();
        let user = user.to_owned();
        // Over TLS, as every real token service: trustctl sends credentials only over HTTPS.
        let (server_cert, server_key) = ca.server_cert();
        let server = HttpServer::start(Some((&server_cert, &server_key)), move |request| {
            let scopes = request.query("scope");
            let service = request.query("service").pop().unwrap_or_default();
            let who = match request.header("authorization") {
                None => None,
                Some(given) if given == expected => Some(user.clone()),
                Some(_) => {
                    log.lock()
                        .unwrap()
                        .push(format!("refused {}", scopes.join(" ")));
                    return Response::new(401, r#"{"details":"wrong user name or password"}"#)
                        .header("Content-Type", "application/json");
                }
            };
            log.lock().unwrap().push(format!(
                "{} {}",
                who.as_deref().unwrap_or("-"),
                scopes.join(" ")
            ));
            let access: Vec<serde_json::Value> = scopes
                .iter()
                .filter_map(|scope| {
                    // type:name:actions, where a name (a notary GUN) may hold a port's colon.
                    let (kind, rest) = scope.split_once(':')?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    let read_only = protected.lock().unwrap().contains(name);
                    let actions: Vec<&str> = match who {
                        Some(_) => actions
                            .split(',')
                            .filter(|action| !(read_only && *action == "push"))
                            .collect(),
                        None => Vec::new(),
                    };
                    Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
                })
                .collect();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let header = serde_json::json!({
                "typ": "JWT",
                "alg": "ES256",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)],
            });
            let claims = serde_json::json!({
                "iss": ISSUER,
                "sub": who.clone().unwrap_or_default(),
                "aud": service,
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": format!("{now}-{}", rand::random::<u64>()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
            let token = format!("{signing_input}.{}", b64url(&signature.to_bytes()));
            Response::new(
                200,
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                    .to_string(),
            )
            .header("Content-Type", "application/json")
        });
        TokenService {
            realm: format!("{}/token", server.url),
            cert: ca.dir.path().join("token.crt"),
            requests,
            read_only,
            _server: server,
        }
    }

    /// From now on, tokens for `repository` grant pull but not push.
    pub fn make_read_only(&self, repository: &str) {
        self.read_only.lock().unwrap().insert(repository.to_owned());
    }

    /// Tokens for `repository` grant push again.
    pub fn make_writable(&self, repository: &str) {
        self.read_only.lock().unwrap().remove(repository);
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
