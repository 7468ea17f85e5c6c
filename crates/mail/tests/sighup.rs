//! `ctl reload` sends the mail component SIGHUP: it must read its configuration again and keep
//! running, not die of the signal's default action. The signal goes to this test's own process
//! (nextest runs each test in a process of its own), which runs the component's signal loop.

use std::process::Command;
use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::mail::User;
use postroom_mail::app::{App, Prepared};
use postroom_testpeers::{free_port, wait_for};

fn signal_self(signal: &str) {
    let status = Command::new("kill")
        .args([signal, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn sighup_rereads_the_configuration_and_the_component_keeps_running() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("postroom.toml");
    let mut config = Config::default();
    config.system.data_dir = dir.path().join("data");
    config.system.run_dir = dir.path().join("run");
    let mail = &mut config.mail;
    mail.hostname = "mx.office.example".into();
    mail.domains = vec!["office.example".into()];
    // Real ports: the file is checked when it is read again, and port 0 is refused there.
    for listen in [
        &mut mail.listen.smtp,
        &mut mail.listen.submission,
        &mut mail.listen.submissions,
        &mut mail.listen.imap,
        &mut mail.listen.imaps,
        &mut mail.listen.pop3,
        &mut mail.listen.pop3s,
    ] {
        *listen = ([127, 0, 0, 1], free_port()).into();
    }
    mail.users.push(User {
        name: "alice".into(),
        ..User::default()
    });
    config.save(&path).expect("save");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let prepared = Prepared::new(&config).expect("prepare");
    let app = runtime
        .block_on(App::start(prepared, Instant::now()))
        .expect("start");
    let socket = app.socket.clone();
    let running = runtime.spawn({
        let path = path.clone();
        async move { app.run_until_signal(&path).await }
    });
    // The signal handlers are installed when the task first runs.
    std::thread::sleep(Duration::from_secs(1));

    config.mail.users.push(User {
        name: "carol".into(),
        ..User::default()
    });
    config.save(&path).expect("save");
    signal_self("-HUP");

    let carol = dir.path().join("data/mail/carol");
    assert!(
        wait_for(Duration::from_secs(30), || carol.is_dir()),
        "the new user got no Maildir: the configuration was not read again"
    );
    assert!(!running.is_finished(), "the component stopped on SIGHUP");
    let health = runtime.block_on(postroom_control::Client::new(&socket).health());
    assert!(health.is_ok(), "{health:?}");
    // `ctl reload` waits for this count to move before it returns.
    let reloads = || {
        let status: serde_json::Value = runtime
            .block_on(postroom_control::Client::new(&socket).get_json("/status"))
            .expect("GET /status");
        status["detail"]["reloads"].as_u64()
    };
    assert!(
        wait_for(Duration::from_secs(30), || reloads() == Some(1)),
        "reloads: {:?}",
        reloads()
    );

    // SIGTERM still ends it cleanly.
    signal_self("-TERM");
    let ended =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(60), running).await });
    let result = ended.expect("stopped within the bound").expect("task");
    assert!(result.is_ok(), "{result:?}");
}
