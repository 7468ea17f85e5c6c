//! Restarting components: after SIGKILL, after `/health` stops answering, and in a crash loop.

mod common;

use std::time::{Duration, Instant};

use common::{Appliance, component_in, kill, process_ended};
use postroom_control::BlockingClient;
use rustix::process::Signal;

#[test]
fn a_component_killed_with_sigkill_is_running_again_within_two_seconds() {
    // Default timings; the components are built into the harness, so this also covers
    // starting `<this binary> NAME --config FILE`.
    let appliance =
        Appliance::start("[supervisor.components.mail]\n[supervisor.components.link]\n");
    let pids = appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    kill(Signal::KILL, pids[0]);
    let killed_at = Instant::now();
    let status = appliance.wait_for("mail up again", Duration::from_secs(10), |s| {
        component_in(s, "mail")
            .is_some_and(|c| c["state"] == "up" && c["pid"].as_i64() != Some(pids[0]))
    });
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "mail took {took:?} to come back"
    );

    let mail = component_in(&status, "mail").unwrap();
    assert_eq!(mail["restarts"], 1);
    assert_eq!(mail["last_exit"]["description"], "killed by SIGKILL");
    let link = component_in(&status, "link").unwrap();
    assert_eq!(link["restarts"], 0);
    assert_eq!(link["pid"].as_i64(), Some(pids[1]));
}

#[test]
fn a_component_that_stops_answering_health_is_killed_and_restarted() {
    let appliance = Appliance::start(
        "[supervisor]\nhealth_interval = 0.3\nhealth_timeout = 0.5\nunhealthy_timeout = 2\n\
         [supervisor.components.mail]\n[supervisor.components.link]\n",
    );
    let pids = appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    let mail = BlockingClient::new(appliance.path("run/mail.sock")).unwrap();
    let _: serde_json::Value = mail.post_json("/debug/hang", &()).unwrap();

    let status = appliance.wait_for("mail replaced", Duration::from_secs(30), |s| {
        component_in(s, "mail")
            .is_some_and(|c| c["state"] == "up" && c["pid"].as_i64() != Some(pids[0]))
    });
    let mail = component_in(&status, "mail").unwrap();
    assert_eq!(mail["restarts"], 1);
    assert_eq!(mail["last_exit"]["description"], "killed by SIGKILL");
    let reason = mail["last_exit"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("/health unanswered"), "reason: {reason:?}");
    assert!(process_ended(pids[0]), "the hung process is still alive");
    assert_eq!(component_in(&status, "link").unwrap()["restarts"], 0);
}

#[test]
fn a_component_that_exits_at_once_is_backed_off_and_reported_failing_while_others_keep_running() {
    let appliance = Appliance::start(
        "[supervisor]\nrestart_delay = 0.3\nrestart_delay_max = 2\nrespawn_retry = 3\n\
         failing_retry = 60\n\
         [supervisor.components.mail]\n\
         [supervisor.components.link]\n\
         command = [\"@HARNESS@\", \"link\", \"--exit-at-once\", \"3\"]\n",
    );
    let mail_pid = appliance.wait_up(&["mail"], Duration::from_secs(30))[0];

    let status = appliance.wait_for("link failing", Duration::from_secs(30), |s| {
        component_in(s, "link").is_some_and(|c| c["failing"] == true)
    });
    let link = component_in(&status, "link").unwrap().clone();
    assert_eq!(
        link["crashes"], 4,
        "failing after more than respawn_retry crashes"
    );
    assert_eq!(link["last_exit"]["ending"]["exited"], 3);
    assert_eq!(link["state"], "waiting");
    let next = link["next_start_in_ms"].as_u64().unwrap();
    assert!(
        next > 30_000,
        "a failing component is retried slowly, next in {next} ms"
    );
    let lines: Vec<&str> = link["last_lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("giving up at once with exit code 3")),
        "last lines: {lines:?}"
    );

    // Backed off: each wait twice the one before (0.3 s, 0.6 s, 1.2 s), measured between the
    // lines each start printed; a little slack for the clock of the line reader.
    let logs = appliance.ctl(&["logs", "link", "--json"]);
    let logs: serde_json::Value = serde_json::from_slice(&logs.stdout).unwrap();
    let starts: Vec<u64> = logs["components"]["link"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["text"]
                .as_str()
                .unwrap_or("")
                .contains("giving up at once")
        })
        .map(|l| l["at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(starts.len(), 4, "{logs}");
    for (i, nominal) in [300, 600, 1200].into_iter().enumerate() {
        let gap = starts[i + 1] - starts[i];
        assert!(
            gap + 50 >= nominal,
            "wait {i} was {gap} ms, not about {nominal} ms"
        );
    }

    // Then slow: no more starts for a while.
    std::thread::sleep(Duration::from_secs(2));
    let later = appliance.status().unwrap();
    let link_later = component_in(&later, "link").unwrap();
    assert_eq!(link_later["restarts"], link["restarts"]);

    // The others keep running, untouched.
    let mail = component_in(&later, "mail").unwrap();
    assert_eq!(mail["state"], "up");
    assert_eq!(mail["pid"].as_i64(), Some(mail_pid));
    assert_eq!(mail["restarts"], 0);

    let text = appliance.ctl(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("FAILING"), "ctl status:\n{text}");
    assert!(text.contains("exit code 3"), "ctl status:\n{text}");
}

#[test]
fn a_component_that_never_answers_health_is_killed_after_the_start_timeout() {
    let appliance = Appliance::start(
        "[supervisor]\nstart_timeout = 2\nhealth_timeout = 0.5\n\
         [supervisor.components.mail]\n\
         [supervisor.components.link]\n\
         command = [\"@HARNESS@\", \"link\", \"--never-healthy\"]\n",
    );
    appliance.wait_up(&["mail"], Duration::from_secs(30));

    let status = appliance.wait_for(
        "link killed and started again",
        Duration::from_secs(30),
        |s| component_in(s, "link").is_some_and(|c| c["restarts"].as_u64() >= Some(1)),
    );
    let link = component_in(&status, "link").unwrap();
    assert_ne!(link["state"], "up");
    assert_eq!(link["last_exit"]["description"], "killed by SIGKILL");
    let reason = link["last_exit"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no answer on /health within 2s of starting"),
        "reason: {reason:?}"
    );
    let ran = link["last_exit"]["ran_for_secs"].as_f64().unwrap();
    assert!(ran >= 2.0, "killed after {ran} s, before the start timeout");
}
