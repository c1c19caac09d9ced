//! A software TPM (swtpm) per test, manufactured like a real one: swtpm_setup gives it an RSA
//! and an ECC endorsement key and EK certificates issued by a local CA (swtpm-localca), whose
//! root the tests configure as the trust anchor.
//!
//! Manufacturing takes about a second, so it happens once per test binary; each test copies
//! the manufactured state into its own directory and runs its own swtpm on free loopback
//! ports. The guard kills exactly the swtpm it started.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Pkcs11Token;

/// A manufactured TPM state and the CA that issued its EK certificates.
struct Manufactured {
    dir: PathBuf,
}

fn manufactured() -> &'static Manufactured {
    static STATE: OnceLock<Manufactured> = OnceLock::new();
    STATE.get_or_init(|| {
        // Lives as long as the test process; removed by the OS's tmp cleaning, never reused.
        let dir = tempfile::Builder::new()
            .prefix("trustd-swtpm-template")
            .tempdir()
            .unwrap()
            .keep();
        let (state, ca) = (dir.join("state"), dir.join("ca"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&ca).unwrap();
        let localca = dir.join("swtpm-localca.conf");
        std::fs::write(
            &localca,
            format!(
                "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
                ca = ca.display()
            ),
        )
        .unwrap();
        let setup = dir.join("swtpm_setup.conf");
        std::fs::write(
            &setup,
            format!(
                "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n",
                localca.display()
            ),
        )
        .unwrap();
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--create-ek-cert", "--tpmstate"])
            .arg(&state)
            .arg("--config")
            .arg(&setup)
            .output()
            .expect("swtpm_setup runs (scripts/install-deps test installs swtpm-tools)");
        assert!(
            out.status.success(),
            "swtpm_setup failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Manufactured { dir }
    })
}

/// A running swtpm with its own copy of the manufactured state.
pub struct Swtpm {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Swtpm {
    pub fn start() -> Swtpm {
        let template = manufactured();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        for entry in std::fs::read_dir(template.dir.join("state")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), state.join(entry.file_name())).unwrap();
        }
        let mut swtpm = Swtpm {
            dir,
            port: free_port_pair(),
            child: None,
        };
        swtpm.resume();
        swtpm
    }

    /// TCTI configuration for tpm2-tss (control channel on port + 1).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The root certificate (PEM) of the CA that issued the EK certificates.
    pub fn ek_root_ca(&self) -> PathBuf {
        manufactured()
            .dir
            .join("ca")
            .join("swtpm-localca-rootca-cert.pem")
    }

    /// The intermediate CA certificate (PEM) that signed the EK certificates.
    pub fn ek_issuer_ca(&self) -> PathBuf {
        manufactured().dir.join("ca").join("issuercert.pem")
    }

    /// Kills swtpm (as if the TPM vanished); its state stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops swtpm (SIGSTOP) without closing its sockets: a TPM that takes as long as the
    /// test likes to answer.
    pub fn freeze(&self) {
        self.send(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a frozen swtpm go on (SIGCONT).
    pub fn thaw(&self) {
        self.send(nix::sys::signal::Signal::SIGCONT);
    }

    fn send(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("swtpm running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// Starts swtpm again on the same ports and state.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "swtpm already running");
        let state = self.dir.path().join("state");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("swtpm.log"))
            .unwrap();
        let mut command = Command::new("swtpm");
        command
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", self.port))
            .arg("--ctrl")
            .arg(format!(
                "type=tcp,port={},bindaddr=127.0.0.1",
                self.port + 1
            ))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = crate::dies_with_harness(&mut command)
            .spawn()
            .expect("swtpm runs (scripts/install-deps test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs a tpm2-tools command against this TPM.
    pub fn tpm2(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap_or_else(|e| panic!("{tool} runs (apt-get install tpm2-tools): {e}"))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port P with P+1 also free (swtpm's command and control channels, vpcd's two readers).
///
/// Chosen below the kernel's ephemeral range: outgoing connections take even ports from that
/// range, and one in TIME-WAIT keeps a listener off its port for a minute even with
/// SO_REUSEADDR. A run that churns connections (swtpm's TCTI connects once per command, the
/// soak does thousands a second) would otherwise leave no pair free above 32768.
pub fn free_port_pair() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10000.min(ephemeral_start / 2);
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), low..ephemeral_start - 1);
        let first = TcpListener::bind(("127.0.0.1", port));
        let second = TcpListener::bind(("127.0.0.1", port + 1));
        if first.is_ok() && second.is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free loopback ports below {ephemeral_start}");
}

/// Writes `value` to a file only its owner can read (an auth value or PIN for trustd).
pub fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// tpm2-pkcs11's module, as Debian installs it.
pub const TPM2_PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

/// A tpm2-pkcs11 token over swtpm, initialized with tpm2_ptool.
///
/// tpm2-pkcs11 and tpm2_ptool leave objects loaded between calls and rely on a resource
/// manager to evict them (a bare TPM has three object slots), as /dev/tpmrm0 does on a real
/// machine. Here that is tpm2-abrmd on a private D-Bus session bus, in front of swtpm.
pub struct Tpm2Pkcs11 {
    pub swtpm: Swtpm,
    label: String,
    store: PathBuf,
    tcti: String,
    bus_address: String,
    abrmd: Child,
    dbus: Child,
}

impl Tpm2Pkcs11 {
    pub fn new(label: &str) -> Tpm2Pkcs11 {
        use std::io::BufRead;
        let swtpm = Swtpm::start();
        let mut dbus = crate::dies_with_harness(&mut Command::new("dbus-daemon"))
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon runs (apt-get install dbus)");
        let mut address = String::new();
        std::io::BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let bus_address = address.trim().to_owned();
        let bus_name = format!("com.intel.tss2.Tabrmd.trustd{}", swtpm.port);
        let abrmd = crate::dies_with_harness(&mut Command::new("tpm2-abrmd"))
            .args(["--session", "--allow-root", "--flush-all"])
            .arg(format!("--dbus-name={bus_name}"))
            .arg(format!("--tcti={}", swtpm.tcti()))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tpm2-abrmd runs (apt-get install tpm2-abrmd libtss2-tcti-tabrmd0)");
        let store = swtpm.dir.path().join("pkcs11-store");
        std::fs::create_dir(&store).unwrap();
        let token = Tpm2Pkcs11 {
            label: label.to_owned(),
            tcti: format!("tabrmd:bus_name={bus_name},bus_type=session"),
            store,
            bus_address,
            abrmd,
            dbus,
            swtpm,
        };
        // abrmd registers its bus name shortly after starting: retry the first command.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = token.ptool(&["init"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tpm2_ptool init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = token.ptool(&[
            "addtoken",
            "--pid=1",
            &format!("--sopin={}", crate::SO_PIN),
            &format!("--userpin={}", crate::USER_PIN),
            &format!("--label={label}"),
        ]);
        assert!(
            out.status.success(),
            "tpm2_ptool addtoken failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        token
    }

    fn ptool(&self, args: &[&str]) -> Output {
        Command::new("tpm2_ptool")
            .args(args)
            .arg(format!("--path={}", self.store.display()))
            .envs(self.module_env())
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .output()
            .expect("tpm2_ptool runs (apt-get install libtpm2-pkcs11-tools)")
    }
}

impl Pkcs11Token for Tpm2Pkcs11 {
    fn module(&self) -> &str {
        TPM2_PKCS11_MODULE
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn algorithms(&self) -> &'static [&'static str] {
        // A TPM has no Ed25519.
        &["ecdsa-p256", "rsa-3072"]
    }

    fn module_env(&self) -> Vec<(String, String)> {
        vec![
            ("TPM2_PKCS11_STORE".into(), self.store.display().to_string()),
            ("TPM2_PKCS11_TCTI".into(), self.tcti.clone()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address.clone()),
            // tpm2-pkcs11 logs every unsupported attribute query at "warn" otherwise.
            ("TPM2_PKCS11_LOG_LEVEL".into(), "0".into()),
        ]
    }
}

impl Drop for Tpm2Pkcs11 {
    fn drop(&mut self) {
        for child in [&mut self.abrmd, &mut self.dbus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
