//! Where PINs come from, and how they are held.
//!
//! A PIN is read from its source each time trustd logs in and dropped (zeroized) right after,
//! so it is never cached in the daemon's memory between logins. Sources are files and systemd
//! credentials only: never argv, never the environment.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A configured source of a secret, written in TOML as `{ file = "..." }` or
/// `{ credential = "name" }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// A file only the daemon user can read.
    File(PathBuf),
    /// A systemd credential, read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the PIN from {source_desc}: {error}")]
    Unreadable {
        source_desc: String,
        error: std::io::Error,
    },
    #[error("the PIN file {0} is open to its group or other users: run `chmod 600 {0}` (and chown it to the trustd user)")]
    TooOpen(String),
    #[error("the PIN in {0} is empty")]
    Empty(String),
    #[error("the PIN in {0} is not UTF-8 text")]
    NotUtf8(String),
    #[error("systemd credential {0:?} requested but $CREDENTIALS_DIRECTORY is not set: add LoadCredential= or SetCredentialEncrypted= to the unit, or use pin = {{ file = ... }}")]
    NoCredentialsDirectory(String),
    /// The unit asks for the credential (LoadCredential=ID searches systemd's credstores) but
    /// no admin has put it there yet: the packaged unit starts all the same, so say where.
    #[error("systemd credential {0:?} is missing: write the PIN to /etc/credstore/{0} (mode 0600, owned by root) or encrypt it with `systemd-creds encrypt --name={0} - /etc/credstore.encrypted/{0}`, then `systemctl restart trustd`")]
    MissingCredential(String),
}

/// A secret read from its source: the text for the device, and a fingerprint that lets the
/// daemon recognise a PIN it already knows to be wrong without keeping the PIN itself.
pub struct Secret {
    pub value: SecretString,
    pub fingerprint: [u8; 32],
}

impl SecretSource {
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Credential(name) => format!("systemd credential {name:?}"),
        }
    }

    pub fn read(&self) -> Result<Secret, SecretError> {
        let (path, check_mode) = match self {
            SecretSource::File(path) => (path.clone(), true),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                // systemd already makes the credentials directory private to the service.
                (PathBuf::from(dir).join(name), false)
            }
        };
        let desc = self.describe();
        let unreadable = |error| SecretError::Unreadable {
            source_desc: desc.clone(),
            error,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|error| match self {
                SecretSource::Credential(name) if error.kind() == std::io::ErrorKind::NotFound => {
                    SecretError::MissingCredential(name.clone())
                }
                _ => unreadable(error),
            })?;
        if check_mode {
            let mode = file.metadata().map_err(unreadable)?.mode();
            // Owner only, as the message says: a group (even trustd's) is more readers than
            // a PIN should have; systemd credentials are the way to share it with a service.
            if mode & 0o077 != 0 {
                return Err(SecretError::TooOpen(path.display().to_string()));
            }
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(64));
        file.read_to_end(&mut raw).map_err(unreadable)?;
        let mut end = raw.len();
        while end > 0 && (raw[end - 1] == b'\n' || raw[end - 1] == b'\r') {
            end -= 1;
        }
        if end == 0 {
            return Err(SecretError::Empty(desc));
        }
        let text = std::str::from_utf8(&raw[..end]).map_err(|_| SecretError::NotUtf8(desc))?;
        let fingerprint = Sha256::digest(text.as_bytes()).into();
        Ok(Secret {
            value: SecretString::from(text.to_owned()),
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &tempfile::TempDir, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn reads_pin_and_strips_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "pin", "1234\n", 0o600);
        let secret = SecretSource::File(path).read().unwrap();
        assert_eq!(secret.value.expose_secret(), "1234");
    }

    #[test]
    fn refuses_pin_files_open_to_group_or_others() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o620, 0o604] {
            let path = write(&dir, &format!("pin-{mode:o}"), "1234", mode);
            let err = SecretSource::File(path).read().err().unwrap();
            assert!(matches!(err, SecretError::TooOpen(_)), "{mode:o}: {err}");
            assert!(err.to_string().contains("chmod 600"));
        }
        assert!(SecretSource::File(write(&dir, "pin-400", "1234", 0o400))
            .read()
            .is_ok());
    }

    #[test]
    fn refuses_empty_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "pin", "\n", 0o600);
        assert!(matches!(
            SecretSource::File(path).read().err().unwrap(),
            SecretError::Empty(_)
        ));
    }

    #[test]
    fn different_pins_have_different_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretSource::File(write(&dir, "a", "1234", 0o600))
            .read()
            .unwrap();
        let b = SecretSource::File(write(&dir, "b", "1235", 0o600))
            .read()
            .unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
