//! A PC/SC stack with a virtual YubiKey in it: pcscd with the vpcd driver, and the
//! `trustd-vpiv` card connected to vpcd's port.
//!
//! pcscd is one per machine (its socket is /run/pcscd/pcscd.comm) and the vpcd reader holds
//! one card, so PIV tests take a process-wide lock and run one at a time. A pcscd that is
//! already running (a workstation's, socket-activated) is used as it is, with the reader
//! Debian's vsmartcard-vpcd package configures; otherwise the rig starts its own and stops
//! exactly that one (SIGTERM, so pcscd cleans up its socket).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use trustd_vpiv::{VirtualCard, DEFAULT_MGM_KEY, DEFAULT_PIN, DEFAULT_PUK, VPCD_PORT};

const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";

static ONE_CARD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// pcscd, the virtual card, and the lock that keeps other PIV tests out meanwhile.
pub struct PivRig {
    pub card: VirtualCard,
    pub dir: tempfile::TempDir,
    pcscd: Option<Child>,
    _turn: MutexGuard<'static, ()>,
}

impl PivRig {
    pub fn start(serial: u32) -> PivRig {
        let turn = ONE_CARD_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().unwrap();
        // A pcscd of our own gets fresh ports: the previous one's port may still be in
        // TIME_WAIT, and vpcd cannot bind it then.
        let (pcscd, port) = if std::os::unix::net::UnixStream::connect(PCSCD_SOCKET).is_ok() {
            (None, VPCD_PORT)
        } else {
            let port = crate::tpm::free_port_pair();
            let pcscd = start_pcscd(
                &dir.path().join("reader.conf.d"),
                &dir.path().join("pcscd.log"),
                port,
            );
            (Some(pcscd), port)
        };
        let card = VirtualCard::insert_new(serial, port);
        let rig = PivRig {
            card,
            dir,
            pcscd,
            _turn: turn,
        };
        rig.wait_for_card(true);
        rig
    }

    /// The card's attestation root, written as a PEM file (a verifier's `--piv-ca`).
    pub fn attestation_root(&self) -> PathBuf {
        let path = self.dir.path().join("piv-attestation-root.pem");
        std::fs::write(&path, self.card.attestation_root_pem()).unwrap();
        path
    }

    /// Waits until pcscd reports the card present (or absent).
    pub fn wait_for_card(&self, present: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if card_present() == present {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pcscd never saw the virtual card {} (a pcscd started before vsmartcard-vpcd was installed has no vpcd reader: restart it)",
                if present { "inserted" } else { "removed" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn remove_card(&self) {
        self.card.remove();
        self.wait_for_card(false);
    }

    pub fn reinsert_card(&self) {
        self.card.reinsert();
        self.wait_for_card(true);
    }
}

impl Drop for PivRig {
    fn drop(&mut self) {
        self.card.remove();
        if let Some(mut pcscd) = self.pcscd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pcscd.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = pcscd.wait();
        }
    }
}

fn start_pcscd(conf_dir: &std::path::Path, log: &std::path::Path, port: u16) -> Child {
    std::fs::create_dir_all(conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("vpcd"),
        format!(
            "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:0x{port:X}\nLIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x{port:X}\n"
        ),
    )
    .unwrap();
    let child = crate::dies_with_harness(&mut Command::new("pcscd"))
        .args(["--foreground", "--config"])
        .arg(conf_dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("pcscd runs (apt-get install pcscd vsmartcard-vpcd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(PCSCD_SOCKET).is_err() {
        assert!(Instant::now() < deadline, "pcscd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether the first vpcd reader holds a card, as pcscd reports it.
fn card_present() -> bool {
    let Ok(context) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(readers) = context.list_readers_owned() else {
        return false;
    };
    let Some(reader) = readers
        .iter()
        .find(|r| r.to_string_lossy().contains("Virtual PCD"))
    else {
        return false;
    };
    let mut states = [pcsc::ReaderState::new(
        reader.as_c_str(),
        pcsc::State::UNAWARE,
    )];
    if context
        .get_status_change(Duration::ZERO, &mut states)
        .is_err()
    {
        return false;
    }
    states[0].event_state().contains(pcsc::State::PRESENT)
}
