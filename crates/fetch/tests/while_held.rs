//! Mail on connect against a real `postroom link` (on demand, the modem simulator, a stand-in
//! for pppd): the hold dials, the work runs while the link is up, the release lets it hang up.

use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::link::Mode;
use postroom_control::Client;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_is_up_while_held_and_hangs_up_after_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.system.data_dir = dir.path().join("data");
    config.system.run_dir = dir.path().join("run");
    let link = &mut config.link;
    link.mode = Mode::OnDemand;
    link.modem.device = "sim".into();
    link.modem.lock_dir = dir.path().join("lock");
    link.modem.number = "5551234".into();
    link.modem.guard_time_ms = 300;
    link.simulator.dial_delay_ms = 100;
    link.dial.idle_timeout_secs = 1;
    link.schedule.office_interval_mins = 0;
    link.schedule.off_hours_interval_mins = 0;
    link.schedule.weekend_interval_mins = 0;
    link.ppp.command = "/bin/sleep".into();
    link.ppp.args = vec!["600".into()];
    link.ppp.up_check = "started".into();
    let socket = config.socket("link");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        postroom_link::serve(&config, async {
            let _ = stopped.await;
        })
        .await
    });
    let client = Client::new(&socket).with_timeout(Duration::from_secs(30));
    let started = Instant::now();
    while client.get_json::<Value>("/health").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let seen_during = postroom_fetch::while_held(&socket, "mail: pull on connect", async {
        let status: Value = client.get_json("/status").await.unwrap();
        (
            status["detail"]["state"].clone(),
            status["detail"]["holds"][0]["reason"].clone(),
        )
    })
    .await
    .unwrap();
    assert_eq!(seen_during.0, "up");
    assert_eq!(seen_during.1, "mail: pull on connect");

    let status: Value = client.get_json("/status").await.unwrap();
    assert_eq!(
        status["detail"]["holds"].as_array().unwrap().len(),
        0,
        "the hold was released"
    );
    let started = Instant::now();
    loop {
        let status: Value = client.get_json("/status").await.unwrap();
        if status["detail"]["state"] == "down" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never hung up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
