//! Where the configuration file is when none is given, and what its relative paths are
//! relative to.
//!
//! A relative path in the file is taken from the file's own directory, whichever process reads
//! it and from wherever it was started: `postroom run`, the components it starts, and
//! `postroom ctl` run from another directory all find the same data and sockets.

use std::path::{Path, PathBuf};

use crate::Config;

/// The configuration read when a command is given no `--config`: the image's live file.
pub const DEFAULT_PATH: &str = "/data/postroom/postroom.toml";

/// The directory the relative paths of the file at `path` are taken from: the file's own,
/// made absolute against the current directory.
pub fn base_dir(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    absolute.parent().map(Path::to_owned).unwrap_or_default()
}

/// `path` as a file under `base` means it: as it is when absolute (or empty, which the checks
/// report), else under `base`.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || path.as_os_str().is_empty() {
        return path.to_owned();
    }
    base.join(path.strip_prefix(".").unwrap_or(path))
}

/// A program to run: a bare name is looked up in `PATH` as usual and stays as it is; one with
/// a slash in it is a path like any other.
fn resolve_program(base: &Path, program: &Path) -> PathBuf {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        resolve(base, program)
    } else {
        program.to_owned()
    }
}

/// The same for a program or device kept as text.
fn resolve_text(base: &Path, text: &mut String) {
    if text.contains('/') {
        *text = resolve(base, Path::new(text.as_str()))
            .to_string_lossy()
            .into_owned();
    }
}

impl Config {
    /// Takes every relative path of the configuration from `base` (see the module).
    pub fn resolve_paths(&mut self, base: &Path) {
        let at = |path: &mut PathBuf| *path = resolve(base, path);
        let at_optional = |path: &mut Option<PathBuf>| {
            if let Some(path) = path {
                *path = resolve(base, path);
            }
        };

        at(&mut self.system.data_dir);
        at(&mut self.system.run_dir);

        at_optional(&mut self.supervisor.watchdog.device);
        for component in self.supervisor.components.values_mut() {
            if let Some(program) = component.command.first_mut() {
                resolve_text(base, program);
            }
        }

        at_optional(&mut self.mail.tls.certificate);
        at_optional(&mut self.mail.tls.key);
        at_optional(&mut self.mail.relay.ca_file);
        for mailbox in &mut self.mail.on_connect.pop3 {
            at_optional(&mut mailbox.ca_file);
        }

        resolve_text(base, &mut self.link.modem.device);
        at(&mut self.link.modem.lock_dir);
        self.link.ppp.command = resolve_program(base, &self.link.ppp.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_files_directory() {
        let mut config = Config::parse(
            "[system]\ndata_dir = \"./data\"\nrun_dir = \"../run\"\n\
             [mail.tls]\ncertificate = \"tls/cert.pem\"\nkey = \"/etc/key.pem\"\n\
             [link.modem]\ndevice = \"/dev/ttyS0\"\nlock_dir = \"lock\"\n\
             [link.ppp]\ncommand = \"pppd\"\n\
             [supervisor.components.fax]\ncommand = [\"bin/fax\", \"./not-a-path-arg\"]\n",
        )
        .unwrap();
        config.resolve_paths(Path::new("/etc/postroom"));

        assert_eq!(config.system.data_dir, Path::new("/etc/postroom/data"));
        assert_eq!(config.system.run_dir, Path::new("/etc/postroom/../run"));
        assert_eq!(
            config.mail.tls.certificate.as_deref(),
            Some(Path::new("/etc/postroom/tls/cert.pem"))
        );
        assert_eq!(
            config.mail.tls.key.as_deref(),
            Some(Path::new("/etc/key.pem"))
        );
        assert_eq!(config.link.modem.device, "/dev/ttyS0");
        assert_eq!(config.link.modem.lock_dir, Path::new("/etc/postroom/lock"));
        assert_eq!(config.link.ppp.command, Path::new("pppd"), "a name in PATH");
        assert_eq!(
            config.supervisor.components["fax"].command,
            ["/etc/postroom/bin/fax", "./not-a-path-arg"]
        );
    }

    #[test]
    fn the_base_of_a_bare_file_name_is_the_current_directory() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(base_dir(Path::new("postroom.toml")), here);
        assert_eq!(
            base_dir(Path::new("/etc/postroom/postroom.toml")),
            Path::new("/etc/postroom")
        );
    }
}
