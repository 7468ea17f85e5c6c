//! The configuration files the project ships load without a single mistake.

use std::path::Path;

use postroom_config::Config;

fn load(relative: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    match Config::load(&path) {
        Ok(config) => config,
        Err(e) => panic!("{relative} has mistakes:\n{e}"),
    }
}

#[test]
fn the_factory_defaults_of_the_image_load_and_name_the_image_paths() {
    let config = load("rootfs-overlay/etc/postroom/postroom.toml");
    assert_eq!(config.system.data_dir, Path::new("/data/postroom"));
    assert_eq!(config.system.run_dir, Path::new("/run/postroom"));
}

/// Its relative paths are taken from its own directory, examples/, whatever the current
/// directory: the data lands in the repository's dev-data/ for every command.
#[test]
fn the_dev_file_loads_with_its_data_in_the_repositorys_dev_data() {
    let config = load("examples/dev.toml");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    assert_eq!(config.system.data_dir, examples.join("../dev-data"));
    assert_eq!(config.system.run_dir, examples.join("../dev-data/run"));
    assert_eq!(
        config.link.modem.lock_dir,
        examples.join("../dev-data/lock")
    );
}
