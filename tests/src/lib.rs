//! Test harness: real SoftHSM2 tokens and real trustd processes, each in its own temp dir.
//!
//! Every test builds what it needs (a token, a config, a daemon on a private socket) and the
//! guards here stop exactly the processes they started when dropped, so tests stay independent
//! and can run in parallel.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod bench;
pub mod ca;
pub mod dct;
pub mod forged;
pub mod forwarder;
pub mod hostile;
pub mod http;
pub mod notary;
pub mod piv;
pub mod registry;
pub mod signer_bench;
pub mod token;
pub mod tpm;

pub use trustctl::client::Client;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const USER_PIN: &str = "483921";
pub const SO_PIN: &str = "77553311";

/// Has the kernel stop a server the harness starts when the harness dies: a killed test run
/// or benchmark runs no destructors, and its servers must not outlive it. The signal follows
/// the thread that spawns the server, which is always the one that owns it.
// unsafe_code allowed here: pre_exec with prctl (FFI).
#[allow(unsafe_code)]
pub fn dies_with_harness(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let harness = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != harness {
                return Err(std::io::Error::other("the harness is gone"));
            }
            Ok(())
        })
    }
}

/// Path of a binary of this workspace (built by `cargo build --bins` before the tests run).
pub fn bin(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("{}_BIN", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, or scripts/test)",
        path.display()
    );
    path
}

/// A PKCS#11 token a test can point trustd at: SoftHSM2, or tpm2-pkcs11 over swtpm.
pub trait Pkcs11Token {
    fn module(&self) -> &str;
    fn label(&self) -> &str;
    /// The key algorithms (trustctl's names) the module can generate and sign with.
    fn algorithms(&self) -> &'static [&'static str];
    /// Environment the module reads its configuration from.
    fn module_env(&self) -> Vec<(String, String)>;

    /// Runs OpenSC's pkcs11-tool on this token, logged in as the user: an independent
    /// PKCS#11 client to check what trustd left on the token.
    fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .envs(self.module_env())
            .args(["--module", self.module(), "--token-label", self.label()])
            .args(["--login", "--pin", USER_PIN])
            .args(args)
            .output()
            .expect("pkcs11-tool runs (apt-get install opensc)")
    }

    /// What any PKCS#11 application logged in to this token can learn about the private key
    /// `label` (see the trustd-e2e-pkcs11-probe binary).
    fn probe_private_key(&self, label: &str) -> serde_json::Value {
        let out = Command::new(bin("trustd-e2e-pkcs11-probe"))
            .arg(label)
            .envs(self.module_env())
            .env("PROBE_MODULE", self.module())
            .env("PROBE_TOKEN", self.label())
            .env("PROBE_PIN", USER_PIN)
            .output()
            .expect("run the probe");
        assert!(
            out.status.success(),
            "probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("probe prints JSON")
    }
}

impl Pkcs11Token for SoftHsm {
    fn module(&self) -> &str {
        MODULE
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn algorithms(&self) -> &'static [&'static str] {
        &["ecdsa-p256", "ed25519", "rsa-3072"]
    }

    fn module_env(&self) -> Vec<(String, String)> {
        vec![("SOFTHSM2_CONF".into(), self.conf.display().to_string())]
    }
}

/// A SoftHSM2 token initialized in a private temp dir.
pub struct SoftHsm {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub label: String,
}

impl SoftHsm {
    pub fn new(label: &str) -> SoftHsm {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .output()
            .expect("softhsm2-util runs (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SoftHsm {
            dir,
            conf,
            label: label.to_owned(),
        }
    }

    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// The token's serial number, as softhsm2-util shows it.
    pub fn serial(&self) -> String {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .arg("--show-slots")
            .output()
            .expect("softhsm2-util runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut serial = None;
        for line in text.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("Serial number:") {
                serial = Some(value.trim().to_owned());
            }
            if line.strip_prefix("Label:").map(str::trim) == Some(self.label.as_str()) {
                return serial.expect("serial precedes label");
            }
        }
        panic!(
            "token {} not in softhsm2-util --show-slots:\n{text}",
            self.label
        );
    }
}

