//! Putting the link together from config, and the `postroom link` command.

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use postroom_config::Config;
use postroom_config::link::{Link, Mode};
use postroom_modem::DialTarget;
use postroom_modem_sim::{Answer, Behaviour, Simulator};

use crate::Error;
use crate::calendar::{Schedule, Tariff, time_zone};
use crate::line::{LineConfig, UpCheck};
use crate::policy::{Policy, PolicyConfig};
use crate::store::CallLog;

/// `postroom link [--config FILE]`.
#[derive(Debug, Parser)]
#[command(
    name = "postroom link",
    about = "the link to the ISP: permanent, or a modem dialled on demand"
)]
struct Args {
    /// The configuration file [default: /data/postroom/postroom.toml]. Its relative paths are
    /// taken from its own directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The entry point of `postroom link`.
pub fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let args = Args::parse_from(args);
    let (path, config) = Config::load_for_command(args.config.as_deref())?;
    let _logging = postroom_logging::init("link")?;
    // One thread is plenty for one line and a control socket, and an idle worker thread costs
    // memory (docs/PERFORMANCE.md "Memory"). The call log's reads go to `spawn_blocking`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The supervisor sends SIGHUP to every component on `ctl reload`; without a handler it
        // would end this process and drop a call in progress.
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let running = config.link.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // Not yet: applying a new [link] section live; a call in progress would
                    // have to finish first. The supervisor's restart applies it.
                    match Config::load(&path) {
                        Ok(read) if read.link == running => {
                            tracing::debug!("reload: [link] unchanged")
                        }
                        Ok(_) => tracing::warn!(
                            "reload: [link] changed; it applies after `postroom ctl restart link`"
                        ),
                        Err(e) => tracing::warn!(error = %e, "reload: configuration not read"),
                    }
                }
            });
        }
        serve(&config, shutdown_signal()).await
    })?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the link until `shutdown` completes; then hangs up if connected.
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let link = &config.link;
    let on_demand = link.mode == Mode::OnDemand;
    let policy_cfg = policy_config(link)?;

    // Device "sim" starts the built-in simulator on a pty, so dev mode dials with no hardware.
    let simulator = if on_demand && link.modem.device == "sim" {
        let sim = Simulator::start(sim_behaviour(&link.simulator)?, None)
            .map_err(|e| Error::Config(format!("modem simulator: {e}")))?;
        tracing::info!(pty = %sim.path().display(), "device \"sim\": modem simulator started");
        Some(sim)
    } else {
        None
    };
    let device = match &simulator {
        Some(sim) => sim.path().to_owned(),
        None => PathBuf::from(&link.modem.device),
    };
    let line_cfg = line_config(link, device.clone())?;
    if on_demand {
        std::fs::create_dir_all(&line_cfg.lock_dir).map_err(|e| {
            Error::Config(format!(
                "modem.lock_dir {}: {e}",
                line_cfg.lock_dir.display()
            ))
        })?;
    }

    std::fs::create_dir_all(&config.system.data_dir)
        .map_err(|e| Error::Store(format!("{}: {e}", config.system.data_dir.display())))?;
    let log = CallLog::open(&config.system.data_dir.join("link.redb"))?;

    let policy = Policy::new(policy_cfg, Timestamp::now());
    tracing::info!(mode = %link.mode, state = %policy.state(), "link starting");
    let (handle, task) = crate::service::start(policy, line_cfg, log);
    let router = crate::api::router(handle.clone(), on_demand, device.display().to_string());
    let served = postroom_control::serve_until(config.socket("link"), router, shutdown).await;

    // A call in progress is hung up before the process ends; a dial in progress ends with the
    // port closed, which a modem takes as a hang-up too.
    handle.send(crate::service::Request::Shutdown);
    if tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .is_err()
    {
        tracing::warn!("the hang-up did not finish in 30 s");
    }
    served.map_err(|e| Error::Control(e.to_string()))?;
    drop(simulator);
    Ok(())
}

/// Seconds from config, capped at ten years: the policy adds these to timestamps, and a
/// value past the end of time must not panic it.
fn secs(n: u64) -> SignedDuration {
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    SignedDuration::from_secs(i64::try_from(n.min(TEN_YEARS)).unwrap_or(0))
}

