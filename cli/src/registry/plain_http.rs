//! The registries a user has allowed trustctl to reach over plain HTTP (`--insecure-registry
//! HOST[:PORT]`, `insecure_registries` in the config), as docker's `insecure-registries`.
//!
//! Plain HTTP is never a fallback: a registry is reached over it only when named here, exactly
//! as image references name it, so a typo or a redirect can never downgrade another registry.
//! The notary server is not a registry and is never reached over plain HTTP: its TLS is what
//! first-use trust rests on.

use std::collections::BTreeSet;

/// Registries allowed over plain HTTP, by `host[:port]` as image references spell them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsecureRegistries {
    hosts: BTreeSet<String>,
}

impl InsecureRegistries {
    /// Reads `HOST[:PORT]` entries; anything else (a scheme, a path, an empty host, a bad
    /// port) is refused with what to write instead, since a silently ignored entry would
    /// leave the user wondering why HTTPS is still tried.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<InsecureRegistries, String> {
        let mut hosts = BTreeSet::new();
        for entry in entries {
            hosts.insert(parse_host(entry)?);
        }
        Ok(InsecureRegistries { hosts })
    }

    /// Whether `registry` (as an image reference names it) may be reached over plain HTTP.
    pub fn allows(&self, registry: &str) -> bool {
        self.hosts.contains(&registry.to_ascii_lowercase())
    }
}

fn parse_host(entry: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("--insecure-registry {entry:?}: {why}; write HOST or HOST:PORT, as image names spell the registry (registry.lab:5000)")
    };
    if entry.contains("://") {
        return Err(bad("no scheme"));
    }
    if entry.contains(['/', '@', '?', '#']) || entry.chars().any(char::is_whitespace) {
        return Err(bad("only a host and a port"));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !host_ok {
        return Err(bad("not a host name or IPv4 address"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('0') => {}
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        }
    }
    Ok(entry.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::InsecureRegistries;

    #[test]
    fn hosts_with_optional_ports_and_nothing_else() {
        let allowed =
            InsecureRegistries::parse(["registry.lab:5000", "Mirror.Lab", "127.0.0.1:80"]).unwrap();
        assert!(allowed.allows("registry.lab:5000"));
        assert!(allowed.allows("mirror.lab"));
        assert!(allowed.allows("MIRROR.lab"));
        assert!(allowed.allows("127.0.0.1:80"));
        assert!(
            !allowed.allows("registry.lab"),
            "the port is part of the name"
        );
        assert!(!allowed.allows("registry.lab:5001"));
        assert!(!allowed.allows("mirror.lab:5000"));
        for bad in [
            "http://registry.lab:5000",
            "registry.lab:5000/",
            "registry.lab/team",
            "",
            ":5000",
            "registry.lab:",
            "registry.lab:0",
            "registry.lab:65536",
            "registry.lab:05000",
            "user@registry.lab",
            "reg istry",
            "[::1]:5000",
        ] {
            let error = InsecureRegistries::parse([bad]).unwrap_err();
            assert!(error.contains("HOST:PORT"), "{bad:?}: {error}");
        }
        assert!(!InsecureRegistries::parse([])
            .unwrap()
            .allows("registry.lab"));
    }
}
