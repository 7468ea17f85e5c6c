//! `postroom link` end to end: the real control socket, the modem simulator on a real pty, a
//! stand-in for pppd that must see data cross the line before the "ISP" answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postroom_config::Config;
use postroom_config::link::Mode;
use postroom_control::{Client, Method, StatusCode};
use postroom_link::api::HoldReply;
use postroom_link::store::LoggedCall;
use postroom_modem_sim::{Answer, Behaviour, Simulator};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const WAIT: Duration = Duration::from_secs(60);

/// The stand-in for pppd. It gets the serial line as stdin and stdout, as pppd does. It sends
/// a probe across the line and reads it back (the simulator's far end is a loopback), and only
/// then makes the "ISP's host" answer on the port given as its argument, which is what the
/// link's up check waits for. It leaves its pid beside itself, in `pppd-standin.pid`.
const PPPD_STANDIN: &str = r#"#!/bin/sh
echo $$ > "$0.pid"
printf 'LCP-PROBE'
probe=$(dd bs=1 count=9 2>/dev/null)
[ "$probe" = "LCP-PROBE" ] || { echo "no data across the line: $probe" >&2; exit 3; }
exec socat TCP-LISTEN:"$1",bind=127.0.0.1,reuseaddr,fork EXEC:/bin/true
"#;

fn socat_available() -> bool {
    let found = std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "socat is missing, and CI needs it"
        );
        eprintln!("skipping: socat is not installed");
    }
    found
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct Rig {
    _dir: tempfile::TempDir,
    lock_dir: PathBuf,
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), postroom_link::Error>>,
}

fn config(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.system.data_dir = dir.join("data");
    config.system.run_dir = dir.join("run");
    let script = dir.join("pppd-standin");
    std::fs::write(&script, PPPD_STANDIN).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let port = free_port();

    let link = &mut config.link;
    link.mode = Mode::OnDemand;
    link.time_zone = "UTC".into();
    link.modem.device = "sim".into();
    link.modem.lock_dir = dir.join("lock");
    std::fs::create_dir_all(&link.modem.lock_dir).unwrap();
    link.modem.number = "5551234".into();
    link.modem.init = vec!["ATZ".into(), "ATE1V1".into()];
    link.modem.guard_time_ms = 600;
    link.modem.dial_timeout_secs = 10;
    link.simulator.dial_delay_ms = 200;
    link.simulator.split = true;
    link.dial.max_attempts = 3;
    link.dial.backoff_initial_secs = 1;
    link.dial.backoff_max_secs = 2;
    link.dial.idle_timeout_secs = 2;
    link.dial.up_timeout_secs = 20;
    link.schedule.office_interval_mins = 0;
    link.schedule.off_hours_interval_mins = 0;
    link.schedule.weekend_interval_mins = 0;
    link.tariff.per_call = 7;
    link.tariff.per_minute = 3;
    link.ppp.command = script;
    link.ppp.args = vec![port.to_string()];
    link.ppp.up_check = format!("tcp:127.0.0.1:{port}");
    tweak(&mut config);
    config
}