/// The policy's numbers from `[link]`.
pub fn policy_config(link: &Link) -> Result<PolicyConfig, Error> {
    let tz = time_zone(&link.time_zone)?;
    let d = &link.dial;
    if d.max_attempts == 0 {
        return Err(Error::Config("dial.max_attempts must be at least 1".into()));
    }
    let s = &link.schedule;
    let any_schedule =
        s.office_interval_mins + s.off_hours_interval_mins + s.weekend_interval_mins > 0;
    Ok(PolicyConfig {
        on_demand: link.mode == Mode::OnDemand,
        max_attempts: d.max_attempts,
        backoff_initial: secs(d.backoff_initial_secs),
        backoff_max: secs(d.backoff_max_secs.max(d.backoff_initial_secs)),
        line_rest_window: secs(d.line_rest_window_secs),
        line_rest: secs(d.line_rest_secs),
        line_rest_retries: d.line_rest_retries,
        idle_timeout: secs(d.idle_timeout_secs),
        max_call: secs(d.max_call_secs),
        up_timeout: secs(d.up_timeout_secs),
        schedule: if any_schedule {
            Some(Schedule::from_config(s, tz.clone())?)
        } else {
            None
        },
        tariff: Tariff::from_config(&link.tariff, tz)?,
    })
}

/// The line's settings from `[link.modem]` and `[link.ppp]`.
pub fn line_config(link: &Link, device: PathBuf) -> Result<LineConfig, Error> {
    let m = &link.modem;
    let target = if m.apn.is_empty() {
        if m.number.is_empty() && link.mode == Mode::OnDemand {
            return Err(Error::Config(
                "modem.number is empty (or set modem.apn for cellular)".into(),
            ));
        }
        DialTarget::Phone {
            prefix: m.dial_prefix.clone(),
            number: m.number.clone(),
        }
    } else {
        DialTarget::Cellular { apn: m.apn.clone() }
    };
    Ok(LineConfig {
        device,
        speed: m.speed,
        lock_dir: m.lock_dir.clone(),
        init: m.init.clone(),
        target,
        command_timeout: Duration::from_secs(m.command_timeout_secs),
        dial_timeout: Duration::from_secs(m.dial_timeout_secs),
        hangup: m.hangup,
        guard: Duration::from_millis(m.guard_time_ms),
        ppp_command: link.ppp.command.clone(),
        ppp_args: link.ppp.args.clone(),
        up_check: UpCheck::parse(&link.ppp.up_check)?,
    })
}

fn sim_behaviour(s: &postroom_config::link::Simulator) -> Result<Behaviour, Error> {
    let answer = match s.answer.as_str() {
        "connect" => Answer::Connect(s.rate),
        "busy" => Answer::Busy,
        "no-dialtone" => Answer::NoDialtone,
        "no-answer" => Answer::NoAnswer,
        "no-carrier" => Answer::NoCarrier,
        "error" => Answer::Error,
        other => {
            return Err(Error::Config(format!(
                "simulator.answer {other:?} is not known"
            )));
        }
    };
    Ok(Behaviour {
        busy_first: s.busy_first,
        answer,
        split: s.split,
        line_rest: Duration::from_millis(s.line_rest_ms),
        dial_delay: Duration::from_millis(s.dial_delay_ms),
        ..Behaviour::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_in_config_do_not_break_the_policy() {
        let mut link = Link {
            mode: Mode::OnDemand,
            ..Link::default()
        };
        link.dial.max_call_secs = u64::MAX;
        link.dial.idle_timeout_secs = u64::MAX;
        link.dial.backoff_max_secs = u64::MAX;
        let mut policy = Policy::new(policy_config(&link).unwrap(), Timestamp::now());
        let now = Timestamp::now();
        policy.handle(now, crate::policy::Input::Dial);
        let connect = postroom_modem::ResultCode::Connect(None);
        let report = crate::policy::DialReport::Answered {
            code: connect,
            answer: "CONNECT".into(),
        };
        policy.handle(now, crate::policy::Input::DialDone(report));
        policy.handle(now, crate::policy::Input::PppUp);
        assert_eq!(policy.state(), crate::policy::LinkState::Up);
        assert!(policy.next_deadline().is_some());
        policy.handle(now, crate::policy::Input::Tick);
        assert_eq!(policy.backoff(40), secs(u64::MAX));
    }
}
