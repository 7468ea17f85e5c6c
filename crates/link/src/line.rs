//! The line: the modem on its serial port, and PPP on it once connected. Everything here does
//! I/O; the decisions are in [`crate::policy`].

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use postroom_config::link::Hangup;
use postroom_modem::{DialOutcome, DialTarget, Error as ModemError, Modem, PortLock, open_port};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_serial::SerialStream;
use tracing::Instrument;

use crate::Error;
use crate::policy::{DialReport, Input};

/// How the line is reached, from `[link.modem]` and `[link.ppp]`.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// The serial device (or the simulator's pty).
    pub device: PathBuf,
    /// Port speed.
    pub speed: u32,
    /// Where the UUCP lock goes.
    pub lock_dir: PathBuf,
    /// Init command lines.
    pub init: Vec<String>,
    /// What to dial.
    pub target: DialTarget,
    /// Limit for one command.
    pub command_timeout: Duration,
    /// Limit for a dial.
    pub dial_timeout: Duration,
    /// How to hang up.
    pub hangup: Hangup,
    /// Escape guard time.
    pub guard: Duration,
    /// PPP program.
    pub ppp_command: PathBuf,
    /// Its arguments.
    pub ppp_args: Vec<String>,
    /// When the link counts as up.
    pub up_check: UpCheck,
}

/// When the link counts as up after CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpCheck {
    /// A route through this interface is in /proc/net/route.
    Route(String),
    /// This address accepts a TCP connection.
    Tcp(String),
    /// As soon as the PPP program runs (tests, dev mode).
    Started,
}

impl UpCheck {
    /// Parses `route:ppp0`, `tcp:host:port` or `started`.
    pub fn parse(text: &str) -> Result<UpCheck, Error> {
        if let Some(iface) = text.strip_prefix("route:") {
            return Ok(UpCheck::Route(iface.to_owned()));
        }
        if let Some(addr) = text.strip_prefix("tcp:") {
            return Ok(UpCheck::Tcp(addr.to_owned()));
        }
        if text == "started" {
            return Ok(UpCheck::Started);
        }
        Err(Error::Config(format!(
            "ppp.up_check {text:?} is none of route:IFACE, tcp:HOST:PORT, started"
        )))
    }
}

/// A connected line: the port's lock, the modem, and PPP once started.
#[derive(Debug)]
pub struct Line {
    modem: Modem<SerialStream>,
    _lock: PortLock,
    ppp: Option<Ppp>,
}

#[derive(Debug)]
struct Ppp {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Locks the port, runs the init strings and dials. A connected line is returned with the
/// report; otherwise the port and its lock are let go. A message on `abandon` (the link is
/// stopping) aborts the dial and puts the modem on hook: [`DialReport::Abandoned`].
pub async fn dial(
    cfg: &LineConfig,
    attempt: u32,
    abandon: oneshot::Receiver<()>,
) -> (DialReport, Option<Line>) {
    let span = tracing::info_span!("dial", device = %cfg.device.display(), attempt);
    async {
        match dial_inner(cfg, abandon).await {
            Ok((outcome, line)) => (outcome, line),
            Err(e) => {
                tracing::warn!(error = %e, "modem failed");
                (DialReport::ModemFailed(e.to_string()), None)
            }
        }
    }
    .instrument(span)
    .await
}

async fn dial_inner(
    cfg: &LineConfig,
    mut abandon: oneshot::Receiver<()>,
) -> Result<(DialReport, Option<Line>), ModemError> {
    let lock = PortLock::acquire(&cfg.lock_dir, &cfg.device)?;
    let mut modem = Modem::new(open_port(&cfg.device, cfg.speed)?);
    let dialled = tokio::select! {
        outcome = init_and_dial(&mut modem, cfg) => Some(outcome?),
        // A dropped sender is no request to abandon.
        Ok(()) = &mut abandon => None,
    };
    let Some(outcome) = dialled else {
        abandon_dial(modem, lock, cfg).await;
        return Ok((DialReport::Abandoned, None));
    };
    match &outcome {
        DialOutcome::Answered { code, answer } => {
            tracing::info!(result = %code, answer = answer.as_str(), "dial ended");
        }
        DialOutcome::TimedOut => tracing::info!("dial ended: no result within the dial timeout"),
    }
    Ok(match outcome {
        DialOutcome::Answered { code, answer } => {
            let connected = matches!(code, postroom_modem::ResultCode::Connect(_));
            let line = connected.then_some(Line {
                modem,
                _lock: lock,
                ppp: None,
            });
            (DialReport::Answered { code, answer }, line)
        }
        DialOutcome::TimedOut => (DialReport::TimedOut, None),
    })
}

async fn init_and_dial(
    modem: &mut Modem<SerialStream>,
    cfg: &LineConfig,
) -> Result<DialOutcome, ModemError> {
    modem.init(&cfg.init, cfg.command_timeout).await?;
    modem
        .dial(&cfg.target, cfg.command_timeout, cfg.dial_timeout)
        .await
}

/// Aborts a dial (or the init before it) and makes sure the modem is on hook: ATH after the
/// modem's NO CARRIER, or the whole hang-up when the call got through meanwhile or the modem
/// said nothing.
async fn abandon_dial(mut modem: Modem<SerialStream>, lock: PortLock, cfg: &LineConfig) {
    match modem.abort_dial(cfg.command_timeout).await {
        Ok(Some(code)) if !matches!(code, postroom_modem::ResultCode::Connect(_)) => {
            match modem.expect_ok("ATH", cfg.command_timeout).await {
                Ok(_) => tracing::info!(answer = %code, "dial abandoned, on hook"),
                Err(e) => {
                    tracing::warn!(error = %e, "dial abandoned; the modem did not confirm ATH")
                }
            }
        }
        answer => {
            match &answer {
                Ok(Some(code)) => tracing::info!(answer = %code, "dial abandoned; hanging up"),
                Ok(None) => tracing::info!("dial abandoned; no answer yet, hanging up"),
                Err(e) => tracing::info!(error = %e, "dial abandoned; hanging up"),
            }
            let line = Line {
                modem,
                _lock: lock,
                ppp: None,
            };
            line.hang_up(cfg).await;
        }
    }
}

impl Line {
    /// Starts PPP with the serial port as its stdin and stdout, and runs the up check; the
    /// outcome comes back as [`Input::PppUp`] or [`Input::PppDown`].
    ///
    /// The port is opened again by name for the child: pppd, given no device, uses the tty on
    /// its standard input. Our descriptor stays open, so DTR stays up and the line is not
    /// dropped between the dial and PPP (HUPCL acts on the last close only).
    pub fn start_ppp(&mut self, cfg: &LineConfig, inputs: mpsc::UnboundedSender<Input>) {
        let child = match spawn_ppp(cfg) {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start PPP");
                let _ = inputs.send(Input::PppDown(e.to_string()));
                return;
            }
        };
        let (stop, stopped) = oneshot::channel();
        let check = cfg.up_check.clone();
        let task = tokio::spawn(watch_ppp(child, check, stopped, inputs));
        self.ppp = Some(Ppp { stop, task });
    }

