//! trustd's TOML configuration.
//!
//! Parsing is strict (`deny_unknown_fields`): a misspelled policy key must stop the daemon at
//! startup instead of silently granting or denying something other than what was written.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::operation::Operation;
use crate::secret::SecretSource;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {}", read_failure(error))]
    Read {
        path: PathBuf,
        // Not a `source`: the message already says it, and a chain would say it twice.
        error: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Why a config file could not be read, in words and with what to do (no "os error N").
fn read_failure(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            "no such file; give the right path with --config".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied; the user trustd runs as must be able to read it".to_owned()
        }
        std::io::ErrorKind::IsADirectory => "it is a directory, not a file".to_owned(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the key inventory (public data only) is kept.
    pub state_dir: PathBuf,
    pub socket: SocketConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Remote callers over mutual TLS (notary-server, CI runners on other machines).
    pub tls_listener: Option<TlsListenerConfig>,
    /// notary-signer's API on the TLS listener, for notary-server.
    pub notary_signer: Option<NotarySignerConfig>,
    /// Prometheus metrics, off unless configured.
    pub metrics: Option<MetricsConfig>,
}

/// Where Prometheus scrapes trustd. Metrics are opt-in: they are a second listener, and under
/// the packaged unit (PrivateNetwork=yes) a TCP address needs a drop-in to be reachable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// "127.0.0.1:9464" (TCP) or an absolute path (a Unix socket, mode 0660).
    pub listen: MetricsListen,
}

/// A TCP address or a Unix socket path, told apart by the leading `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsListen {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl<'de> Deserialize<'de> for MetricsListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.starts_with('/') {
            return Ok(MetricsListen::Unix(PathBuf::from(text)));
        }
        text.parse().map(MetricsListen::Tcp).map_err(|_| {
            serde::de::Error::custom(format!(
                "metrics.listen {text:?} is neither host:port (\"127.0.0.1:9464\") nor an absolute socket path"
            ))
        })
    }
}

/// The mutual-TLS listener. Its server key is a file (like any TLS server's); the signing
/// keys stay on the devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// `host:port` to listen on, e.g. "0.0.0.0:7899".
    pub address: std::net::SocketAddr,
    /// The server certificate chain (PEM), leaf first.
    pub certificate: PathBuf,
    /// The server certificate's private key (PEM, PKCS#8 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) client certificates must chain to.
    pub client_ca: PathBuf,
}

/// notary-signer's API: where the keys notary-server asks for are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotarySignerConfig {
    /// The backend (name or kind) that generates and holds notary-server's keys.
    pub backend: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    pub path: PathBuf,
    /// Octal permission bits for the socket file, as a string ("0660").
    #[serde(default = "default_socket_mode")]
    pub mode: String,
    /// Group that owns the socket file (name or numeric gid); unset keeps the daemon's group.
    pub group: Option<String>,
}

fn default_socket_mode() -> String {
    "0660".to_owned()
}

impl SocketConfig {
    pub fn mode_bits(&self) -> Result<u32, String> {
        let digits = self.mode.trim_start_matches("0o");
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!(
                    "socket.mode {:?} is not an octal permission like \"0660\"",
                    self.mode
                )
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest message a caller may send to be signed; bigger payloads must be sent as a
    /// SHA-256 digest (trustctl does that by itself).
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// Requests handled at once on one connection.
    #[serde(default = "default_per_connection")]
    pub max_concurrent_requests_per_connection: usize,
    /// A request that has not finished by then is answered DeadlineExceeded.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Connections open at once, from everyone.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one uid: a flood from one user leaves room for others.
    #[serde(default = "default_max_connections_per_uid")]
    pub max_connections_per_uid: usize,
    /// A connection that has not sent its first bytes by then is closed.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// A connection from which nothing arrives for this long is closed (live clients answer
    /// trustd's keepalive pings every 30 s, so only dead or hostile ones go quiet).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Bytes of request messages trustd buffers at once before handing them to a handler,
    /// from everyone; beyond it requests are refused with ResourceExhausted.
    #[serde(default = "default_max_buffered")]
    pub max_buffered_bytes: usize,
    /// The same, from one uid.
    #[serde(default = "default_max_buffered_per_uid")]
    pub max_buffered_bytes_per_uid: usize,
}

fn default_max_payload() -> usize {
    1024 * 1024
}
fn default_per_connection() -> usize {
    64
}
fn default_request_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_uid() -> usize {
    32
}
fn default_handshake_timeout() -> u64 {
    5
}
fn default_idle_timeout() -> u64 {
    120
}
fn default_max_buffered() -> usize {
    128 * 1024 * 1024
}
fn default_max_buffered_per_uid() -> usize {
    16 * 1024 * 1024
}

impl Limits {
    /// The largest Sign message: the payload and room for the rest of the request.
    pub fn max_sign_message(&self) -> usize {
        self.max_payload_bytes + 64 * 1024
    }

