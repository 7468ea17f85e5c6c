//! Mail on connect, end to end: the mail component and a real `postroom link` (on demand, the
//! built-in modem simulator, a stand-in for pppd, a one-second idle time) with real peers on
//! loopback: Postfix as the ISP's smarthost and as its backup MX, Dovecot as its POP3 domain
//! mailbox. Mail asks the link for a hold when it has mail to send, and reacts to the link
//! coming up by hand.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{PASSWORD, Server, run};
use postroom_config::Config;
use postroom_config::link::Mode;
use postroom_config::mail::{Pop3Mailbox, Pop3Tls, RelayMode, RelayTls};
use postroom_control::Client;
use postroom_testpeers::{Postfix, PostfixOptions, dovecot, free_port, require, wait_for};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Generous bounds for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// A `postroom link` serving on `<run_dir>/link.sock` in its own runtime; stopped when dropped.
struct Link {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), postroom_link::Error>>>,
    runtime: tokio::runtime::Runtime,
}

impl Link {
    fn start(config: &Config) -> Link {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .finish()
            .with(postroom_logging::filter_from_env().0)
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = config.clone();
        let socket = config.socket("link");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            postroom_link::serve(&config, async {
                let _ = stopped.await;
            })
            .await
        });
        let link = Link {
            socket,
            stop: Some(stop),
            task: Some(task),
            runtime,
        };
        assert!(
            wait_for(WAIT, || link.get("/health").is_some()),
            "the link never answered /health"
        );
        link
    }

    fn get(&self, path: &str) -> Option<Value> {
        let client = Client::new(&self.socket);
        self.runtime.block_on(client.get_json(path)).ok()
    }

    fn state(&self) -> String {
        self.get("/status").map_or_else(String::new, |s| {
            s["detail"]["state"].as_str().unwrap_or("").to_owned()
        })
    }

    fn calls(&self) -> Vec<Value> {
        self.get("/calls?limit=100")
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default()
    }

    fn dial(&self) {
        let client = Client::new(&self.socket);
        let reply: Value = self
            .runtime
            .block_on(client.post_json("/dial", &serde_json::json!({})))
            .expect("POST /dial");
        assert_eq!(reply["accepted"], true, "{reply}");
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(WAIT, task).await });
        }
    }
}

/// An on-demand link on the simulator: it answers after 100 ms, a stand-in for pppd counts as
/// up at once, and an idle link hangs up after one second. Nothing is scheduled.
fn on_demand_link(config: &mut Config) {
    let lock_dir = config.system.data_dir.with_file_name("lock");
    std::fs::create_dir_all(&lock_dir).expect("lock dir");
    let link = &mut config.link;
    link.mode = Mode::OnDemand;
    link.time_zone = "UTC".into();
    link.modem.device = "sim".into();
    link.modem.lock_dir = lock_dir;
    link.modem.number = "5551234".into();
    link.modem.guard_time_ms = 300;
    link.modem.dial_timeout_secs = 10;
    link.simulator.dial_delay_ms = 100;
    link.dial.max_attempts = 3;
    link.dial.backoff_initial_secs = 1;
    link.dial.backoff_max_secs = 2;
    link.dial.idle_timeout_secs = 1;
    link.dial.up_timeout_secs = 20;
    link.schedule.office_interval_mins = 0;
    link.schedule.off_hours_interval_mins = 0;
    link.schedule.weekend_interval_mins = 0;
    link.tariff.per_call = 7;
    link.tariff.per_minute = 3;
    link.ppp.command = "/bin/sleep".into();
    link.ppp.args = vec!["600".into()];
    link.ppp.up_check = "started".into();
}

/// Outbound mail through the smarthost on 127.0.0.1:`port`, in plain text (the test Postfix
/// offers no TLS).
fn smarthost(config: &mut Config, port: u16) {
    let relay = &mut config.mail.relay;
    relay.mode = RelayMode::Smarthost;
    relay.host = "127.0.0.1".into();
    relay.port = port;
    relay.tls = RelayTls::None;
}