    /// Stops PPP, hangs the modem up and lets the port go.
    pub async fn hang_up(mut self, cfg: &LineConfig) {
        if let Some(ppp) = self.ppp.take() {
            let _ = ppp.stop.send(());
            let _ = ppp.task.await;
        }
        if cfg.hangup == Hangup::Dtr {
            match self.modem.hangup_by_dtr(cfg.guard).await {
                Ok(()) => {
                    tracing::info!("hung up by dropping DTR");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "DTR drop failed; using the escape sequence"),
            }
        }
        // If PPP already dropped the line, the modem is in command state and ignores the
        // escape; ATH then still puts it on hook.
        if let Err(e) = self.modem.escape(cfg.guard, cfg.command_timeout).await {
            tracing::debug!(error = %e, "no OK to the escape sequence");
        }
        match self.modem.expect_ok("ATH", cfg.command_timeout).await {
            Ok(_) => tracing::info!("hung up"),
            Err(e) => tracing::warn!(error = %e, "the modem did not confirm the hang-up"),
        }
    }
}

fn spawn_ppp(cfg: &LineConfig) -> Result<Child, Error> {
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&cfg.device)
            .map_err(|e| Error::Ppp(format!("cannot open {} for PPP: {e}", cfg.device.display())))
    };
    let stdin = tty()?;
    let stdout = stdin.try_clone().map_err(|e| Error::Ppp(e.to_string()))?;
    let child = Command::new(&cfg.ppp_command)
        .args(&cfg.ppp_args)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Ppp(format!("cannot run {}: {e}", cfg.ppp_command.display())))?;
    tracing::info!(command = %cfg.ppp_command.display(), pid = child.id(), "PPP started");
    Ok(child)
}

async fn watch_ppp(
    mut child: Child,
    check: UpCheck,
    mut stop: oneshot::Receiver<()>,
    inputs: mpsc::UnboundedSender<Input>,
) {
    let mut reported_up = false;
    let up = up_check(check);
    tokio::pin!(up);
    loop {
        tokio::select! {
            status = child.wait() => {
                let why = match status {
                    Ok(s) => format!("PPP program exited ({s})"),
                    Err(e) => format!("PPP program lost: {e}"),
                };
                tracing::warn!("{why}");
                let _ = inputs.send(Input::PppDown(why));
                return;
            }
            () = &mut up, if !reported_up => {
                reported_up = true;
                tracing::info!("PPP check passed");
                let _ = inputs.send(Input::PppUp);
            }
            _ = &mut stop => break,
        }
    }
    terminate(&mut child).await;
}

/// SIGTERM, which pppd answers by closing LCP and exiting; SIGKILL if it takes too long.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn up_check(check: UpCheck) {
    let poll = Duration::from_millis(250);
    match check {
        UpCheck::Started => {}
        UpCheck::Route(iface) => loop {
            if let Ok(table) = tokio::fs::read_to_string("/proc/net/route").await
                && has_route(&table, &iface)
            {
                return;
            }
            tokio::time::sleep(poll).await;
        },
        UpCheck::Tcp(addr) => loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(&addr),
            );
            if let Ok(Ok(_)) = attempt.await {
                return;
            }
            tokio::time::sleep(poll).await;
        },
    }
}

/// Whether /proc/net/route lists a route through `iface` (the first column of each row).
pub fn has_route(table: &str, iface: &str) -> bool {
    table
        .lines()
        .skip(1)
        .any(|row| row.split_whitespace().next() == Some(iface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_is_read_by_interface() {
        let table = "Iface\tDestination\tGateway\tFlags\n\
                     eth0\t00000000\t0101A8C0\t0003\n\
                     ppp0\t0000FEA9\t00000000\t0001\n";
        assert!(has_route(table, "ppp0"));
        assert!(!has_route(table, "ppp1"));
        assert!(!has_route("Iface\tDestination\n", "Iface"));
    }

    #[test]
    fn up_checks_parse() {
        assert_eq!(
            UpCheck::parse("route:ppp0").unwrap(),
            UpCheck::Route("ppp0".into())
        );
        assert_eq!(
            UpCheck::parse("tcp:10.0.0.1:25").unwrap(),
            UpCheck::Tcp("10.0.0.1:25".into())
        );
        assert!(UpCheck::parse("ping").is_err());
    }
}
