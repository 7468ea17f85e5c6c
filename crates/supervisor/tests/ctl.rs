//! `postroom ctl`: status for people and scripts, restart, reload, logs.

mod common;

use std::time::Duration;

use common::{Appliance, component_in, process_ended};

#[test]
fn ctl_restart_reload_and_logs_act_on_the_running_components() {
    let appliance =
        Appliance::start("[supervisor.components.mail]\n[supervisor.components.link]\n");
    let pids = appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    let restart = appliance.ctl(&["restart", "mail"]);
    assert!(restart.status.success(), "{restart:?}");
    assert_eq!(
        String::from_utf8_lossy(&restart.stdout).trim(),
        "restarting mail"
    );
    let status = appliance.wait_for("mail restarted", Duration::from_secs(30), |s| {
        component_in(s, "mail")
            .is_some_and(|c| c["state"] == "up" && c["pid"].as_i64() != Some(pids[0]))
    });
    let mail = component_in(&status, "mail").unwrap();
    assert_eq!(mail["restarts"], 1);
    assert_eq!(mail["last_exit"]["reason"], "restart requested");
    assert_eq!(
        mail["last_exit"]["description"], "exit code 0",
        "stopped by SIGTERM"
    );
    assert!(process_ended(pids[0]));
    assert_eq!(component_in(&status, "link").unwrap()["restarts"], 0);

    let unknown = appliance.ctl(&["restart", "nosuch"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no component named"));

    let reload = appliance.ctl(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    // ctl waits until mail's status counts the reload, so a script may rely on the new file
    // (the harness counts SIGHUPs under the same name as the mail component).
    assert_eq!(
        String::from_utf8_lossy(&reload.stdout).trim(),
        "asked to reload: link, mail\nmail: the new configuration applies to new connections"
    );

    // The components print a line on SIGHUP; the supervisor keeps it for ctl logs.
    common::eventually("reload lines in ctl logs", Duration::from_secs(15), || {
        let logs = appliance.ctl(&["logs"]);
        let text = String::from_utf8_lossy(&logs.stdout);
        text.lines()
            .any(|l| l.starts_with("mail[") && l.contains("reloaded its configuration"))
            && text
                .lines()
                .any(|l| l.starts_with("link[") && l.contains("reloaded"))
    });
    let link_only = appliance.ctl(&["logs", "link", "--json"]);
    let link_only: serde_json::Value = serde_json::from_slice(&link_only.stdout).unwrap();
    let components = link_only["components"].as_object().unwrap();
    assert_eq!(components.keys().collect::<Vec<_>>(), ["link"]);

    let text = appliance.ctl(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let mail_row = text
        .lines()
        // `mail*`: critical, as mail is by default.
        .find(|l| l.starts_with("mail* "))
        .unwrap_or_default();
    assert!(mail_row.contains(" up "), "ctl status:\n{text}");
    assert!(
        mail_row.contains("restart requested"),
        "ctl status:\n{text}"
    );
}

/// `postroom ctl logs | head` used to panic: `println!` to a closed pipe. Every subcommand
/// now ends quietly, with exit 0, however much it had left to print.
#[test]
fn ctl_to_a_reader_that_went_away_ends_quietly() {
    let appliance =
        Appliance::start("[supervisor.components.mail]\n[supervisor.components.link]\n");
    appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    for args in [
        &["status"][..],
        &["status", "--json"],
        &["logs"],
        &["logs", "mail", "--json"],
        &["reload"],
    ] {
        let output = appliance.ctl_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ctl {args:?}: {output:?}");
        assert!(stderr.is_empty(), "ctl {args:?} said: {stderr}");
    }
}

/// `ctl logs supervisor` used to answer 404: the supervisor's own events went only to journald
/// or stderr. They are kept like a component's lines now, without the children's relayed ones;
/// an unknown name is told the names there are.
#[test]
fn ctl_logs_supervisor_shows_its_own_lines_and_an_unknown_name_the_valid_ones() {
    let appliance =
        Appliance::start("[supervisor.components.mail]\n[supervisor.components.link]\n");
    appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    common::eventually(
        "mail up in ctl logs supervisor",
        Duration::from_secs(15),
        || {
            let logs = appliance.ctl(&["logs", "supervisor"]);
            assert!(logs.status.success(), "{logs:?}");
            let text = String::from_utf8_lossy(&logs.stdout);
            assert!(text.lines().all(|l| l.starts_with("supervisor[")), "{text}");
            assert!(!text.contains("stand-in"), "a child's line: {text}");
            text.contains("INFO supervisor: up component=mail")
        },
    );
    let all = appliance.ctl(&["logs"]);
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(all.lines().any(|l| l.starts_with("supervisor[")), "{all}");

    let unknown = appliance.ctl(&["logs", "nosuch"]);
    assert!(!unknown.status.success(), "{unknown:?}");
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains(r#"no log named "nosuch"; the logs are: link, mail, supervisor"#),
        "{message}"
    );
}

/// A relative `run_dir` used to be taken from each process's current directory: ctl run from
/// anywhere but where `postroom run` was started looked for the sockets in the wrong place.
/// It is taken from the file's directory now, by the supervisor, its components and ctl alike.
#[test]
fn relative_paths_are_the_files_own_for_run_its_components_and_ctl() {
    let appliance = Appliance::start_relative("[supervisor.components.mail]\n");
    appliance.wait_up(&["mail"], Duration::from_secs(30));
    assert!(appliance.path("run/supervisor.sock").exists());
    assert!(appliance.path("run/mail.sock").exists());

    let status = appliance.ctl(&["status"]);
    assert!(status.status.success(), "{status:?}");
    assert!(std::env::current_dir().unwrap() != appliance.dir.path());
}

/// Without `--config`, ctl reads the image's live file; where there is none it says so.
#[test]
fn ctl_without_a_config_names_the_default_it_tried() {
    let default = std::path::Path::new(postroom_config::DEFAULT_PATH);
    if default.exists() {
        eprintln!("skipping: {} exists here", default.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = common::ctl_without_config(dir.path(), &["status"]);
    assert!(!output.status.success(), "{output:?}");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(
            "no configuration file: none was given with --config FILE, and the default \
             /data/postroom/postroom.toml does not exist"
        ),
        "{message}"
    );
}

#[test]
fn ctl_reload_applies_the_configuration_and_refuses_one_with_mistakes() {
    let appliance =
        Appliance::start("[supervisor.components.mail]\n[supervisor.components.link]\n");
    let pids = appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    // link removed, fax added (as another program), mail unchanged.
    appliance.rewrite_config(
        "[supervisor.components.mail]\n\
         [supervisor.components.fax]\ncommand = [\"@HARNESS@\", \"fax\"]\n",
    );
    let reload = appliance.ctl(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    let text = String::from_utf8_lossy(&reload.stdout);
    assert!(text.contains("started: fax"), "{text}");
    assert!(text.contains("stopped: link"), "{text}");
    assert!(text.contains("asked to reload: mail"), "{text}");

    let status = appliance.wait_for("fax up, link gone", Duration::from_secs(30), |s| {
        component_in(s, "fax").is_some_and(|c| c["state"] == "up")
            && component_in(s, "link").is_none()
    });
    let mail = component_in(&status, "mail").unwrap();
    assert_eq!(
        mail["pid"].as_i64(),
        Some(pids[0]),
        "mail was only asked to reload"
    );
    assert_eq!(mail["restarts"], 0);
    common::eventually("link ended", Duration::from_secs(15), || {
        process_ended(pids[1])
    });
    common::eventually("mail reloaded", Duration::from_secs(15), || {
        let logs = appliance.ctl(&["logs", "mail"]);
        String::from_utf8_lossy(&logs.stdout).contains("reloaded its configuration")
    });

    // A configuration with a mistake is refused, with the key, and changes nothing.
    appliance.rewrite_config("[supervisor]\nrespawn_retrys = 3\n[supervisor.components.mail]\n");
    let refused = appliance.ctl(&["reload"]);
    assert!(!refused.status.success(), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("respawn_retrys"), "{message}");
    let fax_pid = component_in(&status, "fax").unwrap()["pid"].as_i64();
    std::thread::sleep(Duration::from_millis(500));
    let after = appliance.status().unwrap();
    assert_eq!(
        component_in(&after, "fax").unwrap()["pid"].as_i64(),
        fax_pid
    );
    assert_eq!(component_in(&after, "fax").unwrap()["state"], "up");
}

#[test]
fn sighup_to_the_supervisor_reloads_like_ctl_reload() {
    let appliance = Appliance::start("[supervisor.components.mail]\n");
    appliance.wait_up(&["mail"], Duration::from_secs(30));
    appliance.rewrite_config(
        "[supervisor.components.mail]\n\
         [supervisor.components.link]\ncommand = [\"@HARNESS@\", \"link\"]\n",
    );

    appliance.signal(rustix::process::Signal::HUP);
    appliance.wait_up(&["mail", "link"], Duration::from_secs(30));
    common::eventually("mail reloaded", Duration::from_secs(15), || {
        let logs = appliance.ctl(&["logs", "mail"]);
        String::from_utf8_lossy(&logs.stdout).contains("reloaded its configuration (1)")
    });
}

#[test]
fn a_component_table_in_the_file_amends_that_component_and_leaves_the_others_running() {
    // A user's file: nothing about components, so all five run (stand-ins here).
    let appliance = Appliance::start_with_defaults("");
    let all = ["admin", "console", "fax", "link", "mail"];
    let pids = appliance.wait_up(&all, Duration::from_secs(30));

    appliance.rewrite_config_with_defaults("[supervisor.components.link]\nenabled = false\n");
    let reload = appliance.ctl(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    let text = String::from_utf8_lossy(&reload.stdout);
    let stopped: Vec<&str> = text.lines().filter(|l| l.starts_with("stopped")).collect();
    assert_eq!(stopped, ["stopped: link"], "{text}");

    let status = appliance.wait_for("link gone", Duration::from_secs(30), |s| {
        component_in(s, "link").is_none()
    });
    for (name, pid) in all.iter().zip(&pids) {
        if *name == "link" {
            continue;
        }
        let component = component_in(&status, name).unwrap_or_else(|| panic!("{name} stopped"));
        assert_eq!(component["pid"].as_i64(), Some(*pid), "{name} kept running");
    }
    assert_eq!(component_in(&status, "mail").unwrap()["critical"], true);
}
