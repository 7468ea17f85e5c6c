//! Every kind of configuration mistake is reported with its key path and its line, all of them
//! at once, and nothing panics.

use postroom_config::{Check, Config, Mistake, Port, Report, TimeOfDay, from_toml_checked};
use serde::Deserialize;

/// The mistakes in `text` as `line N: path: message` strings.
fn mistakes(text: &str) -> Vec<String> {
    match Config::from_toml(text) {
        Ok(_) => panic!("expected mistakes in:\n{text}"),
        Err(found) => found.iter().map(Mistake::to_string).collect(),
    }
}

fn assert_one(text: &str, expected: &str) {
    assert_eq!(mistakes(text), [expected], "in:\n{text}");
}

#[test]
fn unknown_key_at_top_level() {
    assert_one(
        "[system]\ndata_dir = \"/d\"\n\ncolour = \"blue\"\n",
        "line 4: system.colour: unknown key `colour`, expected one of `data_dir`, `run_dir`, \
         `user`, `group`, `hostname`, `domains`",
    );
    let found = mistakes("# a comment\n[fancy]\nx = 1\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("line 2: fancy: unknown key `fancy`"),
        "{found:?}"
    );
}

#[test]
fn unknown_key_nested() {
    let found = mistakes(
        "[supervisor]\nrespawn_retry = 3\n\n[supervisor.watchdog]\ndevise = \"/dev/watchdog\"\n",
    );
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(
            "line 5: supervisor.watchdog.devise: unknown key `devise`, expected one of `device`"
        ),
        "{found:?}"
    );
}

