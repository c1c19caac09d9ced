//! The kernel's word on who is calling.
//!
//! Every connection's credentials are read from the socket (SO_PEERCRED for uid, gid and pid,
//! SO_PEERGROUPS for the supplementary groups) when it is accepted. Nothing a caller sends can
//! change them, so authorization decisions rest only on these.

use std::os::fd::{AsRawFd, RawFd};

/// Who is at the other end of a connection, as the kernel recorded it at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCredentials {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// Supplementary groups of the peer process (empty when the kernel cannot tell).
    pub groups: Vec<u32>,
}

impl PeerCredentials {
    pub fn of(socket: &impl AsRawFd) -> std::io::Result<Self> {
        let fd = socket.as_raw_fd();
        let cred = peer_cred(fd)?;
        let groups = peer_groups(fd).unwrap_or_default();
        Ok(PeerCredentials {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
            groups,
        })
    }

    /// True when the peer's primary or a supplementary group is `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

// unsafe_code allowed here: getsockopt(SO_PEERCRED) (FFI).
#[allow(unsafe_code)]
fn peer_cred(fd: RawFd) -> std::io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` holds its exact size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

// unsafe_code allowed here: getsockopt(SO_PEERGROUPS) (FFI).
#[allow(unsafe_code)]
fn peer_groups(fd: RawFd) -> std::io::Result<Vec<u32>> {
    // Linux caps supplementary groups at 65536; start small and grow on ERANGE.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` provides `len` writable bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && groups.len() < 65536 {
            let needed = (len as usize / std::mem::size_of::<libc::gid_t>()).max(groups.len() * 2);
            groups.resize(needed.min(65536), 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_credentials_over_a_socketpair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let creds = PeerCredentials::of(&a).unwrap();
        assert_eq!(creds.uid, nix::unistd::getuid().as_raw());
        assert_eq!(creds.gid, nix::unistd::getgid().as_raw());
        assert_eq!(creds.pid, std::process::id() as i32);
        assert!(creds.in_group(nix::unistd::getgid().as_raw()));
    }
}
