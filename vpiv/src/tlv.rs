//! BER-TLV as PIV uses it: one- or two-byte tags, definite lengths up to 0xFFFF.

/// Appends tag, length and value.
pub fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
}

pub fn encode(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    put(&mut out, tag, value);
    out
}

/// Splits `input` into (tag, value) pairs; None when it is not well formed.
pub fn parse(mut input: &[u8]) -> Option<Vec<(Vec<u8>, &[u8])>> {
    let mut items = Vec::new();
    while !input.is_empty() {
        let tag_len = if input[0] & 0x1f == 0x1f { 2 } else { 1 };
        let tag = input.get(..tag_len)?.to_vec();
        input = &input[tag_len..];
        let (len, header) = match *input.first()? {
            n if n < 0x80 => (n as usize, 1),
            0x81 => (*input.get(1)? as usize, 2),
            0x82 => (
                ((*input.get(1)? as usize) << 8) | *input.get(2)? as usize,
                3,
            ),
            _ => return None,
        };
        let value = input.get(header..header + len)?;
        items.push((tag, value));
        input = &input[header + len..];
    }
    Some(items)
}

/// The value of the first item with `tag`.
pub fn find<'a>(items: &[(Vec<u8>, &'a [u8])], tag: &[u8]) -> Option<&'a [u8]> {
    items.iter().find(|(t, _)| t == tag).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_and_long_values() {
        for len in [0usize, 5, 0x7f, 0x80, 0xff, 0x100, 0x4000] {
            let value = vec![0xab; len];
            let encoded = encode(&[0x53], &value);
            let items = parse(&encoded).unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].0, [0x53]);
            assert_eq!(items[0].1, value.as_slice());
        }
        let two = encode(&[0x7f, 0x49], &[1, 2]);
        assert_eq!(
            find(&parse(&two).unwrap(), &[0x7f, 0x49]),
            Some(&[1u8, 2][..])
        );
        assert!(parse(&[0x53, 0x05, 1, 2]).is_none(), "truncated");
    }
}