#[test]
fn wrong_type() {
    assert_one(
        "[supervisor]\nrespawn_retry = \"five\"\n",
        "line 2: supervisor.respawn_retry: invalid type: string \"five\", expected a whole number \
         from 0 to 4294967295",
    );
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Scheduled {
    link: ScheduleSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ScheduleSection {
    schedule: Vec<TimeOfDay>,
    port: Option<Port>,
    name: Option<Required>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Required {
    #[allow(dead_code)]
    first: String,
}

impl Check for Scheduled {
    fn check(&self, _at: &str, _report: &mut Report) {}
}

fn scheduled_mistakes(text: &str) -> Vec<String> {
    match from_toml_checked::<Scheduled>(text) {
        Ok(v) => panic!("expected mistakes, read {v:?}"),
        Err(found) => found.iter().map(Mistake::to_string).collect(),
    }
}

#[test]
fn bad_time_of_day_inside_an_array() {
    assert_eq!(
        scheduled_mistakes("[link]\n\nschedule = [\"08:00\", \"12:30\", \"25:00\"]\n"),
        ["line 3: link.schedule[2]: \"25:00\" is not a time of day"]
    );
}

#[test]
fn every_bad_element_keeps_its_own_index_and_line() {
    let text = "[link]\nschedule = [\n  \"08:00\",\n  \"7pm\",\n  \"09:00\",\n  \"25:00\",\n]\n";
    assert_eq!(
        scheduled_mistakes(text),
        [
            "line 4: link.schedule[1]: \"7pm\" is not a time of day",
            "line 6: link.schedule[3]: \"25:00\" is not a time of day",
        ]
    );
}

#[test]
fn bad_duration() {
    assert_one(
        "[supervisor]\nhealth_interval = \"2s\"\nunhealthy_timeout = \"5 weeks\"\n",
        "line 3: supervisor.unhealthy_timeout: \"5 weeks\" is not a duration like \"30s\", \"5m\" \
         or \"4h\"",
    );
}

#[test]
fn port_out_of_range() {
    assert_eq!(
        scheduled_mistakes("[link]\nport = 70000\n"),
        ["line 2: link.port: 70000 is not a port number (1 to 65535)"]
    );
    assert_one(
        "[mail.relay]\nport = 70000\n",
        "line 2: mail.relay.port: invalid value: integer `70000`, expected a whole number from 0 \
         to 65535",
    );
}

#[test]
fn duplicate_listener_port() {
    assert_one(
        "[mail.listen]\nsmtp = \"127.0.0.1:2525\"\nsubmission = \"127.0.0.1:2587\"\n\
         imap = \"127.0.0.1:2525\"\n",
        "line 4: mail.listen.imap: port 2525 is already used by mail.listen.smtp",
    );
}

#[test]
fn toml_syntax_error_with_line() {
    let found = mistakes("[system]\ndata_dir = \"/data\"\nrun_dir = /run/postroom\n");
    assert!(!found.is_empty());
    assert!(found[0].starts_with("line 3: "), "{found:?}");
    assert!(found[0].contains("quoted"), "{found:?}");
}

#[test]
fn missing_required_value() {
    assert_one(
        "[system]\ndata_dir = \"\"\n",
        "line 2: system.data_dir: is empty; give the directory for Postroom's data",
    );
    // Both are real: `second` is not a key, and `first` is still missing.
    assert_eq!(
        scheduled_mistakes("[link]\n[link.name]\nsecond = \"x\"\n"),
        [
            "line 2: link.name: missing field `first`",
            "line 3: link.name.second: unknown key `second`, expected `first`",
        ]
    );
    assert_eq!(
        scheduled_mistakes("[link]\n[link.name]\n"),
        ["line 2: link.name: missing field `first`"]
    );
}

#[test]
fn bad_enum_variant() {
    assert_one(
        "[link]\nmode = \"sometimes\"\n",
        "line 2: link.mode: unknown variant `sometimes`, expected `permanent` or `on-demand`",
    );
}

#[test]
fn invalid_address() {
    assert_one(
        "[mail.listen]\nsmtp = \"127.0.0.1:smtp\"\n",
        "line 2: mail.listen.smtp: invalid socket address syntax",
    );
}

#[test]
fn a_taken_out_value_does_not_cause_a_second_mistake() {
    // smtp is wrong, so its default (port 25) stands in; imap on 25 must not then clash with it.
    assert_one(
        "[mail.listen]\nsmtp = \"127.0.0.1:smtp\"\nimap = \"127.0.0.1:25\"\n",
        "line 2: mail.listen.smtp: invalid socket address syntax",
    );
}

#[test]
fn unknown_component_is_named() {
    let found = mistakes("[supervisor.components.mial]\ncritical = true\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("line 1: supervisor.components.mial: there is no component \"mial\""),
        "{found:?}"
    );
}

#[test]
fn watchdog_petted_slower_than_it_bites() {
    assert_one(
        "[supervisor.watchdog]\ndevice = \"/dev/watchdog\"\ntimeout = 10\ninterval = \"10s\"\n",
        "line 4: supervisor.watchdog.interval: 10s is not shorter than the watchdog timeout \
         (10s): the box would reset while healthy",
    );
}

#[test]
fn run_dir_too_long_for_a_socket() {
    let long = format!("/{}", "r".repeat(100));
    let found = mistakes(&format!("[system]\nrun_dir = \"{long}\"\n"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("line 2: system.run_dir: "),
        "{found:?}"
    );
    assert!(found[0].contains("too long for a socket path"), "{found:?}");
}

#[test]
fn bad_domain_and_user_names() {
    assert_eq!(
        mistakes(
            "[system]\nuser = \"Post Room\"\ndomains = [\"office.example\", \"bad_domain!\", \"OFFICE.example\"]\n"
        ),
        [
            "line 2: system.user: \"Post Room\" is not a user or group name",
            "line 3: system.domains[1]: \"bad_domain!\" is not a domain name",
            "line 3: system.domains[2]: \"OFFICE.example\" is listed twice",
        ]
    );
}

#[test]
fn all_mistakes_are_reported_together_in_file_order() {
    let text = "\
colour = 1

[system]
data_dir = 7

[supervisor]
respawn_retry = \"five\"
health_interval = \"soon\"

[supervisor.watchdog]
devise = \"/dev/watchdog\"

[link]
mode = \"sometimes\"

[mail.listen]
smtp = \"127.0.0.1:2525\"
imap = \"127.0.0.1:2525\"
";
    let found = mistakes(text);
    let lines: Vec<&str> = found
        .iter()
        .map(|m| m.split(": ").take(2).collect::<Vec<_>>()[1])
        .collect();
    assert_eq!(
        lines,
        [
            "colour",
            "system.data_dir",
            "supervisor.respawn_retry",
            "supervisor.health_interval",
            "supervisor.watchdog.devise",
            "link.mode",
            "mail.listen.imap",
        ],
        "{found:#?}"
    );
    assert!(found[0].starts_with("line 1: "));
    assert!(found[6].starts_with("line 18: "));
}

#[test]
fn load_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postroom.toml");
    std::fs::write(&path, "[link]\nmode = \"sometimes\"\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: link.mode: unknown variant `sometimes`, expected `permanent` or `on-demand`",
            path.display()
        )
    );

    let missing = Config::load(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with("cannot read "), "{missing}");
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "\u{0}",
        "[",
        "]]",
        "a = [1, \"x\"",
        "[[supervisor]]\n",
        "supervisor = 3",
        "[mail]\nusers = 5",
        "[mail.catch_all]\n\"office.example\" = 3\n",
        "[supervisor.components]\nmail = [1]\n",
        "[system]\ndomains = [[[]]]\n",
        "x.y.z = 1\n[x]\n",
        "[link]\nschedule = { a = 1 }\n",
    ];
    for text in samples {
        let _ = Config::from_toml(text);
    }
}

