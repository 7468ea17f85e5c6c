//! Garbage configuration files, as an administrator's typo or a damaged flash file might give:
//! each is refused with mistakes, and nothing panics (tests build with overflow checks).

use postroom_config::Config;

const DEV: &str = include_str!("../../../examples/dev.toml");

/// `dev.toml` with one line replaced: it must be refused, not panic and not be accepted.
fn refused_with(old: &str, new: &str) -> Vec<String> {
    assert!(DEV.contains(old), "examples/dev.toml no longer has {old:?}");
    let text = DEV.replacen(old, new, 1);
    match Config::parse(&text) {
        Ok(_) => panic!("accepted {new:?}"),
        Err(mistakes) => mistakes,
    }
}

#[test]
fn huge_hour_in_office_hours_is_a_mistake_not_a_multiply_overflow_panic() {
    assert_eq!(
        postroom_config::link::parse_hours("99999999:00-18:00"),
        None
    );
    assert_eq!(
        postroom_config::link::parse_hours("08:00-4294967295:00"),
        None
    );
    let found = refused_with(
        "office_hours = \"08:00-18:00\"",
        "office_hours = \"99999999:00-18:00\"",
    );
    assert!(
        found.iter().any(|m| m.contains("office_hours")),
        "{found:?}"
    );
}

#[test]
fn huge_hour_in_a_tariff_period_is_a_mistake() {
    let found = refused_with("hours = \"08:00-18:00\"", "hours = \"71582789:00-18:00\"");
    assert!(found.iter().any(|m| m.contains("hours")), "{found:?}");
}

#[test]
fn garbage_files_are_refused_without_a_panic() {
    let deep = format!("a = {}1{}", "[".repeat(5000), "]".repeat(5000));
    let inline = format!("a = {}{}", "{b = ".repeat(2000), "}".repeat(2000));
    let binary: String = (0u8..=255).map(char::from).collect();
    for text in [
        "\u{0}\u{1}\u{2}",
        binary.as_str(),
        "[system",
        "[[mail.users]]\nname = 1\n",
        "[mail.limits]\nmax_message_size = -1\n",
        "[mail.limits]\nmax_message_size = 99999999999999999999999\n",
        "[mail.limits]\ncommand_timeout = \"99999999999999999999h\"\n",
        "[mail.limits]\ncommand_timeout = \"-5s\"\n",
        "[supervisor]\nhealth_interval = \"18446744073709551615d\"\n",
        "[mail.listen]\nsmtp = \"127.0.0.1:99999\"\n",
        "[mail]\ntrusted_networks = [\"192.168.1.0/99\"]\n",
        "[mail]\ntrusted_networks = [\"192.168.1.0/\"]\n",
        "[link.dial]\nmax_attempts = -3\n",
        "[link.tariff]\nper_minute = 1e400\n",
        deep.as_str(),
        inline.as_str(),
    ] {
        assert!(
            Config::parse(text).is_err(),
            "accepted {:?}",
            &text[..text.len().min(60)]
        );
    }
}