/// Starts the link from inside the mail component's configuration, so both share the run
/// directory (and so `link.sock`), then the mail component.
fn start(customize: impl FnOnce(&mut Config)) -> (Server, Link) {
    let mut link = None;
    let server = Server::start(|config| {
        customize(config);
        link = Some(Link::start(config));
    });
    (server, link.expect("link started"))
}

/// A Postfix that takes mail for elsewhere.example from loopback and discards it, logging
/// `status=sent`: the ISP's smarthost.
fn smarthost_postfix() -> Postfix {
    Postfix::start(PostfixOptions {
        main_cf: vec![
            "transport_maps = inline:{ elsewhere.example=discard:taken-by-the-smarthost }".into(),
        ],
        ..PostfixOptions::default()
    })
    .expect("postfix")
}

/// alice submits a message to an outside address: submission, STARTTLS, AUTH PLAIN.
fn alice_submits(server: &Server, subject: &str) {
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &server.addresses.submission.port().to_string(),
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@office.example",
            "--to",
            "friend@elsewhere.example",
            "--header",
            &format!("Subject: {subject}"),
            "--body",
            "sent over the modem",
        ],
        None,
    );
    assert!(ok, "swaks failed:\n{out}");
}

fn sent_by_postfix(postfix: &Postfix) -> usize {
    postfix
        .log()
        .lines()
        .filter(|l| l.contains("to=<friend@elsewhere.example>") && l.contains("status=sent"))
        .count()
}

fn wait_until_down_with_calls(link: &Link, calls: usize) -> Vec<Value> {
    let done = wait_for(WAIT, || {
        link.state() == "down"
            && link.calls().len() == calls
            && link.calls().iter().all(|c| c["hangup"].is_string())
    });
    assert!(
        done,
        "the link did not hang up after {calls} call(s): state {}, calls {:?}",
        link.state(),
        link.calls()
    );
    link.calls()
}

#[test]
fn on_demand_submission_dials_flushes_to_the_smarthost_and_logs_one_call() {
    if !require("postfix") || !require("swaks") {
        return;
    }
    let postfix = smarthost_postfix();
    let (server, link) = start(|c| {
        on_demand_link(c);
        smarthost(c, postfix.smtp_port);
    });
    assert_eq!(link.state(), "down");
    assert!(link.calls().is_empty());

    alice_submits(&server, "by modem");

    assert!(
        wait_for(WAIT, || sent_by_postfix(&postfix) == 1),
        "the smarthost never got the message; link {}, calls {:?}, queue {:?}\n{}",
        link.state(),
        link.calls(),
        server.queue(),
        postfix.log()
    );
    let calls = wait_until_down_with_calls(&link, 1);
    let call = &calls[0];
    assert_eq!(call["result"], "connected", "{call}");
    assert_eq!(call["reason"], "hold", "{call}");
    assert_eq!(call["hangup"], "idle", "{call}");
    let duration = call["duration_secs"].as_u64().expect("duration");
    assert!(duration >= 1, "up at least the idle time: {call}");
    assert_eq!(
        call["cost"].as_u64(),
        Some(7 + 3 * duration.div_ceil(60)),
        "{call}"
    );
    assert!(server.queue().entries.is_empty(), "{:?}", server.queue());
    assert_eq!(sent_by_postfix(&postfix), 1, "sent once");
}

