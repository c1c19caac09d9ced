//! Image references as docker reads them: `[registry/]repository[:tag]`.
//!
//! The grammar is docker's (distribution/reference), checked in full: a reference becomes a
//! directory in the trust cache and a path in URLs, so anything the grammar does not allow
//! (`..`, empty or `.` components, control characters) is refused here, before it is used.

/// Longest repository name docker accepts (distribution/reference's NameTotalLengthMax).
const MAX_NAME_LEN: usize = 255;
/// Longest tag docker accepts.
const MAX_TAG_LEN: usize = 128;

/// A repository (the Notary GUN) and an optional tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Fully qualified: `docker.io/library/alpine`, `registry.example.com/team/app`.
    pub gun: String,
    pub tag: Option<String>,
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`: one label of a registry host.
fn is_domain_component(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A registry host: dot-separated domain components or a bracketed IPv6 address, with an
/// optional numeric port.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !domain.ends_with(']') => (host, Some(port)),
        _ => (domain, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.split('.').all(is_domain_component),
    };
    port_ok && host_ok
}

/// `[a-z0-9]+` separated by `.`, `_`, `__` or runs of `-`: one path component of a
/// repository name. This is what rules out `.`, `..` and empty components.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if alnum(&b) {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.bytes().all(|s| s == b'-'))
            {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

impl ImageRef {
    /// Parses `IMAGE[:TAG]`, qualifying short names as docker does (`alpine` is
    /// `docker.io/library/alpine`). Digests (`@sha256:...`) are refused here.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        if text.contains('@') {
            return Err(format!("{text:?}: give a tag, not a digest"));
        }
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match text[slash..].rfind(':') {
            Some(colon) => (&text[..slash + colon], Some(&text[slash + colon + 1..])),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(format!("{text:?} is not an image reference"));
        }
        if let Some(tag) = tag.filter(|t| !is_tag(t)) {
            return Err(format!(
                "{text:?}: {tag:?} is not a tag: up to {MAX_TAG_LEN} letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            ));
        }
        let first = name.split('/').next().unwrap_or_default();
        let has_domain = name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let path = if has_domain {
            if !is_domain(first) {
                return Err(format!("{text:?}: {first:?} is not a registry host"));
            }
            &name[first.len() + 1..]
        } else {
            name
        };
        if path
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            return Err(format!(
                "{text:?}: repository names are lower case without spaces"
            ));
        }
        if let Some(bad) = path.split('/').find(|c| !is_path_component(c)) {
            return Err(format!(
                "{text:?}: {bad:?} is not a repository path component: lower-case letters and digits, separated by '.', '_', '__' or '-' (no empty, '.' or '..' components)"
            ));
        }
        let qualified = if has_domain {
            name.to_owned()
        } else if !name.contains('/') {
            format!("docker.io/library/{name}")
        } else {
            format!("docker.io/{name}")
        };
        if qualified.len() > MAX_NAME_LEN {
            return Err(format!(
                "{text:?}: repository names are at most {MAX_NAME_LEN} characters"
            ));
        }
        Ok(ImageRef {
            gun: qualified,
            tag: tag.map(str::to_owned),
        })
    }

    /// The registry host part of the GUN.
    pub fn registry(&self) -> &str {
        self.gun.split('/').next().unwrap_or_default()
    }

    /// A repository (GUN) as commands that act on a whole repository take it: an image
    /// reference without a tag.
    pub fn parse_repository(text: &str) -> Result<ImageRef, String> {
        let image = ImageRef::parse(text)?;
        if image.tag.is_some() {
            return Err(format!("{text}: give a repository, not a tag"));
        }
        Ok(image)
    }

    /// The notary server docker would use for this image when none is configured.
    pub fn default_notary_server(&self) -> String {
        if self.registry() == "docker.io" {
            "https://notary.docker.io".to_owned()
        } else {
            format!("https://{}", self.registry())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_names_like_docker() {
        let r = ImageRef::parse("alpine:3.20").unwrap();
        assert_eq!(
            (r.gun.as_str(), r.tag.as_deref()),
            ("docker.io/library/alpine", Some("3.20"))
        );
        assert_eq!(
            ImageRef::parse("team/app").unwrap().gun,
            "docker.io/team/app"
        );
        let r = ImageRef::parse("127.0.0.1:5000/demo:v1").unwrap();
        assert_eq!(
            (r.gun.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000/demo", Some("v1"))
        );
        assert_eq!(r.default_notary_server(), "https://127.0.0.1:5000");
        assert_eq!(
            ImageRef::parse("localhost/app").unwrap().gun,
            "localhost/app"
        );
        assert_eq!(
            ImageRef::parse("registry.example.com/a/b").unwrap().tag,
            None
        );
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in [
            "",
            "app:",
            "App",
            "app@sha256:00",
            "a b",
            "localhost:1/../../../victimdir",
            "localhost:1/a/../b",
            "localhost:1/./a",
            "localhost:1//a",
            "localhost:1/a/",
            "team/..",
            "registry.example.com/a\u{1b}[31m",
            "app:-tag",
            "app:.tag",
            "bad_host-.example.com/a",
            // What a newcomer types (issue 19): a stray '#', a doubled ':', a URL, a '/'
            // before the tag.
            "registry.example.test/app:v1#x",
            "registry.example.test/app::v1",
            "https://registry.example.test/app:v1",
            "registry.example.test/app/:v1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        let long = format!("localhost/{}", "a".repeat(250));
        assert!(ImageRef::parse(&long).is_err());
        for good in [
            "localhost:5000/a__b/c-d/e.f:v1.2-rc_3",
            "[::1]:5000/app:v1",
            "a--b/c",
        ] {
            assert!(ImageRef::parse(good).is_ok(), "{good}");
        }
    }
}