impl Rig {
    async fn start(dir: tempfile::TempDir, config: Config) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .finish()
            .with(postroom_logging::filter_from_env().0)
            .try_init();
        let socket = config.socket("link");
        let lock_dir = config.link.modem.lock_dir.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            postroom_link::serve(&config, async {
                let _ = stopped.await;
            })
            .await
        });
        let rig = Rig {
            _dir: dir,
            lock_dir,
            socket,
            stop: Some(stop),
            task,
        };
        let started = Instant::now();
        while rig.client().get_json::<Value>("/health").await.is_err() {
            assert!(started.elapsed() < WAIT, "the link never answered /health");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rig
    }

    fn client(&self) -> Client {
        Client::new(&self.socket).with_timeout(WAIT)
    }

    async fn state(&self) -> String {
        let status: Value = self.client().get_json("/status").await.unwrap();
        status["detail"]["state"].as_str().unwrap().to_owned()
    }

    async fn wait_for_state(&self, want: &str) {
        let started = Instant::now();
        while self.state().await != want {
            assert!(started.elapsed() < WAIT, "the link never became {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the link and hands back its directory for a look at what it left.
    async fn stop_keeping_dir(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(WAIT, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap())
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_dials_connects_runs_ppp_and_idle_hangs_up_into_the_call_log() {
    if !socat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |_| {});
    let rig = Rig::start(dir, config).await;
    assert_eq!(rig.state().await, "down");

    let mut events = rig.client().stream_lines("/events").await.unwrap();

    let hold: HoldReply = rig
        .client()
        .post_json("/hold", &json!({"reason": "mail: 1 queued"}))
        .await
        .unwrap();
    assert_eq!(hold.state, "up");
    let status: Value = rig.client().get_json("/status").await.unwrap();
    assert_eq!(status["detail"]["state"], "up");
    assert_eq!(status["detail"]["mode"], "on-demand");
    assert!(status["detail"]["current_call"]["connected"].is_string());
    assert_eq!(status["detail"]["holds"][0]["reason"], "mail: 1 queued");

    // Held: no idle hang-up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.state().await, "up");

    rig.client()
        .delete(&format!("/hold/{}", hold.id))
        .await
        .unwrap();
    rig.wait_for_state("down").await;

    let calls: Vec<LoggedCall> = rig.client().get_json("/calls").await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0].record;
    assert_eq!(call.result, "connected");
    assert!(call.answer.contains("CONNECT 33600"), "{}", call.answer);
    assert_eq!(call.hangup, Some(postroom_link::policy::HangupCause::Idle));
    assert!(
        call.duration_secs >= 5,
        "held 3 s + idle 2 s, got {}",
        call.duration_secs
    );
    assert!(call.connected.is_some() && call.end > call.start);
    assert_eq!(call.cost, 7 + 3, "per-call charge plus one started minute");

    let mut states = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(WAIT, events.next_line())
        .await
        .unwrap()
    {
        let change: Value = serde_json::from_str(&line).unwrap();
        let state = change["state"].as_str().unwrap().to_owned();
        states.push(state.clone());
        if state == "down" && states.len() > 1 {
            break;
        }
    }
    assert_eq!(
        states,
        ["down", "dialling", "connecting", "up", "hanging-up", "down"]
    );

    // The port's UUCP lock was let go with the call.
    let locks: Vec<_> = std::fs::read_dir(&rig.lock_dir).unwrap().collect();
    assert!(locks.is_empty(), "{locks:?}");
    drop(events);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_on_every_attempt_backs_off_gives_up_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |c| c.link.simulator.answer = "busy".into());
    let rig = Rig::start(dir, config).await;

    let started = Instant::now();
    let reply = rig
        .client()
        .request(Method::POST, "/hold", Some(&json!({"reason": "mail"})))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.text();
    assert!(text.contains("BUSY on all 3 attempts; giving up"), "{text}");
    // Pauses of 1 s and 2 s between the three dials: never an immediate redial.
    assert!(took >= Duration::from_secs(3), "gave up after {took:?}");

    let calls: Vec<LoggedCall> = rig.client().get_json("/calls").await.unwrap();
    let results: Vec<(&str, bool, u64)> = calls
        .iter()
        .map(|c| (c.record.result.as_str(), c.record.gave_up, c.record.cost))
        .collect();
    assert_eq!(
        results,
        [("BUSY", false, 0), ("BUSY", false, 0), ("BUSY", true, 0)]
    );
    let status: Value = rig.client().get_json("/status").await.unwrap();
    assert_eq!(status["detail"]["state"], "down");
    assert!(
        status["detail"]["last_failure"]
            .as_str()
            .unwrap()
            .contains("giving up")
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_to_the_dial_fails_the_call_with_the_modems_answer() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |c| c.link.simulator.answer = "error".into());
    let rig = Rig::start(dir, config).await;
    let reply = rig
        .client()
        .request(Method::POST, "/hold", Some(&json!({"reason": "mail"})))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let calls: Vec<LoggedCall> = rig.client().get_json("/calls").await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].record.result, "ERROR");
    assert_eq!(calls[0].record.answer, "ERROR");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_mode_answers_holds_at_once_and_never_dials() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |c| {
        c.link.mode = Mode::Permanent;
        // Were anything dialled, it would fail on this device and land in the call log.
        c.link.modem.device = "/nonexistent/ttyS9".into();
    });
    let rig = Rig::start(dir, config).await;
    assert_eq!(rig.state().await, "permanent");
    let hold: HoldReply = rig
        .client()
        .post_json("/hold", &json!({"reason": "mail"}))
        .await
        .unwrap();
    assert_eq!(hold.state, "up");
    let reply = rig
        .client()
        .request(Method::POST, "/dial", None)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::CONFLICT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls: Vec<LoggedCall> = rig.client().get_json("/calls").await.unwrap();
    assert!(calls.is_empty());
    assert_eq!(rig.state().await, "permanent");
    rig.client()
        .delete(&format!("/hold/{}", hold.id))
        .await
        .unwrap();
    rig.stop().await;
}

/// Case modem-line-needs-rest over the whole stack: the simulated exchange gives NO DIALTONE
/// to a dial within 3 s of a hang-up; the link waits its guard time and dials again. Hang-up
/// by DTR is configured, which a pty cannot do, so this also shows the fallback to `+++ATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_line_needs_rest_end_to_end() {
    if !socat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |c| {
        c.link.simulator.line_rest_ms = 3000;
        c.link.dial.line_rest_secs = 3;
        c.link.dial.line_rest_window_secs = 10;
        c.link.modem.hangup = postroom_config::link::Hangup::Dtr;
    });
    let rig = Rig::start(dir, config).await;

    let first: HoldReply = rig
        .client()
        .post_json("/hold", &json!({"reason": "first"}))
        .await
        .unwrap();
    rig.client()
        .delete(&format!("/hold/{}", first.id))
        .await
        .unwrap();
    let reply = rig
        .client()
        .request(Method::POST, "/hangup", None)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    rig.wait_for_state("down").await;

    let second: HoldReply = rig
        .client()
        .post_json("/hold", &json!({"reason": "second"}))
        .await
        .unwrap();
    assert_eq!(second.state, "up");
    let calls: Vec<LoggedCall> = rig.client().get_json("/calls").await.unwrap();
    let results: Vec<&str> = calls.iter().map(|c| c.record.result.as_str()).collect();
    assert_eq!(results, ["connected", "NO DIALTONE"], "{calls:?}");
    assert_eq!(
        calls[0].record.hangup,
        Some(postroom_link::policy::HangupCause::Manual)
    );
    assert!(!calls[1].record.gave_up);
    rig.client()
        .delete(&format!("/hold/{}", second.id))
        .await
        .unwrap();
    rig.stop().await;
}