#[test]
fn a_line_busy_on_every_attempt_gives_up_and_the_mail_stays_queued() {
    if !require("swaks") {
        return;
    }
    let (server, link) = start(|c| {
        on_demand_link(c);
        c.link.simulator.answer = "busy".into();
        // Nothing listens there; with the line busy nothing is ever sent anyway.
        smarthost(c, free_port());
    });

    alice_submits(&server, "never leaves");

    let gave_up = wait_for(WAIT, || {
        link.calls().last().is_some_and(|c| c["gave_up"] == true)
    });
    assert!(gave_up, "no call given up: {:?}", link.calls());
    let calls = link.calls();
    assert_eq!(calls.len(), 3, "one row per attempt: {calls:?}");
    for (n, call) in calls.iter().enumerate() {
        assert_eq!(call["result"], "BUSY", "{call}");
        assert_eq!(call["attempt"], n as u64 + 1, "{call}");
        assert_eq!(call["cost"], 0, "{call}");
    }
    let status = link.get("/status").expect("status");
    assert!(
        status["detail"]["last_failure"].is_string(),
        "the failure is shown: {status}"
    );

    // The mail waits, and is not the cause of a dialling loop: it asks again only after
    // `[mail.on_connect] redial_after` (15 minutes by default).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        link.calls().len(),
        3,
        "redialled at once: {:?}",
        link.calls()
    );
    let queue = server.queue();
    assert!(queue.held, "{queue:?}");
    assert_eq!(server.queued_remote(), ["friend@elsewhere.example"]);
    let recipient = &queue.entries[0].recipients[0];
    assert_eq!(recipient.status, "pending", "{queue:?}");
}

/// The tester's case: the only queued message deleted by hand while the link waited to
/// redial after BUSY. The link used to redial, connect and bill a call for an empty queue.
#[test]
fn queue_emptied_by_hand_while_the_link_waits_to_redial_cancels_the_call() {
    if !require("swaks") {
        return;
    }
    let (server, link) = start(|c| {
        on_demand_link(c);
        c.link.simulator.busy_first = 1;
        // Long enough for mail (which looks at its queue every second) to give up its hold.
        c.link.dial.backoff_initial_secs = 8;
        c.link.dial.backoff_max_secs = 8;
        smarthost(c, free_port());
    });

    alice_submits(&server, "deleted before it leaves");
    assert!(
        wait_for(WAIT, || link.calls().len() == 1
            && link.state() == "waiting"),
        "no BUSY: state {}, calls {:?}",
        link.state(),
        link.calls()
    );
    let id = server.queue().entries[0].id.clone();
    let client = Client::new(&server.socket);
    server
        .block_on(client.delete(&format!("/queue/{id}")))
        .expect("DELETE /queue/ID");

    assert!(
        wait_for(WAIT, || link.state() == "down"),
        "the redial was not cancelled: state {}",
        link.state()
    );
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(link.calls().len(), 1, "redialled: {:?}", link.calls());
    assert_eq!(link.state(), "down");
}

#[test]
fn permanent_link_sends_at_once_without_dialling() {
    if !require("postfix") || !require("swaks") {
        return;
    }
    let postfix = smarthost_postfix();
    let (server, link) = start(|c| {
        on_demand_link(c);
        c.link.mode = Mode::Permanent;
        smarthost(c, postfix.smtp_port);
    });
    assert_eq!(link.state(), "permanent");
    assert!(!server.queue().held);

    alice_submits(&server, "straight out");

    assert!(
        wait_for(WAIT, || sent_by_postfix(&postfix) == 1),
        "not sent; queue {:?}\n{}",
        server.queue(),
        postfix.log()
    );
    assert!(link.calls().is_empty(), "dialled: {:?}", link.calls());
    let status = link.get("/status").expect("status");
    assert_eq!(
        status["detail"]["holds"].as_array().map(Vec::len),
        Some(0),
        "no holds in permanent mode: {status}"
    );
}

/// Hands a message for alice to the ISP's backup MX.
fn submit_to_backup_mx(port: u16) {
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--from",
            "carol@far.example",
            "--to",
            "alice@office.example",
            "--header",
            "Subject: held at the ISP",
            "--body",
            "waited for the link",
        ],
        None,
    );
    assert!(ok, "the backup MX refused the message:\n{out}");
}

