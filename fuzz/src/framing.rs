//! Several named files in one fuzz input, for targets that read more than one thing (a
//! repository's role files, a certificate chain, a sequence of APDUs).
//!
//! A part is `name\n` followed by its bytes; parts are separated by [`SEPARATOR`]. The format is
//! text-like on purpose: libFuzzer's mutators splice and copy byte ranges, and a separator
//! they can copy from one input into another makes new splits as likely as new contents.

/// Between two parts.
pub const SEPARATOR: &[u8] = b"\n--part--\n";

/// The parts of `data`: (name, bytes). A part without a newline is all name, no bytes.
pub fn split(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut parts = Vec::new();
    let mut rest = data;
    loop {
        let (part, next) = match find(rest, SEPARATOR) {
            Some(at) => (&rest[..at], Some(&rest[at + SEPARATOR.len()..])),
            None => (rest, None),
        };
        parts.push(match part.iter().position(|&b| b == b'\n') {
            Some(at) => (&part[..at], &part[at + 1..]),
            None => (part, &[][..]),
        });
        match next {
            Some(next) => rest = next,
            None => return parts,
        }
    }
}

/// One input from named parts, the inverse of [`split`].
pub fn join<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, (name, bytes)) in parts.into_iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_undoes_join() {
        let joined = join([("root", &b"{}"[..]), ("targets/releases", b"a\nb")]);
        assert_eq!(
            split(&joined),
            vec![(&b"root"[..], &b"{}"[..]), (b"targets/releases", b"a\nb")]
        );
        assert_eq!(split(b"only a name"), vec![(&b"only a name"[..], &b""[..])]);
    }
}
