//! Result codes: what a modem answers to a command or a dial.

use std::fmt;

/// A final or unsolicited result code from the modem.
///
/// V.250 (07/2003) section 5.7.1, Table 1 defines the basic set with its numeric forms; the
/// DELAYED and BLACKLISTED codes come from the call-restriction rules of national approvals
/// (ETSI TBR 21 and its predecessors) and their numeric forms are manufacturer-specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// `OK` (0): the command line was executed.
    Ok,
    /// `CONNECT` (1), optionally followed by the line rate, as in `CONNECT 33600`.
    Connect(Option<u32>),
    /// `RING` (2): an incoming call is alerting (unsolicited).
    Ring,
    /// `NO CARRIER` (3): the connection was lost or never established.
    NoCarrier,
    /// `ERROR` (4): the command line was not accepted.
    Error,
    /// `NO DIALTONE` (6), also spelled `NO DIAL TONE` by many modems.
    NoDialtone,
    /// `BUSY` (7): the called line is engaged.
    Busy,
    /// `NO ANSWER` (8): the remote end did not answer before the timeout.
    NoAnswer,
    /// `DELAYED`: the modem refuses to dial this number yet (redial restrictions).
    Delayed,
    /// `BLACKLISTED`: the modem refuses to dial this number at all (too many failures).
    Blacklisted,
}

impl ResultCode {
    /// Parses a verbal result code line (V1 mode), without its surrounding CR LF.
    ///
    /// Returns `None` for any other text (information text, echo, garbage).
    pub fn from_verbal(line: &str) -> Option<ResultCode> {
        let line = line.trim();
        let upper = line.to_ascii_uppercase();
        let code = match upper.as_str() {
            "OK" => ResultCode::Ok,
            "RING" => ResultCode::Ring,
            "NO CARRIER" => ResultCode::NoCarrier,
            "ERROR" => ResultCode::Error,
            // Both spellings are in the field: V.250 writes NO DIALTONE, many modems (and
            // the Hayes manuals) NO DIAL TONE.
            "NO DIALTONE" | "NO DIAL TONE" => ResultCode::NoDialtone,
            "BUSY" => ResultCode::Busy,
            "NO ANSWER" => ResultCode::NoAnswer,
            "DELAYED" => ResultCode::Delayed,
            "BLACKLISTED" => ResultCode::Blacklisted,
            "CONNECT" => ResultCode::Connect(None),
            _ => {
                // V.250 5.7.1: CONNECT may carry manufacturer text; the common form is the
                // rate first, sometimes followed by protocol text (`CONNECT 33600/ARQ`).
                let rest = upper.strip_prefix("CONNECT ")?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                ResultCode::Connect(digits.parse().ok())
            }
        };
        Some(code)
    }

    /// Parses a numeric result code line (V0 mode), without its CR.
    ///
    /// V.250 Table 1: 0 OK, 1 CONNECT, 2 RING, 3 NO CARRIER, 4 ERROR, 6 NO DIALTONE, 7 BUSY,
    /// 8 NO ANSWER. 24 DELAYED and 32 BLACKLISTED follow the Rockwell/Conexant numbering; the
    /// extended CONNECT codes with rates (5 = 1200, 10 = 2400, ...) are the Hayes ones.
    pub fn from_numeric(line: &str) -> Option<ResultCode> {
        let n: u32 = line.trim().parse().ok()?;
        let code = match n {
            0 => ResultCode::Ok,
            1 => ResultCode::Connect(None),
            2 => ResultCode::Ring,
            3 => ResultCode::NoCarrier,
            4 => ResultCode::Error,
            5 => ResultCode::Connect(Some(1200)),
            6 => ResultCode::NoDialtone,
            7 => ResultCode::Busy,
            8 => ResultCode::NoAnswer,
            10 => ResultCode::Connect(Some(2400)),
            24 => ResultCode::Delayed,
            32 => ResultCode::Blacklisted,
            _ => return None,
        };
        Some(code)
    }

    /// The numeric form of this code (V0 mode), as [`ResultCode::from_numeric`] reads it.
    pub fn numeric(self) -> u32 {
        match self {
            ResultCode::Ok => 0,
            ResultCode::Connect(Some(1200)) => 5,
            ResultCode::Connect(Some(2400)) => 10,
            ResultCode::Connect(_) => 1,
            ResultCode::Ring => 2,
            ResultCode::NoCarrier => 3,
            ResultCode::Error => 4,
            ResultCode::NoDialtone => 6,
            ResultCode::Busy => 7,
            ResultCode::NoAnswer => 8,
            ResultCode::Delayed => 24,
            ResultCode::Blacklisted => 32,
        }
    }

    /// True for codes that end a command (every code except the unsolicited RING).
    pub fn is_final(self) -> bool {
        self != ResultCode::Ring
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultCode::Ok => f.write_str("OK"),
            ResultCode::Connect(None) => f.write_str("CONNECT"),
            ResultCode::Connect(Some(rate)) => write!(f, "CONNECT {rate}"),
            ResultCode::Ring => f.write_str("RING"),
            ResultCode::NoCarrier => f.write_str("NO CARRIER"),
            ResultCode::Error => f.write_str("ERROR"),
            ResultCode::NoDialtone => f.write_str("NO DIALTONE"),
            ResultCode::Busy => f.write_str("BUSY"),
            ResultCode::NoAnswer => f.write_str("NO ANSWER"),
            ResultCode::Delayed => f.write_str("DELAYED"),
            ResultCode::Blacklisted => f.write_str("BLACKLISTED"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_with_protocol_suffix_keeps_the_rate() {
        assert_eq!(
            ResultCode::from_verbal("CONNECT 33600/ARQ"),
            Some(ResultCode::Connect(Some(33600)))
        );
        assert_eq!(
            ResultCode::from_verbal("CONNECT"),
            Some(ResultCode::Connect(None))
        );
    }

    #[test]
    fn every_code_round_trips_through_its_numeric_form() {
        for code in [
            ResultCode::Ok,
            ResultCode::Connect(None),
            ResultCode::Ring,
            ResultCode::NoCarrier,
            ResultCode::Error,
            ResultCode::NoDialtone,
            ResultCode::Busy,
            ResultCode::NoAnswer,
            ResultCode::Delayed,
            ResultCode::Blacklisted,
        ] {
            assert_eq!(
                ResultCode::from_numeric(&code.numeric().to_string()),
                Some(code)
            );
            assert_eq!(ResultCode::from_verbal(&code.to_string()), Some(code));
        }
    }

    #[test]
    fn information_text_is_not_a_result() {
        assert_eq!(
            ResultCode::from_verbal("+CGDCONT: 1,\"IP\",\"internet\""),
            None
        );
        assert_eq!(ResultCode::from_numeric("56000"), None);
    }
}
