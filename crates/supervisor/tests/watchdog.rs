//! The watchdog: petted while all is well, not while a critical component keeps failing or the
//! supervisor's own loop is stuck; and systemd's watchdog through sd_notify.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Appliance, component_in, eventually, keepalives, kill};
use postroom_control::BlockingClient;
use rustix::process::Signal;

#[test]
fn the_watchdog_is_petted_while_healthy_and_not_once_a_critical_component_fails_too_long() {
    let appliance = Appliance::start(
        "[supervisor]\nrestart_delay = 0.1\nrestart_delay_max = 0.5\nrespawn_retry = 2\n\
         failing_retry = 60\n\
         [supervisor.components.mail]\ncritical = true\n\
         command = [\"@HARNESS@\", \"mail\", \"--exit-if-exists\", \"@DIR@/break-mail\"]\n\
         [supervisor.components.link]\n\
         [supervisor.watchdog]\ndevice = \"@DIR@/watchdog\"\ninterval = 0.2\n\
         critical_failing_limit = 2\n",
    );
    let device = appliance.path("watchdog");
    let pids = appliance.wait_up(&["mail", "link"], Duration::from_secs(30));

    // Healthy: petted, again and again.
    let before = keepalives(&device);
    eventually("keepalives while healthy", Duration::from_secs(10), || {
        keepalives(&device) >= before + 5
    });

    // mail now fails on every start.
    std::fs::write(appliance.path("break-mail"), "").unwrap();
    kill(Signal::KILL, pids[0]);
    let status = appliance.wait_for("petting withheld", Duration::from_secs(30), |s| {
        !s["detail"]["watchdog"]["withheld"].is_null()
    });
    let reason = status["detail"]["watchdog"]["withheld"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("critical component mail"),
        "reason: {reason}"
    );
    assert_eq!(component_in(&status, "mail").unwrap()["failing"], true);

    let stopped_at = keepalives(&device);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        keepalives(&device),
        stopped_at,
        "petted although mail keeps failing"
    );

    // Fixed and restarted by hand: petting resumes.
    std::fs::remove_file(appliance.path("break-mail")).unwrap();
    let restart = appliance.ctl(&["restart", "mail"]);
    assert!(restart.status.success(), "{restart:?}");
    appliance.wait_up(&["mail"], Duration::from_secs(30));
    eventually("keepalives after recovery", Duration::from_secs(15), || {
        keepalives(&device) > stopped_at
    });
}

#[test]
fn the_watchdog_is_not_petted_while_the_supervisor_loop_is_stuck() {
    let appliance = Appliance::start(
        "[supervisor]\ndebug_hooks = true\n\
         [supervisor.components.mail]\ncritical = true\n\
         [supervisor.watchdog]\ndevice = \"@DIR@/watchdog\"\ninterval = 0.2\n\
         loop_stall_limit = 1\n",
    );
    let device = appliance.path("watchdog");
    appliance.wait_up(&["mail"], Duration::from_secs(30));
    let before = keepalives(&device);
    eventually("keepalives while healthy", Duration::from_secs(10), || {
        keepalives(&device) >= before + 5
    });

    let supervisor = BlockingClient::new(appliance.path("run/supervisor.sock")).unwrap();
    let _: serde_json::Value = supervisor
        .post_json("/debug/stall", &serde_json::json!({ "secs": 8 }))
        .unwrap();
    let stalled_at = Instant::now();

    // Past the stall limit, nothing is petted and the supervisor says it is not healthy.
    std::thread::sleep(Duration::from_millis(2500));
    let first = keepalives(&device);
    let health = supervisor.get_json::<serde_json::Value>("/health");
    assert!(health.is_err(), "/health answered while stuck: {health:?}");
    // The control server runs on the runtime's one worker thread, not on the stuck loop, so
    // `/status` still answers (with the state the loop last published).
    let status = supervisor.get_json::<serde_json::Value>("/status");
    assert!(
        status.is_ok(),
        "/status did not answer while stuck: {status:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let second = keepalives(&device);
    assert!(
        stalled_at.elapsed() < Duration::from_secs(8),
        "the machine is too slow for this test"
    );
    assert_eq!(first, second, "petted while the loop was stuck");

    // Once the loop runs again, so does the petting.
    eventually(
        "keepalives after the stall",
        Duration::from_secs(20),
        || keepalives(&device) > second,
    );
}

#[test]
fn under_systemd_the_supervisor_notifies_ready_pets_systemds_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let notify = socket_path.display().to_string();
    let mut appliance = Appliance::start_with_env(
        "[supervisor.components.mail]\n",
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !(seen.iter().any(|m| m == "READY=1")
        && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("READY=1"),
        "seen: {seen:?}"
    );

    appliance.signal(Signal::TERM);
    while !seen.iter().any(|m| m == "STOPPING=1") {
        let n = socket.recv(&mut buf).expect("STOPPING=1 within 30 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(appliance.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn a_fifo_stand_in_sees_the_timeout_the_keepalives_and_the_magic_close() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("watchdog.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());

    // The reader: everything written until the supervisor closes its end.
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let file = std::fs::File::open(reader_path).unwrap();
        std::io::BufRead::lines(std::io::BufReader::new(file))
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });

    let mut appliance = Appliance::start(&format!(
        "[supervisor.components.mail]\n\
         [supervisor.watchdog]\ndevice = \"{}\"\ninterval = 0.2\n",
        fifo.display()
    ));
    appliance.wait_up(&["mail"], Duration::from_secs(30));
    appliance.wait_for("a few keepalives", Duration::from_secs(15), |s| {
        s["detail"]["watchdog"]["pets"].as_u64().unwrap_or(0) >= 3
    });
    appliance.signal(Signal::TERM);
    assert!(appliance.wait_exit(Duration::from_secs(30)).success());

    let lines = reader.join().unwrap();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("timeout 30"),
        "{lines:?}"
    );
    assert!(
        lines.iter().filter(|l| *l == "keepalive").count() >= 3,
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("V"), "{lines:?}");
}