    fn validate(&self) -> Result<(), String> {
        let l = self;
        if l.max_connections == 0 || l.max_connections_per_uid == 0 {
            return Err(
                "limits.max_connections and max_connections_per_uid must be at least 1".into(),
            );
        }
        if l.max_connections_per_uid > l.max_connections {
            return Err(
                "limits.max_connections_per_uid cannot exceed limits.max_connections".into(),
            );
        }
        if l.handshake_timeout_secs == 0 || l.idle_timeout_secs == 0 {
            return Err(
                "limits.handshake_timeout_secs and idle_timeout_secs must be at least 1".into(),
            );
        }
        if l.idle_timeout_secs <= 30 {
            return Err("limits.idle_timeout_secs must exceed the 30 s keepalive interval".into());
        }
        if l.max_buffered_bytes_per_uid < l.max_sign_message() {
            return Err(format!(
                "limits.max_buffered_bytes_per_uid must hold at least one Sign request of max_payload_bytes: {} or more",
                l.max_sign_message()
            ));
        }
        if l.max_buffered_bytes < l.max_buffered_bytes_per_uid {
            return Err(
                "limits.max_buffered_bytes cannot be less than max_buffered_bytes_per_uid".into(),
            );
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: default_max_payload(),
            max_concurrent_requests_per_connection: default_per_connection(),
            request_timeout_secs: default_request_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_uid: default_max_connections_per_uid(),
            handshake_timeout_secs: default_handshake_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_buffered_bytes: default_max_buffered(),
            max_buffered_bytes_per_uid: default_max_buffered_per_uid(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub sink: AuditSinkKind,
    /// Required when `sink = "file"`: JSON lines are appended here.
    pub path: Option<PathBuf>,
    /// The trustd key that signs checkpoints of the audit chain (see `audit::checkpoint`);
    /// no checkpoints when unset. No caller may sign with it.
    pub checkpoint_key: Option<String>,
    /// A checkpoint once this many records were written since the last one...
    #[serde(default = "default_checkpoint_records")]
    pub checkpoint_every_records: u64,
    /// ...and every this many seconds when records were written since (and at shutdown).
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_every_secs: u64,
}

fn default_checkpoint_records() -> u64 {
    1000
}

fn default_checkpoint_secs() -> u64 {
    300
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            sink: AuditSinkKind::default(),
            path: None,
            checkpoint_key: None,
            checkpoint_every_records: default_checkpoint_records(),
            checkpoint_every_secs: default_checkpoint_secs(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditSinkKind {
    #[default]
    Stderr,
    File,
}

/// One hardware backend. The `type` key selects the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BackendConfig {
    Pkcs11(Pkcs11Config),
    Tpm(TpmConfig),
    Piv(PivConfig),
}

impl BackendConfig {
    /// The `type` this backend was configured with.
    pub fn kind_name(&self) -> &'static str {
        match self {
            BackendConfig::Pkcs11(_) => "pkcs11",
            BackendConfig::Tpm(_) => "tpm",
            BackendConfig::Piv(_) => "piv",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            BackendConfig::Pkcs11(c) => &c.name,
            BackendConfig::Tpm(c) => &c.name,
            BackendConfig::Piv(c) => &c.name,
        }
    }
}

/// A TPM 2.0, driven natively through tpm2-tss's ESAPI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    pub name: String,
    /// tpm2-tss TCTI: `device:/dev/tpmrm0` (the kernel's resource manager) in production,
    /// `swtpm:host=127.0.0.1,port=2321` for a software TPM.
    #[serde(default = "default_tcti")]
    pub tcti: String,
    /// The owner hierarchy's auth value, when one is set (`tpm2_changeauth -c owner`).
    pub owner_auth: Option<SecretSource>,
    /// The auth value keys generated on this backend are created with, and signed with.
    /// Without it keys need no auth value: the socket policy is then their only guard.
    pub key_auth: Option<SecretSource>,
    /// Requests waiting for the TPM; beyond this, callers wait up to `queue_wait_ms` for room
    /// and then get ResourceExhausted. A real TPM signs 15-40 times a second.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    #[serde(default = "default_queue_wait_ms")]
    pub queue_wait_ms: u64,
    /// Signing keys kept loaded in the TPM between requests (object slots are scarce: a TPM
    /// without a resource manager has 3).
    #[serde(default = "default_loaded_keys")]
    pub loaded_keys: usize,
}

/// A YubiKey (or another PIV card that speaks Yubico's extensions), through pcscd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivConfig {
    pub name: String,
    /// The card's serial number; required when several YubiKeys are plugged in.
    pub serial: Option<u32>,
    /// Where the PIN comes from; without it, an authorized caller hands it over with
    /// `trustctl token piv unlock` and trustd keeps it in memory only.
    pub pin: Option<SecretSource>,
    /// The management key (48 hex digits, 3DES); without it, trustd uses the PIN-protected
    /// key `trustctl token piv init` stores on the card.
    pub management_key: Option<SecretSource>,
    /// Slots trustd may generate keys in, in the order it fills them.
    #[serde(default = "default_piv_slots")]
    pub slots: Vec<String>,
    #[serde(default = "default_piv_queue_depth")]
    pub queue_depth: usize,
    #[serde(default = "default_queue_wait_ms")]
    pub queue_wait_ms: u64,
}

pub fn default_piv_slots() -> Vec<String> {
    let mut slots: Vec<String> = ["9c", "9a"].iter().map(|s| s.to_string()).collect();
    slots.extend((0x82..=0x95).map(|s: u8| format!("{s:02x}")));
    slots
}

fn default_piv_queue_depth() -> usize {
    16
}

fn default_tcti() -> String {
    "device:/dev/tpmrm0".to_owned()
}
fn default_queue_depth() -> usize {
    32
}
fn default_queue_wait_ms() -> u64 {
    2000
}
fn default_loaded_keys() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    pub name: String,
    /// Path of the PKCS#11 module (shared library).
    pub module: PathBuf,
    /// Find the token by label...
    pub token_label: Option<String>,
    /// ...or by serial number (slot numbers are not stable: SoftHSM renumbers them).
    pub token_serial: Option<String>,
    /// Where the user PIN comes from.
    pub pin: SecretSource,
    /// Sessions kept open and logged in; bounds the signs in flight on this token.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Threads making device calls (at most `sessions`). Default: one per CPU, which suits
    /// software and local tokens; raise it towards `sessions` for network HSMs, whose calls
    /// mostly wait.
    pub threads: Option<usize>,
}

impl Pkcs11Config {
    pub fn worker_threads(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.threads.unwrap_or(cpus).clamp(1, self.sessions)
    }
}

fn default_sessions() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// Grants some callers some operations on some keys. Everything not granted is denied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A note for humans; appears in denial logs.
    #[serde(default)]
    pub description: String,
    /// User names or numeric uids.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names or numeric gids (primary or supplementary groups of the caller).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Remote clients of the TLS listener, by certificate: `CN=name` matches the subject CN,
    /// a pattern with `://` the URI names (SPIFFE IDs), anything else the DNS names (`*` and
    /// `?` wildcards).
    #[serde(default)]
    pub clients: Vec<String>,
    /// Key name patterns (`*` and `?` wildcards).
    pub keys: Vec<String>,
    pub operations: Vec<Operation>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.socket.mode_bits()?;
        if self.audit.sink == AuditSinkKind::File && self.audit.path.is_none() {
            return Err("audit.sink = \"file\" needs audit.path".into());
        }
        if self.audit.checkpoint_key.is_some()
            && (self.audit.checkpoint_every_records == 0 || self.audit.checkpoint_every_secs == 0)
        {
            return Err(
                "audit.checkpoint_every_records and audit.checkpoint_every_secs must be at least 1"
                    .into(),
            );
        }
        if self.limits.max_payload_bytes == 0
            || self.limits.max_payload_bytes > trustd_proto::MAX_MESSAGE_BYTES - 64 * 1024
        {
            return Err(format!(
                "limits.max_payload_bytes must be between 1 and {}",
                trustd_proto::MAX_MESSAGE_BYTES - 64 * 1024
            ));
        }
        self.limits.validate()?;
        let mut names = std::collections::HashSet::new();
        for backend in &self.backends {
            if !names.insert(backend.name()) {
                return Err(format!("two backends are named {:?}", backend.name()));
            }
            match backend {
                BackendConfig::Pkcs11(c) => {
                    if c.token_label.is_none() && c.token_serial.is_none() {
                        return Err(format!(
                            "backend {:?}: set token_label or token_serial",
                            c.name
                        ));
                    }
                    if c.sessions == 0 || c.sessions > 256 {
                        return Err(format!(
                            "backend {:?}: sessions must be between 1 and 256",
                            c.name
                        ));
                    }
                }
                BackendConfig::Tpm(c) => {
                    if c.queue_depth == 0 || c.queue_depth > 4096 {
                        return Err(format!(
                            "backend {:?}: queue_depth must be between 1 and 4096",
                            c.name
                        ));
                    }
                    if c.loaded_keys > 8 {
                        return Err(format!(
                            "backend {:?}: loaded_keys must be at most 8",
                            c.name
                        ));
                    }
                    c.tcti
                        .parse::<tss_esapi::tcti_ldr::TctiNameConf>()
                        .map_err(|e| {
                            format!("backend {:?}: tcti {:?} is not valid: {e}", c.name, c.tcti)
                        })?;
                }
                BackendConfig::Piv(_) => {}
            }
        }
        for backend in &self.backends {
            if let BackendConfig::Piv(c) = backend {
                if c.queue_depth == 0 || c.queue_depth > 4096 {
                    return Err(format!(
                        "backend {:?}: queue_depth must be between 1 and 4096",
                        c.name
                    ));
                }
                for slot in &c.slots {
                    let ok = matches!(slot.as_str(), "9a" | "9c" | "9d" | "9e")
                        || u8::from_str_radix(slot, 16).is_ok_and(|s| (0x82..=0x95).contains(&s));
                    if !ok || slot.len() != 2 {
                        return Err(format!(
                            "backend {:?}: {slot:?} is not a PIV key slot (9a, 9c, 9d, 9e, 82-95)",
                            c.name
                        ));
                    }
                }
            }
        }
        for (i, rule) in self.policy.rules.iter().enumerate() {
            if rule.users.is_empty() && rule.groups.is_empty() && rule.clients.is_empty() {
                return Err(format!(
                    "policy rule {} names no users, groups or clients: it would match nobody",
                    i + 1
                ));
            }
            if !rule.clients.is_empty() && self.tls_listener.is_none() {
                return Err(format!(
                    "policy rule {} names clients, but there is no [tls_listener] for them to call",
                    i + 1
                ));
            }
        }
        if let Some(signer) = &self.notary_signer {
            if self.tls_listener.is_none() {
                return Err("[notary_signer] needs a [tls_listener]: notary-server reaches its signer over mutual TLS".into());
            }
            let known = self
                .backends
                .iter()
                .any(|b| b.name() == signer.backend || b.kind_name() == signer.backend);
            if !known {
                return Err(format!(
                    "notary_signer.backend {:?} is neither the name nor the type of a configured [[backend]]",
                    signer.backend
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config/trustd.example.toml");

    #[test]
    fn example_config_parses() {
        let config = Config::parse(Path::new("example"), EXAMPLE).expect("example parses");
        assert_eq!(config.backends.len(), 1);
        assert_eq!(config.socket.mode_bits().unwrap(), 0o660);
        assert!(!config.policy.rules.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = EXAMPLE.replace("[socket]", "[socket]\nmdoe = \"0600\"");
        let err = Config::parse(Path::new("x"), &text).unwrap_err();
        assert!(err.to_string().contains("mdoe"), "{err}");
    }

    #[test]
    fn bad_mode_is_rejected() {
        let text = EXAMPLE.replace("mode = \"0660\"", "mode = \"rw-rw----\"");
        let err = Config::parse(Path::new("x"), &text).unwrap_err();
        assert!(err.to_string().contains("octal"), "{err}");
    }

    #[test]
    fn tpm_backend_parses_with_defaults_and_checks_its_tcti() {
        let tpm = EXAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("# [[backend]]"))
            .take_while(|l| !l.is_empty())
            .map(|l| l.trim_start_matches("# "))
            .filter(|l| l.starts_with("[[") || l.contains(" = "))
            .filter(|l| !l.contains("_auth"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("{EXAMPLE}\n{tpm}\n");
        let config =
            Config::parse(Path::new("x"), &text).expect("the example's TPM backend parses");
        let BackendConfig::Tpm(c) = &config.backends[1] else {
            panic!("not a TPM backend: {:?}", config.backends[1]);
        };
        assert_eq!(c.tcti, "device:/dev/tpmrm0");
        assert_eq!(
            (c.queue_depth, c.queue_wait_ms, c.loaded_keys),
            (32, 2000, 1)
        );
        let bad = text.replace("device:/dev/tpmrm0", "bogus-tcti");
        let err = Config::parse(Path::new("x"), &bad).unwrap_err();
        assert!(err.to_string().contains("tcti"), "{err}");
    }

    #[test]
    fn metrics_listen_is_an_address_or_an_absolute_path() {
        let parse = |listen: &str| {
            Config::parse(
                Path::new("x"),
                &format!("{EXAMPLE}\n[metrics]\nlisten = \"{listen}\"\n"),
            )
            .map(|c| c.metrics.unwrap().listen)
        };
        assert_eq!(
            parse("127.0.0.1:9464").unwrap(),
            MetricsListen::Tcp("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse("/run/trustd-metrics/metrics.sock").unwrap(),
            MetricsListen::Unix("/run/trustd-metrics/metrics.sock".into())
        );
        for bad in ["localhost:9464", "9464", "metrics.sock", ""] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("neither host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn rule_without_subjects_is_rejected() {
        let text = format!("{EXAMPLE}\n[[policy.rule]]\nkeys = [\"*\"]\noperations = [\"sign\"]\n");
        let err = Config::parse(Path::new("x"), &text).unwrap_err();
        assert!(err.to_string().contains("match nobody"), "{err}");
    }
}
