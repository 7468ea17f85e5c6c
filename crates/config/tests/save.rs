//! Saving is atomic: the written file parses back equal, and no temporary file is left.

use std::os::unix::fs::PermissionsExt;

use postroom_config::{Config, write_atomically};

fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saved_config_parses_back_equal_and_leaves_no_temp_file() {
    let dev = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/dev.toml");
    let config = Config::load(std::path::Path::new(dev)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postroom.toml");
    config.save(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), config);

    // Saving over an existing file replaces it whole.
    let mut changed = config.clone();
    changed.system.domains.push("branch.example".into());
    changed.save(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), changed);

    assert_eq!(dir_entries(dir.path()), ["postroom.toml"]);
}

#[test]
fn default_config_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postroom.toml");
    Config::default().save(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), Config::default());
}

#[test]
fn write_atomically_keeps_the_mode_of_the_file_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.toml");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    write_atomically(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(dir_entries(dir.path()), ["secret.toml"]);
}

#[test]
fn failed_write_leaves_the_old_file_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: the rename fails after the temp file was written.
    let path = dir.path().join("postroom.toml");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), "x").unwrap();

    assert!(write_atomically(&path, b"new").is_err());
    assert!(path.is_dir());
    assert_eq!(dir_entries(dir.path()), ["postroom.toml"]);
}
