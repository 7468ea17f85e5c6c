//! Stopping: no process outlives the supervisor, whether it is asked to stop or killed; and
//! every child is reaped, also orphans a component leaves behind.

mod common;

use std::time::Duration;

use common::{Appliance, eventually, live_processes_mentioning, process_ended, process_gone};
use rustix::process::Signal;

#[test]
fn sigterm_to_the_supervisor_leaves_no_postroom_process_behind() {
    let mut appliance = Appliance::start(
        "[supervisor]\nstop_timeout = 2\n\
         [supervisor.components.mail]\n\
         [supervisor.components.link]\n\
         command = [\"@HARNESS@\", \"link\", \"--ignore-sigterm\"]\n\
         [supervisor.components.fax]\n\
         command = [\"@HARNESS@\", \"fax\", \"--leave-orphan\", \"@DIR@/orphan.pid\", \
                    \"--orphan-secs\", \"600\"]\n\
         [supervisor.watchdog]\ndevice = \"@DIR@/watchdog\"\ninterval = 0.2\n",
    );
    let mut pids = appliance.wait_up(&["mail", "link", "fax"], Duration::from_secs(30));
    let orphan: i64 = std::fs::read_to_string(appliance.path("orphan.pid"))
        .expect("fax wrote its orphan's pid")
        .trim()
        .parse()
        .unwrap();
    pids.push(orphan);
    assert!(!process_ended(orphan), "the orphan should be sleeping");

    appliance.signal(Signal::TERM);
    let exit = appliance.wait_exit(Duration::from_secs(30));
    assert!(
        exit.success(),
        "supervisor exit: {exit:?}\n{}",
        appliance.log()
    );

    for pid in &pids {
        assert!(
            process_gone(*pid),
            "process {pid} is still there after the supervisor stopped"
        );
    }
    let dir = appliance.dir.path().display().to_string();
    assert_eq!(live_processes_mentioning(&dir), Vec::<i64>::new());

    // link ignored SIGTERM, so it needed the SIGKILL after stop_timeout.
    assert!(appliance.log().contains("SIGKILL"), "{}", appliance.log());
    // A clean stop disarms the watchdog with the magic close.
    let watchdog = std::fs::read_to_string(appliance.path("watchdog")).unwrap();
    assert_eq!(
        watchdog.lines().last(),
        Some("V"),
        "watchdog file:\n{watchdog}"
    );
}

#[test]
fn sigkill_to_the_supervisor_leaves_no_orphan() {
    let mut appliance = Appliance::start(
        "[supervisor.components.mail]\n[supervisor.components.link]\n\
         [supervisor.components.fax]\n\
         command = [\"@HARNESS@\", \"fax\", \"--ignore-sigterm\"]\n",
    );
    let pids = appliance.wait_up(&["mail", "link", "fax"], Duration::from_secs(30));

    appliance.signal(Signal::KILL);
    appliance.wait_exit(Duration::from_secs(10));

    for pid in &pids {
        eventually(
            &format!("component {pid} ended"),
            Duration::from_secs(10),
            || process_ended(*pid),
        );
    }
    let dir = appliance.dir.path().display().to_string();
    assert_eq!(live_processes_mentioning(&dir), Vec::<i64>::new());
}

#[test]
fn an_orphan_left_by_a_component_is_reaped_by_the_supervisor() {
    let appliance = Appliance::start(
        "[supervisor.components.fax]\n\
         command = [\"@HARNESS@\", \"fax\", \"--leave-orphan\", \"@DIR@/orphan.pid\", \
                    \"--orphan-secs\", \"1\"]\n",
    );
    appliance.wait_up(&["fax"], Duration::from_secs(30));
    let orphan: i64 = std::fs::read_to_string(appliance.path("orphan.pid"))
        .expect("fax wrote its orphan's pid")
        .trim()
        .parse()
        .unwrap();

    // The orphan's parent exited at once, so it now belongs to the supervisor (the subreaper),
    // which must collect it when it exits: a zombie would stay in /proc.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{orphan}/status")) {
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        assert_eq!(ppid, Some(appliance.pid().to_string().as_str()));
    }
    eventually("the orphan reaped", Duration::from_secs(15), || {
        process_gone(orphan)
    });
}
