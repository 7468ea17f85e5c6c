//! Who a message fetched from a multidrop mailbox is for (postroom-fetch `recipients`): the
//! header parsing that picks the office's addresses out of X-Original-To, Delivered-To,
//! X-Envelope-To, or else To and Cc.
//!
//! Input: a message. Checked, besides "never panics":
//! - every address found is lower-case (ASCII), has an `@`, is in one of our domains, and
//!   is listed once; the source is `Nothing` exactly when no address was found;
//! - CRLF and LF line ends give the same recipients.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom_fetch::recipients::{Source, recipients, return_path};

fuzz_target!(|message: &[u8]| {
    let domains = ["office.example".to_owned(), "Branch.Example".to_owned()];
    let found = recipients(message, &domains);
    assert_eq!(found.addresses.is_empty(), found.source == Source::Nothing);
    for (i, address) in found.addresses.iter().enumerate() {
        assert_eq!(address, &address.to_ascii_lowercase(), "address not lower-cased");
        let (_, domain) = address.rsplit_once('@').expect("address without @");
        assert!(
            domains.iter().any(|d| d.eq_ignore_ascii_case(domain)),
            "foreign {address}"
        );
        assert!(!found.addresses[..i].contains(address), "{address} twice");
    }
    let _ = return_path(message);

    if !message.contains(&b'\r') {
        let crlf: Vec<u8> = message
            .split(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .join(&b"\r\n"[..]);
        assert_eq!(
            recipients(&crlf, &domains),
            found,
            "CRLF and LF forms differ"
        );
    }
});
