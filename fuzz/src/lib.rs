//! Helpers shared by the fuzz targets: a deterministic way to cut input into reads, and the
//! checks for line-based protocol replies.
//!
//! Every target takes a few header bytes (settings, a split seed) followed by the bytes a peer
//! would send; `fuzz/seed.sh` writes seeds in that form from shared/cases and the transcripts.

#![forbid(unsafe_code)]

/// Cuts `bytes` into reads of pseudo-random lengths drawn from `seed`: mostly short (1 to 16
/// bytes, where split lines and split terminators hide), sometimes long.
pub fn cut(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    // xorshift32; any fixed generator will do, it only has to be deterministic.
    let mut state = 0x9e37_79b9u32 ^ u32::from(seed).wrapping_mul(0x0101_0101);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut reads = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let r = next();
        let len = if r % 8 == 0 {
            1 + (r >> 8) as usize % 512
        } else {
            1 + (r >> 8) as usize % 16
        };
        let (head, tail) = rest.split_at(len.min(rest.len()));
        reads.push(head);
        rest = tail;
    }
    reads
}

/// Splits `bytes` at each CRLF and checks that every byte belongs to a CRLF-terminated line
/// with no other CR or LF in it. Returns the lines without their CRLF.
pub fn crlf_lines(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    assert!(
        bytes.ends_with(b"\r\n"),
        "output does not end with CRLF: {:?}",
        tail(bytes)
    );
    let body = &bytes[..bytes.len() - 2];
    let lines: Vec<&[u8]> = split_crlf(body);
    for line in &lines {
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR or LF inside a reply line: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    lines
}

fn split_crlf(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
            lines.push(&bytes[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    lines.push(&bytes[start..]);
    lines
}

fn tail(bytes: &[u8]) -> String {
    let from = bytes.len().saturating_sub(40);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// Where a [`cut`] test stops comparing: the first `marker` in each transcript, or the whole.
pub fn until<'a, T: PartialEq>(items: &'a [T], marker: impl Fn(&T) -> bool) -> &'a [T] {
    match items.iter().position(marker) {
        Some(i) => &items[..=i],
        None => items,
    }
}
