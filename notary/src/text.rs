//! Text that came from a server, a registry or a token on its way to the user's terminal.
//!
//! Tag names, signer names and error messages are chosen by whoever runs the server. Printed
//! raw, an escape sequence in one can rewrite what the terminal shows (hide a line, fake a
//! "verified", set the window title), and bidirectional overrides can reorder what is read.
//! Every human-readable output goes through [`sanitize`]; `--json` output is escaped by the
//! JSON encoder instead.

use std::borrow::Cow;

/// Whether `c` may reach a terminal as is: printable text, newlines and tabs.
fn is_safe(c: char) -> bool {
    match c {
        '\n' | '\t' => true,
        // C0 controls, DEL and the C1 controls (CSI, OSC, ... as single code points).
        c if c.is_control() => false,
        // Bidirectional embeddings, overrides and isolates ("Trojan Source").
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => false,
        _ => true,
    }
}

/// `text` with every control character (other than newline and tab) and bidirectional
/// override written as a visible `\u{..}` escape.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_safe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_safe(c) {
            out.push(c);
        } else {
            out.push_str(&c.escape_unicode().to_string());
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `text`, sanitized, with a marker when cut: for names from a
/// server quoted inside a message.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes in all)", sanitize(&text[..at]), text.len()),
        None => sanitize(text).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(sanitize("v1.2\tok\n"), "v1.2\tok\n");
        assert!(matches!(sanitize("plain"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(sanitize("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(sanitize("x\u{202e}y\r"), "x\\u{202e}y\\u{d}");
        assert_eq!(excerpt("abcdef", 3), "abc… (6 bytes in all)");
        assert_eq!(excerpt("a\u{7}", 5), "a\\u{7}");
    }
}