/// How a test wants trustd configured.
#[derive(Clone)]
pub struct Options {
    pub module: String,
    pub token_label: String,
    /// Find the token by serial instead of label.
    pub token_serial: Option<String>,
    /// Hand the PIN over as a systemd credential ($CREDENTIALS_DIRECTORY) instead of a file.
    pub pin_as_credential: bool,
    /// Written to the PIN file (mode 0600); None leaves no PIN file at all.
    pub pin: Option<String>,
    pub socket_mode: String,
    pub sessions: usize,
    pub max_payload_bytes: usize,
    /// `[[policy.rule]]` tables, TOML.
    pub policy: String,
    /// Where the audit log goes [default: a file in the work dir].
    pub audit_path: Option<PathBuf>,
    /// Extra environment for the trustd process.
    pub env: Vec<(String, String)>,
    /// `[[backend]]` tables (TOML) replacing the SoftHSM backend.
    pub backends: Option<String>,
    /// More `[limits]` lines (TOML).
    pub limits: String,
    /// More top-level tables (TOML), such as `[tls_listener]` and `[notary_signer]`.
    pub extra: String,
    /// More `[audit]` lines (TOML), such as `checkpoint_key`.
    pub audit_settings: String,
}

/// Root may do everything; nobody else anything.
pub const ROOT_ONLY: &str = r#"
[[policy.rule]]
description = "test administrator"
users = ["root"]
keys = ["*"]
operations = ["sign", "generate", "import", "delete", "list", "unlock", "provision"]
"#;

impl Options {
    pub fn for_token(token: &dyn Pkcs11Token) -> Options {
        Options {
            module: token.module().into(),
            token_label: token.label().into(),
            token_serial: None,
            pin_as_credential: false,
            pin: Some(USER_PIN.into()),
            socket_mode: "0600".into(),
            sessions: 4,
            max_payload_bytes: 1024 * 1024,
            policy: ROOT_ONLY.into(),
            audit_path: None,
            env: Vec::new(),
            backends: None,
            limits: String::new(),
            extra: String::new(),
            audit_settings: String::new(),
        }
    }

    /// trustd with the given backends (TOML `[[backend]]` tables) and no SoftHSM token.
    pub fn with_backends(backends: String) -> Options {
        Options {
            module: String::new(),
            token_label: String::new(),
            token_serial: None,
            pin_as_credential: false,
            pin: None,
            socket_mode: "0600".into(),
            sessions: 4,
            max_payload_bytes: 1024 * 1024,
            policy: ROOT_ONLY.into(),
            audit_path: None,
            env: Vec::new(),
            backends: Some(backends),
            limits: String::new(),
            extra: String::new(),
            audit_settings: String::new(),
        }
    }
}

