//! The configuration loader (postroom-config): TOML text to a checked `Config`.
//!
//! Input: the text of a configuration file. Checked, besides "never panics":
//! - a refused file gets at least one mistake, each on one line, with a line number inside
//!   the file;
//! - an accepted configuration written back as TOML (as `Config::save` does) reads back as the
//!   same configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom_config::Config;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            let Ok(written) = config.to_toml() else {
                return;
            };
            match Config::from_toml(&written) {
                Ok(again) => assert_eq!(again, config, "saved configuration reads back different"),
                Err(mistakes) => {
                    panic!("saved configuration is refused: {mistakes:?}\n---\n{written}")
                }
            }
        }
        Err(mistakes) => {
            assert!(!mistakes.is_empty(), "refused without a mistake");
            let lines = text.split('\n').count();
            for mistake in &mistakes {
                assert!(!mistake.message.is_empty(), "mistake without a message");
                assert!(
                    !mistake.message.contains('\n'),
                    "mistake over several lines"
                );
                if let Some(line) = mistake.line {
                    assert!(
                        (1..=lines).contains(&line),
                        "line {line} of {lines}: {mistake}"
                    );
                }
            }
        }
    }
});