/// Stopping the link while a call is up hangs up and still logs the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_up_hangs_up_and_logs_the_call() {
    if !socat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |_| {});
    let data = config.system.data_dir.clone();
    let lock_dir = config.link.modem.lock_dir.clone();
    let rig = Rig::start(dir, config.clone()).await;
    let hold: HoldReply = rig
        .client()
        .post_json("/hold", &json!({"reason": "mail"}))
        .await
        .unwrap();
    assert_eq!(hold.state, "up");
    let pppd = std::fs::read_to_string(keep_path(&rig, "pppd-standin.pid")).unwrap();
    let pppd: i32 = pppd.trim().parse().unwrap();
    let keep = rig.stop_keeping_dir().await;
    assert!(
        process_ended(pppd),
        "the PPP program {pppd} outlived the link"
    );

    let log = postroom_link::store::CallLog::open(&data.join("link.redb")).unwrap();
    let calls = log.recent(10).unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].record.result, "connected");
    assert_eq!(
        calls[0].record.hangup,
        Some(postroom_link::policy::HangupCause::Manual)
    );
    assert!(
        std::fs::read_dir(&lock_dir).unwrap().next().is_none(),
        "lock left behind"
    );
    drop(keep);
}

/// Stopping the link while it dialled used to wait for the dial to end: up to the dial
/// timeout (90 s by default), far past the supervisor's SIGKILL (10 s), which left the modem
/// dialling and a PPP program started on a late CONNECT without its parent. The dial is
/// abandoned now: aborted, the modem put on hook, the port's lock let go, the attempt logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_dialling_abandons_the_dial_and_puts_the_modem_on_hook() {
    let sim = Simulator::start(
        Behaviour {
            answer: Answer::Connect(33600),
            dial_delay: Duration::from_secs(60),
            ..Behaviour::default()
        },
        None,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), |c| {
        c.link.modem.device = sim.path().display().to_string();
        c.link.modem.dial_timeout_secs = 90;
    });
    let data = config.system.data_dir.clone();
    let lock_dir = config.link.modem.lock_dir.clone();
    let rig = Rig::start(dir, config).await;
    let _: Value = rig.client().post_json("/dial", &()).await.unwrap();
    let started = Instant::now();
    while sim.stats().dials.is_empty() {
        assert!(started.elapsed() < WAIT, "the modem was never dialled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stopping = Instant::now();
    let keep = rig.stop_keeping_dir().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    let stats = sim.stats();
    assert_eq!(stats.connects, 0, "{stats:?}");
    assert_eq!(stats.hangups, 1, "ATH after the aborted dial: {stats:?}");
    assert!(
        std::fs::read_dir(&lock_dir).unwrap().next().is_none(),
        "lock left behind"
    );
    let log = postroom_link::store::CallLog::open(&data.join("link.redb")).unwrap();
    let calls = log.recent(10).unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].record.result, "abandoned");
    assert!(calls[0].record.gave_up);
    drop(keep);
}

/// A path in the rig's directory.
fn keep_path(rig: &Rig, name: &str) -> PathBuf {
    rig._dir.path().join(name)
}

/// Whether process `pid` has ended: gone, or a zombie nobody has collected yet.
fn process_ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z"),
    }
}

/// The attacker's case: a `POST /hold` whose client disconnects while the link is still
/// dialling used to leave its hold behind, keeping the line up for nobody until max_call_secs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_of_a_client_that_disconnects_before_the_link_is_up_is_released() {
    if !socat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A slow dial, so the client is gone long before the link could be up.
    let config = config(dir.path(), |c| c.link.simulator.dial_delay_ms = 4_000);
    let rig = Rig::start(dir, config).await;

    let mut raw = tokio::net::UnixStream::connect(&rig.socket).await.unwrap();
    let body = r#"{"reason":"gone soon"}"#;
    let request = format!(
        "POST /hold HTTP/1.1\r\nHost: link\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut raw, request.as_bytes())
        .await
        .unwrap();
    let holds = |status: &Value| status["detail"]["holds"].as_array().map_or(0, Vec::len);
    let started = Instant::now();
    loop {
        let status: Value = rig.client().get_json("/status").await.unwrap();
        if holds(&status) == 1 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the hold was never made: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(raw);

    // The hold goes with its client; the call (if it got through) idles down.
    let started = Instant::now();
    loop {
        let status: Value = rig.client().get_json("/status").await.unwrap();
        if holds(&status) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hold outlived its client: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.wait_for_state("down").await;
    rig.stop().await;
}
