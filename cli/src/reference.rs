//! Image references as docker reads them: `[registry/]repository[:tag]`.

/// A repository (the Notary GUN) and an optional tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Fully qualified: `docker.io/library/alpine`, `registry.example.com/team/app`.
    pub gun: String,
    pub tag: Option<String>,
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
        if name.is_empty() || tag.is_some_and(|t| t.is_empty() || t.len() > 128) {
            return Err(format!("{text:?} is not an image reference"));
        }
        if name
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            return Err(format!(
                "{text:?}: repository names are lower case without spaces"
            ));
        }
        let first = name.split('/').next().unwrap_or_default();
        let qualified = if !name.contains('/') {
            format!("docker.io/library/{name}")
        } else if first.contains('.') || first.contains(':') || first == "localhost" {
            name.to_owned()
        } else {
            format!("docker.io/{name}")
        };
        Ok(ImageRef {
            gun: qualified,
            tag: tag.map(str::to_owned),
        })
    }

    /// The registry host part of the GUN.
    pub fn registry(&self) -> &str {
        self.gun.split('/').next().unwrap_or_default()
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
        for bad in ["", "app:", "App", "app@sha256:00", "a b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
