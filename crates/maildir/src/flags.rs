//! Message flags as Maildir keeps them in file names, `<unique>:2,<letters>`.
//!
//! The letters (cr.yp.to/proto/maildir.html) are, in ASCII order, D (draft), F (flagged),
//! P (passed, i.e. forwarded), R (replied, IMAP `\Answered`), S (seen), T (trashed, IMAP
//! `\Deleted`). Letters we do not know (lower-case keyword letters written by other software)
//! are kept as they are, so a rename never drops them.

/// The flags of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// `\Draft`, letter D.
    pub draft: bool,
    /// `\Flagged`, letter F.
    pub flagged: bool,
    /// Forwarded (`$Forwarded` in IMAP), letter P.
    pub passed: bool,
    /// `\Answered`, letter R.
    pub answered: bool,
    /// `\Seen`, letter S.
    pub seen: bool,
    /// `\Deleted`, letter T.
    pub deleted: bool,
    /// Other letters found in the file name, kept sorted.
    pub other: Vec<u8>,
}

impl Flags {
    /// Reads the letters after `:2,` in a file name.
    pub fn from_letters(letters: &str) -> Flags {
        let mut flags = Flags::default();
        for b in letters.bytes() {
            match b {
                b'D' => flags.draft = true,
                b'F' => flags.flagged = true,
                b'P' => flags.passed = true,
                b'R' => flags.answered = true,
                b'S' => flags.seen = true,
                b'T' => flags.deleted = true,
                b if b.is_ascii_alphanumeric() && !flags.other.contains(&b) => flags.other.push(b),
                _ => {}
            }
        }
        flags.other.sort_unstable();
        flags
    }

    /// The letters in the ASCII order the Maildir convention asks for.
    pub fn to_letters(&self) -> String {
        let mut letters: Vec<u8> = Vec::with_capacity(6 + self.other.len());
        for (on, letter) in [
            (self.draft, b'D'),
            (self.flagged, b'F'),
            (self.passed, b'P'),
            (self.answered, b'R'),
            (self.seen, b'S'),
            (self.deleted, b'T'),
        ] {
            if on {
                letters.push(letter);
            }
        }
        letters.extend_from_slice(&self.other);
        letters.sort_unstable();
        // Every byte pushed is ASCII, so this cannot fail.
        String::from_utf8(letters).unwrap_or_default()
    }

    /// Splits a file name into its unique part and its flags (none when there is no `:2,`).
    pub fn split_file_name(name: &str) -> (&str, Flags) {
        match name.split_once(":2,") {
            Some((base, letters)) => (base, Flags::from_letters(letters)),
            None => match name.split_once(':') {
                Some((base, _)) => (base, Flags::default()),
                None => (name, Flags::default()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_written_in_ascii_order() {
        let flags = Flags {
            seen: true,
            answered: true,
            flagged: true,
            ..Flags::default()
        };
        assert_eq!(flags.to_letters(), "FRS");
    }

    #[test]
    fn unknown_letters_survive_a_round_trip() {
        let flags = Flags::from_letters("Sab");
        assert!(flags.seen);
        assert_eq!(flags.to_letters(), "Sab");
    }

    #[test]
    fn file_name_splits_into_base_and_flags() {
        let (base, flags) = Flags::split_file_name("1700000000.M1P2.host,S=10:2,FS");
        assert_eq!(base, "1700000000.M1P2.host,S=10");
        assert!(flags.flagged && flags.seen && !flags.deleted);
        assert_eq!(Flags::split_file_name("abc").0, "abc");
    }
}
