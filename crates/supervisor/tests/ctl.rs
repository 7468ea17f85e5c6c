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
