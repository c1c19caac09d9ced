//! What a registry (or the token service in front of it) answers: manifests and indexes,
//! error bodies and `WWW-Authenticate` challenges; and image references as users type them.
//!
//! The first byte picks what the rest is: 0 a manifest or index, 1 an error body, 2 a
//! challenge header, otherwise an image reference.

use trustctl::reference::ImageRef;
use trustctl::registry::{error, manifest};
use trustd_notary::client::auth;

pub fn run(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode {
        0 => {
            // serde_json skips the fields trustctl ignores without checking their UTF-8, so
            // the count is compared only when the whole body is valid JSON.
            let whole = serde_json::from_slice::<serde_json::Value>(rest).ok();
            if let (Ok(platforms), Some(whole)) = (manifest::platforms(rest), whole) {
                let listed = whole
                    .get("manifests")
                    .and_then(|m| m.as_array().map(Vec::len))
                    .unwrap_or(0);
                assert!(
                    platforms.len() <= listed,
                    "more platforms than the index lists"
                );
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = error::first_error(text);
            }
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = auth::parse_challenge(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(image) = ImageRef::parse(text) {
                    let _ = image.registry();
                    let _ = image.default_notary_server();
                }
            }
        }
    }
}