/// A running trustd and its files.
pub struct Trustd {
    pub work: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub audit: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    /// The PKCS#11 module's environment (SOFTHSM2_CONF, TPM2_PKCS11_STORE, ...).
    module_env: Vec<(String, String)>,
    credentials_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Trustd {
    /// Writes the config and starts trustd; returns once it accepts connections.
    pub fn start(hsm: &dyn Pkcs11Token, options: &Options) -> Trustd {
        let mut trustd = Trustd::configure(hsm, options);
        trustd.spawn();
        trustd.wait_ready();
        trustd
    }

    /// Starts trustd with `options.backends` only (no SoftHSM token).
    pub fn launch(options: &Options) -> Trustd {
        let mut trustd = Trustd::configure_with(Vec::new(), options);
        trustd.spawn();
        trustd.wait_ready();
        trustd
    }

    /// Writes the config without starting trustd.
    pub fn configure(token: &dyn Pkcs11Token, options: &Options) -> Trustd {
        Trustd::configure_with(token.module_env(), options)
    }

    fn configure_with(module_env: Vec<(String, String)>, options: &Options) -> Trustd {
        let work = tempfile::tempdir().expect("temp dir");
        // Other uids (the `nobody` test) must be able to reach the socket inside.
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state_dir = work.path().join("state");
        let socket = work.path().join("trustd.sock");
        let audit = options
            .audit_path
            .clone()
            .unwrap_or_else(|| work.path().join("audit.jsonl"));
        let credentials_dir = options
            .pin_as_credential
            .then(|| work.path().join("credentials"));
        let pin_file = match &credentials_dir {
            Some(dir) => {
                std::fs::create_dir(dir).unwrap();
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
                dir.join("token-pin")
            }
            None => work.path().join("user.pin"),
        };
        if let Some(pin) = &options.pin {
            std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
            std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = work.path().join("trustd.toml");
        let trustd = Trustd {
            socket: socket.clone(),
            config: config.clone(),
            audit: audit.clone(),
            state_dir: state_dir.clone(),
            log: work.path().join("trustd.log"),
            module_env,
            credentials_dir,
            env: options.env.clone(),
            work,
            child: None,
        };
        trustd.write_config(options, &pin_file);
        trustd
    }

    pub fn write_config(&self, options: &Options, pin_file: &Path) {
        let token = match &options.token_serial {
            Some(serial) => format!("token_serial = \"{serial}\""),
            None => format!("token_label = \"{}\"", options.token_label),
        };
        let pin = if options.pin_as_credential {
            "{ credential = \"token-pin\" }".to_owned()
        } else {
            format!("{{ file = \"{}\" }}", pin_file.display())
        };
        let backends = options.backends.clone().unwrap_or_else(|| {
            format!(
                "[[backend]]\ntype = \"pkcs11\"\nname = \"hsm\"\nmodule = \"{}\"\n{token}\npin = {pin}\nsessions = {}\n",
                options.module, options.sessions
            )
        });
        let text = format!(
            r#"state_dir = "{state}"

[socket]
path = "{socket}"
mode = "{mode}"

[limits]
max_payload_bytes = {max_payload}
{limits}

[audit]
sink = "file"
path = "{audit}"
{audit_settings}

{backends}

{extra}

{policy}
"#,
            state = self.state_dir.display(),
            socket = self.socket.display(),
            mode = options.socket_mode,
            max_payload = options.max_payload_bytes,
            limits = options.limits,
            audit = self.audit.display(),
            policy = options.policy,
            extra = options.extra,
            audit_settings = options.audit_settings,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn pin_file(&self) -> PathBuf {
        match &self.credentials_dir {
            Some(dir) => dir.join("token-pin"),
            None => self.work.path().join("user.pin"),
        }
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "trustd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(bin("trustd"));
        command
            .arg("--config")
            .arg(&self.config)
            .envs(
                self.module_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("TRUSTD_LOG", "info,cryptoki::mechanism=off")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(
                self.credentials_dir
                    .iter()
                    .map(|dir| ("CREDENTIALS_DIRECTORY", dir.as_os_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = dies_with_harness(&mut command)
            .spawn()
            .expect("start trustd");
        self.child = Some(child);
    }

    /// Waits until the socket accepts connections (or trustd exits).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "trustd exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "trustd not ready after 20s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// SIGTERM, then wait for the exit (SIGKILL after 30 s).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("trustd running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "trustd exited with {status}");
        self.spawn();
        self.wait_ready();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The audit log's records (waits briefly for the writer thread).
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    /// trustctl pointed at this trustd, working in a directory of its own (where
    /// `key generate` writes NAME.pub).
    pub fn trustctl(&self) -> Command {
        let cwd = self.work.path().join("cwd");
        std::fs::create_dir_all(&cwd).expect("trustctl's working directory");
        let mut cmd = Command::new(bin("trustctl"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .env_remove("TRUSTD_SOCKET")
            .current_dir(cwd);
        cmd
    }

    /// `trustctl key load FILE --name NAME`, the passphrase of the encrypted file given on
    /// stdin (never in argv); asserts success.
    pub fn load_encrypted_key(&self, file: &Path, name: &str, passphrase: &str) {
        let file = file.to_str().expect("a UTF-8 path");
        let out = self.run_with_stdin(
            &["key", "load", file, "--name", name, "--passphrase-stdin"],
            &format!("{passphrase}\n"),
        );
        assert!(out.status.success(), "key load {file}: {}", stderr(&out));
    }

    /// Runs trustctl with `input` on its stdin (how secrets reach it in scripts).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .trustctl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run trustctl");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write trustctl's stdin");
        child.wait_with_output().expect("wait for trustctl")
    }

    /// Where trustctl runs (see [`Trustd::trustctl`]).
    pub fn cwd(&self) -> PathBuf {
        self.work.path().join("cwd")
    }

    /// Runs trustctl with `args`; returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.trustctl().args(args).output().expect("run trustctl")
    }

    /// Runs trustctl and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "trustctl {args:?} failed ({}):\n{}\n--- trustd log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub async fn client(&self) -> Client {
        trustctl::client::connect_socket(&self.socket)
            .await
            .expect("connect to trustd")
    }
}

impl Drop for Trustd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every file below `dir` (recursively) and its bytes, by path: to show a directory did not
/// change, or stayed empty.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.insert(path.display().to_string(), bytes);
            }
        }
    }
    files
}

/// Runs Debian's python3 on `script` with `input` on stdin: /usr/bin/python3, where the
/// python3-* packages `scripts/install-deps test` installs (independent checkers such as the
/// Prometheus parser and jsonschema) can be imported, whatever python3 is first on PATH.
pub fn debian_python(script: &str, args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/install-deps test installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// stderr of a finished command, as text.
/// Validates `document` against the schema in docs/json/ with Debian's python3-jsonschema,
/// not with our code.
pub fn assert_matches_schema(schema: &str, document: &str) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/json")
        .join(schema);
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.Draft202012Validator(schema).validate(json.load(sys.stdin))
"#;
    let out = debian_python(script, &[schema.as_os_str()], document.as_bytes());
    assert!(
        out.status.success(),
        "the output does not match {}:\n{}\n{document}",
        schema.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that a command failed and said `expected` on stderr.
#[track_caller]
pub fn assert_refused(out: &Output, expected: &str) {
    assert_ne!(out.status.code(), Some(0), "{}", stderr(out));
    assert!(
        stderr(out).contains(expected),
        "expected {expected:?} in: {}",
        stderr(out)
    );
}

/// Asserts that a command exited with `code` and said `expected` on stderr.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32, expected: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(
        stderr(out).contains(expected),
        "expected {expected:?} in: {}",
        stderr(out)
    );
}

/// Generates a key over gRPC and returns what trustd says about it.
pub async fn generate_key(
    client: &mut Client,
    name: &str,
    algorithm: trustd_proto::KeyAlgorithm,
) -> trustd_proto::KeyInfo {
    client
        .generate_key(generate_request(name, algorithm))
        .await
        .unwrap_or_else(|status| panic!("generating {name}: {status:?}"))
        .into_inner()
        .key
        .expect("trustd returns the key")
}

/// Builds a sign request for a named key.
pub fn sign_request(
    key: &str,
    algorithm: trustd_proto::SignatureAlgorithm,
    encoding: trustd_proto::SignatureEncoding,
    message: Vec<u8>,
) -> trustd_proto::SignRequest {
    trustd_proto::SignRequest {
        key: Some(trustd_proto::KeySelector {
            selector: Some(trustd_proto::key_selector::Selector::Name(key.into())),
        }),
        algorithm: algorithm as i32,
        encoding: encoding as i32,
        payload: Some(trustd_proto::sign_request::Payload::Message(message)),
    }
}

pub fn generate_request(
    name: &str,
    algorithm: trustd_proto::KeyAlgorithm,
) -> trustd_proto::GenerateKeyRequest {
    trustd_proto::GenerateKeyRequest {
        name: name.into(),
        backend: String::new(),
        algorithm: algorithm as i32,
        scope: None,
        piv: None,
    }
}