#[test]
fn dev_file_loads_cleanly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/dev.toml");
    let config = Config::load(std::path::Path::new(path)).unwrap();
    assert!(
        config.system.run_dir.ends_with("examples/../dev-data/run"),
        "{}",
        config.system.run_dir.display()
    );
    assert_eq!(
        config.supervisor.restart_delay.0,
        std::time::Duration::from_millis(500)
    );
    assert!(config.supervisor.watchdog.device.is_none());
}

#[test]
fn damaged_copies_of_the_dev_file_never_panic() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/dev.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let chars: Vec<char> = text.chars().collect();
    // Every 7th position, each of a few characters that break TOML in different ways.
    for at in (0..chars.len()).step_by(7) {
        for replacement in ['"', '[', '=', '\n', 'x', '1', '.', ']'] {
            let mut damaged = chars.clone();
            damaged[at] = replacement;
            let damaged: String = damaged.into_iter().collect();
            if let Err(found) = Config::from_toml(&damaged) {
                assert!(!found.is_empty());
                for mistake in &found {
                    assert!(
                        mistake.line.is_some(),
                        "no line for {mistake} in:\n{damaged}"
                    );
                }
            }
        }
    }
}

/// The attacker's case: a password_hash that is not an argon2 PHC string was accepted, and
/// the user could then never log in, without a word.
#[test]
fn password_hash_that_is_not_an_argon2_phc_string_is_a_mistake() {
    let good = "$argon2id$v=19$m=19456,t=2,p=1$r+7rcmc2TpePj6WKp0SYXw$9uJKR6QOoodJj/54qQpq+XjbqMt3tLHLkHe33AS8+Kg";
    let text = format!(
        "[[mail.users]]\nname = \"alice\"\npassword_hash = \"{good}\"\n\
         [[mail.users]]\nname = \"bob\"\npassword_hash = \"secret\"\n\
         [[mail.users]]\nname = \"carol\"\npassword_hash = \"$2y$10$abcdefghijklmnopqrstuv\"\n\
         [[mail.users]]\nname = \"dave\"\npassword_hash = \"$argon2id$x\"\n\
         [[mail.users]]\nname = \"erin\"\n"
    );
    let found = mistakes(&text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("line 6: mail.users[1].password_hash: is not an argon2"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("line 9: mail.users[2].password_hash: "),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("line 12: mail.users[3].password_hash: "),
        "{found:?}"
    );
    assert!(
        Config::from_toml(&format!(
            "[[mail.users]]\nname = \"a\"\npassword_hash = \"{good}\"\n"
        ))
        .is_ok()
    );
}

/// The attacker's case: `trusted_networks = ["0.0.0.0/0"]` made the box an open relay.
#[test]
fn trusted_networks_that_trust_every_address_are_an_open_relay_mistake() {
    let found =
        mistakes("[mail]\ntrusted_networks = [\"192.168.1.0/24\", \"0.0.0.0/0\", \"::/0\"]\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("line 2: mail.trusted_networks[1]: 0.0.0.0/0 trusts every"),
        "{found:?}"
    );
    assert!(found[0].contains("open relay"), "{found:?}");
    assert!(
        found[1].starts_with("line 2: mail.trusted_networks[2]: ::/0 trusts every"),
        "{found:?}"
    );
}

/// The attacker's case: user names such as `../../etc` or `Alice` were accepted; the name is a
/// directory of the mail store and logins are matched in lower case.
#[test]
fn user_names_that_are_not_safe_lower_case_mailbox_names_are_mistakes() {
    let mut text = String::new();
    let names = [
        "alice",
        "../../etc",
        "a/b",
        ".hidden",
        "Bob",
        "x..y",
        "",
        "first.last_2-b",
    ];
    for name in names {
        text.push_str(&format!("[[mail.users]]\nname = \"{name}\"\n"));
    }
    let found = mistakes(&text);
    let paths: Vec<&str> = found
        .iter()
        .map(|m| m.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        [
            "mail.users[1].name",
            "mail.users[2].name",
            "mail.users[3].name",
            "mail.users[4].name",
            "mail.users[5].name",
            "mail.users[6].name"
        ],
        "{found:?}"
    );
    assert!(found[3].contains("upper-case"), "{found:?}");
}