#[test]
fn link_up_by_hand_sends_etrn_and_the_backup_mx_delivers_to_alice() {
    if !require("postfix") || !require("swaks") {
        return;
    }
    let our_mx = free_port();
    // It does not retry by itself within the test: only ETRN brings the mail.
    let backup_mx =
        Postfix::start(PostfixOptions::backup_mx("office.example", our_mx)).expect("postfix");

    // The link is down and our MX does not answer: the backup MX defers the mail.
    submit_to_backup_mx(backup_mx.smtp_port);
    assert!(
        wait_for(WAIT, || backup_mx.log().contains("status=deferred")),
        "never deferred:\n{}",
        backup_mx.log()
    );

    let (server, link) = start(|c| {
        on_demand_link(c);
        c.mail.listen.smtp = ([127, 0, 0, 1], our_mx).into();
        c.mail.on_connect.etrn_host = "127.0.0.1".into();
        c.mail.on_connect.etrn_port = backup_mx.smtp_port;
    });
    // Nothing to send: no call, no ETRN, and the backup MX keeps the mail.
    std::thread::sleep(Duration::from_secs(3));
    assert!(link.calls().is_empty(), "{:?}", link.calls());
    assert!(server.inbox("alice").is_empty());

    link.dial();

    let files = server.wait_inbox("alice", 1, WAIT);
    assert_eq!(
        files.len(),
        1,
        "not delivered after ETRN; calls {:?}\n{}",
        link.calls(),
        backup_mx.log()
    );
    let text = std::fs::read_to_string(&files[0]).expect("read");
    assert!(text.contains("Subject: held at the ISP"), "{text}");
    assert!(
        text.contains("Delivered-To: alice@office.example"),
        "{text}"
    );
    let calls = wait_until_down_with_calls(&link, 1);
    assert_eq!(calls[0]["reason"], "manual", "{:?}", calls[0]);
    assert!(server.inbox("bob").is_empty());
}

#[test]
fn multidrop_on_connect_splits_to_alice_and_bob_once_and_a_second_call_brings_nothing() {
    if !require("dovecot") {
        return;
    }
    let isp = dovecot::Dovecot::start_tls();
    isp.deliver(
        "1.isp",
        "Return-Path: <carol@far.example>\nDelivered-To: office@isp.example\n\
         X-Original-To: alice@office.example\nFrom: carol@far.example\n\
         To: alice@office.example\nSubject: for alice\n\nhello alice\n",
    );
    isp.deliver(
        "2.isp",
        "Return-Path: <dave@far.example>\nDelivered-To: office@isp.example\n\
         X-Original-To: bob@office.example\nFrom: dave@far.example\n\
         To: team@list.example\nSubject: for bob\n\nhello bob\n",
    );
    isp.deliver(
        "3.isp",
        "From: erin@far.example\nTo: Bob <bob@office.example>\nCc: alice@office.example\n\
         Subject: for both\n\nhello both\n",
    );

    let (server, link) = start(|c| {
        on_demand_link(c);
        c.mail.on_connect.pop3 = vec![Pop3Mailbox {
            host: "127.0.0.1".into(),
            port: Some(isp.port),
            user: dovecot::USER.into(),
            password: dovecot::PASSWORD.into(),
            // Plain POP3 upgraded with STLS, the certificate from the ISP's private CA.
            tls: Pop3Tls::StartTls,
            ca_file: Some(isp.ca_file()),
            // Left at the ISP: only the recorded UIDs keep the second call from fetching
            // them again.
            keep: true,
            ..Pop3Mailbox::default()
        }];
    });

    link.dial();
    let alice = server.wait_inbox("alice", 2, WAIT);
    let bob = server.wait_inbox("bob", 2, WAIT);
    wait_until_down_with_calls(&link, 1);
    let subjects = |files: &[PathBuf]| {
        let mut s: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read"))
            .map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        s.sort();
        s
    };
    assert_eq!(subjects(&alice), ["for alice", "for both"], "{}", isp.log());
    assert_eq!(subjects(&bob), ["for bob", "for both"], "{}", isp.log());
    assert_eq!(isp.count(), 3, "kept at the ISP");
    assert_eq!(isp.logins(), (1, 1), "one login, over TLS:\n{}", isp.log());

    // The second call fetches again: the UIDs are known, nothing is delivered twice.
    link.dial();
    wait_until_down_with_calls(&link, 2);
    assert_eq!(
        isp.log().matches("Login: user=<isp-office>").count(),
        2,
        "the second call did not log in to the ISP:\n{}",
        isp.log()
    );
    assert_eq!(server.inbox("alice").len(), 2);
    assert_eq!(server.inbox("bob").len(), 2);
}
