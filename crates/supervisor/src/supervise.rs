//! The supervisor's main loop: start the components, watch their health, restart what fails,
//! reap every child, and stop everything on SIGTERM or SIGINT.
//!
//! Threads: the loop runs on the main thread (in `block_on`), which is also the only thread
//! that forks, as `PR_SET_PDEATHSIG` requires (see `spawn`). Health probes, the pipes of the
//! children and the control server run on one tokio worker thread (so `/status` answers while
//! the loop is stuck; one is enough for this light load, and each idle thread costs memory:
//! docs/PERFORMANCE.md "Memory"); the watchdog is petted from a thread of its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postroom_control::{Client, Health};
use rustix::process::{Pid, Signal};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::Error;
use crate::api::{self, Request, Shared};
use crate::logs::{self, LogBook, Stream};
use crate::notify::Notifier;
use crate::policy::CrashCount;
use crate::reap::{self, Ending};
use crate::settings::{Settings, Spec};
use crate::spawn;
use crate::status::{ComponentStatus, LastExit, ReloadReply, State};
use crate::watchdog::{Gate, Watchdog};

/// How often the loop turns when nothing happens: it checks deadlines and beats the heart.
const TICK: Duration = Duration::from_millis(100);

/// How often a starting component is asked for `/health`, to see it come up soon.
const STARTING_PROBE: Duration = Duration::from_millis(100);

/// After SIGKILL at shutdown, how long to wait for the kernel to end the children.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How many log lines a failing component's status carries.
const FAILING_LINES: usize = 10;

/// Runs the supervisor until SIGTERM or SIGINT, keeping the components' recent lines in `logs`
/// (where the supervisor's own already go, see `cli::run`).
pub fn run(settings: Settings, logs: LogBook) -> Result<(), Error> {
    // Orphans of our components come to us rather than to init, so we reap them and can stop
    // them at shutdown.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(error = %e, "cannot become the subreaper of the components");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("supervisor-io")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(Supervisor::new(settings, logs).run())
}

/// One component's process while it runs.
#[derive(Debug)]
struct Child {
    pid: Pid,
    started: Instant,
    /// The last time `/health` answered.
    healthy_at: Option<Instant>,
    next_probe: Instant,
    probing: bool,
    /// Why we signalled it to stop, and when SIGKILL follows.
    stopping: Option<(String, Option<Instant>)>,
}

/// One component: its spec and its life so far.
#[derive(Debug)]
struct Component {
    spec: Spec,
    child: Option<Child>,
    next_start: Option<Instant>,
    starts: u32,
    crashes: CrashCount,
    failing_since: Option<Instant>,
    last_exit: Option<LastExit>,
    /// Start again at once when the current process ends (manual restart).
    restart_now: bool,
    /// No longer configured: stopped, and dropped from the table once ended.
    retired: bool,
}

impl Component {
    fn new(spec: Spec, start_at: Instant) -> Component {
        Component {
            spec,
            child: None,
            next_start: Some(start_at),
            starts: 0,
            crashes: CrashCount::default(),
            failing_since: None,
            last_exit: None,
            restart_now: false,
            retired: false,
        }
    }

    /// Starts it again at once, forgetting its crashes: SIGTERM (SIGKILL after
    /// `stop_timeout`) if it runs, then a start as soon as it has ended.
    fn restart(&mut self, stop_timeout: Duration, reason: &str) {
        self.crashes = CrashCount::default();
        self.failing_since = None;
        match self.child.as_mut() {
            Some(child) => {
                self.restart_now = true;
                if child.stopping.is_none() {
                    signal_group(child.pid, Signal::TERM);
                    let kill_at = Instant::now() + stop_timeout;
                    child.stopping = Some((reason.to_owned(), Some(kill_at)));
                }
            }
            None => self.next_start = Some(Instant::now()),
        }
    }

    /// Stops it for good: it is no longer in the configuration.
    fn retire(&mut self, stop_timeout: Duration) {
        self.retired = true;
        self.restart_now = false;
        self.next_start = None;
        if let Some(child) = self.child.as_mut().filter(|c| c.stopping.is_none()) {
            signal_group(child.pid, Signal::TERM);
            let kill_at = Instant::now() + stop_timeout;
            child.stopping = Some(("removed from the configuration".into(), Some(kill_at)));
        }
    }
}

/// A message to the loop from the tasks it started.
#[derive(Debug)]
enum Event {
    /// A `/health` probe of process `pid` of component `name` finished.
    Probe {
        name: String,
        pid: Pid,
        answered: bool,
    },
}

struct Supervisor {
    settings: Settings,
    components: Vec<Component>,
    logs: LogBook,
    gate: Arc<Gate>,
    shared: Option<Arc<Shared>>,
    events: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    shutting_down: bool,
}

impl Supervisor {
    fn new(settings: Settings, logs: LogBook) -> Supervisor {
        let now = Instant::now();
        let components = settings
            .components
            .iter()
            .map(|spec| Component::new(spec.clone(), now))
            .collect();
        Supervisor {
            logs,
            settings,
            components,
            gate: Arc::new(Gate::new()),
            shared: None,
            events: mpsc::channel(64),
            shutting_down: false,
        }
    }

    async fn run(mut self) -> Result<(), Error> {
        let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(Error::Signals)?;
        let mut chld = signal(SignalKind::child()).map_err(Error::Signals)?;

        let notifier = Notifier::from_env().map(Arc::new);
        let systemd = notifier
            .as_ref()
            .is_some_and(|n| n.watchdog_interval().is_some());
        let (requests_tx, mut requests) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            components: Mutex::new(Vec::new()),
            logs: self.logs.clone(),
            requests: requests_tx,
            gate: self.gate.clone(),
            device: self.settings.petting.device.clone(),
            systemd,
            stall_limit: self.settings.petting.stall_limit,
            started: Instant::now(),
            debug_hooks: self.settings.debug_hooks,
        });
        self.shared = Some(shared.clone());
        self.publish();

        let socket = self.settings.socket("supervisor");
        let server = postroom_control::serve(&socket, api::router(shared)).await?;

        let ready = notifier.as_ref().map(|n| n.send("READY=1")).is_some();
        let watchdog = Watchdog::start(
            self.gate.clone(),
            self.settings.petting.clone(),
            notifier.clone(),
        );
        tracing::info!(
            components = self.components.len(),
            systemd = ready,
            "supervisor running"
        );

        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
                _ = hup.recv() => { let _ = self.reload(); }
                _ = chld.recv() => { self.reap(); }
                Some(event) = self.events.1.recv() => self.on_event(event),
                Some(request) = requests.recv() => self.on_request(request),
                _ = tick.tick() => self.housekeeping(),
            }
            self.gate.beat();
            self.publish();
        }

        if let Some(notifier) = &notifier {
            notifier.send("STOPPING=1");
        }
        self.shutdown(&mut chld).await;
        self.publish();
        if let Err(e) = server.shutdown().await {
            tracing::warn!(error = %e, "control socket did not close cleanly");
        }
        watchdog.stop();
        tracing::info!("supervisor stopped");
        Ok(())
    }

    /// Starts what is due, probes `/health`, enforces deadlines, tells the watchdog.
    fn housekeeping(&mut self) {
        self.reap();
        self.components
            .retain(|c| !(c.retired && c.child.is_none()));
        let now = Instant::now();
        for index in 0..self.components.len() {
            let due = self.components[index].child.is_none()
                && self.components[index]
                    .next_start
                    .is_some_and(|at| at <= now);
            if due {
                self.start(index);
            }
            self.check_health(index, now);
        }
        self.gate.set_critical(self.critical_problem(now));
    }

    fn start(&mut self, index: usize) {
        let settings = &self.settings;
        let component = &mut self.components[index];
        component.next_start = None;
        let spec = &component.spec;
        let spawned =
            match spawn::spawn(&spec.name, &spec.program, &spec.args, &settings.config_path) {
                Ok(spawned) => spawned,
                Err(e) => {
                    // Treated like a process that ended at once, so the policy backs off.
                    tracing::error!(component = %spec.name, error = %e, "cannot start");
                    let ending = Ending::Exited(127);
                    self.after_end(index, Duration::ZERO, ending, Some(format!("spawn: {e}")));
                    return;
                }
            };

        let name = spec.name.clone();
        let pid = spawned.pid;
        component.starts += 1;
        let now = Instant::now();
        component.child = Some(Child {
            pid,
            started: now,
            healthy_at: None,
            next_probe: now + STARTING_PROBE,
            probing: false,
            stopping: None,
        });
        tracing::info!(component = %name, pid = pid.as_raw_nonzero().get(), "started");

        for (stream, fd) in [
            (Stream::Stdout, spawned.stdout),
            (Stream::Stderr, spawned.stderr),
        ] {
            match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(pipe) => {
                    let raw = pid.as_raw_nonzero().get();
                    tokio::spawn(logs::follow(
                        self.logs.clone(),
                        name.clone(),
                        raw,
                        stream,
                        pipe,
                    ));
                }
                Err(e) => tracing::warn!(component = %name, error = %e, "cannot read its output"),
            }
        }
    }

    fn check_health(&mut self, index: usize, now: Instant) {
        let settings = &self.settings;
        let component = &mut self.components[index];
        let name = component.spec.name.clone();
        let Some(child) = component.child.as_mut() else {
            return;
        };

        if let Some((_, Some(kill_at))) = &child.stopping
            && now >= *kill_at
        {
            tracing::warn!(component = %name, "did not stop after SIGTERM; sending SIGKILL");
            signal_group(child.pid, Signal::KILL);
            if let Some((_, kill_at)) = child.stopping.as_mut() {
                *kill_at = None;
            }
        }
        if child.stopping.is_some() {
            return;
        }

        let silent_for = now.duration_since(child.healthy_at.unwrap_or(child.started));
        let limit = match child.healthy_at {
            None => settings.start_timeout,
            Some(_) => settings.unhealthy_timeout,
        };
        if silent_for > limit {
            let reason = match child.healthy_at {
                None => format!(
                    "no answer on /health within {}s of starting",
                    limit.as_secs()
                ),
                Some(_) => format!("/health unanswered for {}s", silent_for.as_secs()),
            };
            tracing::warn!(component = %name, %reason, "killing it");
            signal_group(child.pid, Signal::KILL);
            child.stopping = Some((reason, None));
            return;
        }

        // A component that stayed up past the threshold is no longer in a crash loop.
        if child.healthy_at.is_some()
            && now.duration_since(child.started) >= settings.policy.threshold
        {
            component.crashes = CrashCount::default();
            if component.failing_since.take().is_some() {
                tracing::info!(component = %name, "recovered; no longer failing");
            }
        }

        if !child.probing && now >= child.next_probe {
            child.probing = true;
            let client = Client::new(settings.socket(&name)).with_timeout(settings.health_timeout);
            let events = self.events.0.clone();
            let pid = child.pid;
            tokio::spawn(async move {
                let answered = client.get_json::<Health>("/health").await.is_ok();
                let _ = events
                    .send(Event::Probe {
                        name,
                        pid,
                        answered,
                    })
                    .await;
            });
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Probe {
                name,
                pid,
                answered,
            } => {
                let interval = self.settings.health_interval;
                let Some(component) = self.components.iter_mut().find(|c| c.spec.name == name)
                else {
                    return;
                };
                let Some(child) = component.child.as_mut().filter(|c| c.pid == pid) else {
                    return;
                };
                let now = Instant::now();
                child.probing = false;
                if answered {
                    if child.healthy_at.is_none() {
                        tracing::info!(component = %name, "up");
                    }
                    child.healthy_at = Some(now);
                }
                child.next_probe = now
                    + if child.healthy_at.is_some() {
                        interval
                    } else {
                        STARTING_PROBE
                    };
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Restart { name, reply } => {
                let _ = reply.send(self.restart(&name));
            }
            Request::Reload { reply } => {
                let _ = reply.send(self.reload());
            }
            Request::Stall { for_ } => {
                tracing::warn!(
                    secs = for_.as_secs_f64(),
                    "debug hook: stalling the main loop"
                );
                // Blocks the main thread on purpose: the test of the watchdog's loop check.
                std::thread::sleep(for_);
            }
        }
    }

    fn restart(&mut self, name: &str) -> Result<(), String> {
        let stop_timeout = self.settings.stop_timeout;
        let Some(component) = self.components.iter_mut().find(|c| c.spec.name == name) else {
            return Err(format!("no component named {name:?}"));
        };
        tracing::info!(component = %name, "restart requested");
        component.restart(stop_timeout, "restart requested");
        Ok(())
    }

    /// Reads the configuration again and applies it: components added to it are started,
    /// components removed or disabled are stopped, components whose command changed are
    /// restarted, and every other running component gets SIGHUP to re-read its own part.
    /// A configuration with mistakes changes nothing.
    fn reload(&mut self) -> Result<ReloadReply, String> {
        let mut settings = match self.settings.reload() {
            Ok(settings) => settings,
            Err(e) => {
                tracing::error!(error = %e, "reload refused: the configuration has mistakes");
                return Err(e.to_string());
            }
        };
        if settings.run_dir != self.settings.run_dir {
            tracing::warn!("system.run_dir changed; it takes effect when the supervisor restarts");
            settings.run_dir = self.settings.run_dir.clone();
        }
        if settings.petting.device != self.settings.petting.device {
            tracing::warn!(
                "the watchdog device changed; it takes effect when the supervisor restarts"
            );
        }

        let mut reply = ReloadReply::default();
        let stop_timeout = settings.stop_timeout;
        for component in &mut self.components {
            let wanted = settings
                .components
                .iter()
                .any(|s| s.name == component.spec.name);
            if !wanted && !component.retired {
                tracing::info!(component = %component.spec.name, "no longer configured; stopping");
                component.retire(stop_timeout);
                reply.stopped.push(component.spec.name.clone());
            }
        }
        let now = Instant::now();
        for spec in &settings.components {
            match self
                .components
                .iter_mut()
                .find(|c| c.spec.name == spec.name)
            {
                Some(component) => {
                    let changed =
                        component.spec.program != spec.program || component.spec.args != spec.args;
                    component.spec = spec.clone();
                    if component.retired {
                        component.retired = false;
                        component.restart(stop_timeout, "configured again");
                        reply.started.push(spec.name.clone());
                    } else if changed {
                        tracing::info!(component = %spec.name, "command changed; restarting");
                        component.restart(stop_timeout, "command changed");
                        reply.restarted.push(spec.name.clone());
                    }
                }
                None => {
                    tracing::info!(component = %spec.name, "newly configured; starting");
                    self.components.push(Component::new(spec.clone(), now));
                    reply.started.push(spec.name.clone());
                }
            }
        }
        self.components
            .sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        self.settings = settings;

        for component in &self.components {
            let Some(child) = component.child.as_ref().filter(|c| c.stopping.is_none()) else {
                continue;
            };
            match rustix::process::kill_process(child.pid, Signal::HUP) {
                Ok(()) => reply.signalled.push(component.spec.name.clone()),
                Err(e) => tracing::warn!(component = %component.spec.name, error = %e,
                    "cannot send SIGHUP"),
            }
        }
        tracing::info!(
            signalled = reply.signalled.join(",").as_str(),
            started = reply.started.join(",").as_str(),
            stopped = reply.stopped.join(",").as_str(),
            restarted = reply.restarted.join(",").as_str(),
            "configuration reloaded"
        );
        Ok(reply)
    }

    fn reap(&mut self) -> bool {
        let reaped = reap::reap();
        for (pid, ending) in reaped.ended {
            let found = self
                .components
                .iter()
                .position(|c| c.child.as_ref().is_some_and(|ch| ch.pid == pid));
            let Some(index) = found else {
                tracing::debug!(pid = pid.as_raw_nonzero().get(), %ending, "reaped an orphan");
                continue;
            };
            let child = self.components[index].child.take();
            let (ran_for, reason) = child
                .map(|c| (c.started.elapsed(), c.stopping.map(|(reason, _)| reason)))
                .unwrap_or((Duration::ZERO, None));
            self.after_end(index, ran_for, ending, reason);
        }
        reaped.none_left
    }

    /// Records how a process ended and decides when it starts again.
    fn after_end(
        &mut self,
        index: usize,
        ran_for: Duration,
        ending: Ending,
        reason: Option<String>,
    ) {
        let policy = &self.settings.policy;
        let component = &mut self.components[index];
        let name = component.spec.name.clone();
        component.last_exit = Some(LastExit {
            ending,
            description: ending.to_string(),
            reason: reason.clone(),
            ran_for_secs: ran_for.as_secs_f64(),
            at_ms: logs::now_ms(),
        });

        if self.shutting_down || component.retired {
            tracing::info!(component = %name, %ending, "stopped");
            return;
        }
        if std::mem::take(&mut component.restart_now) {
            tracing::info!(component = %name, %ending, "stopped for restart; starting again");
            component.next_start = Some(Instant::now());
            return;
        }

        let respawn = policy.after_exit(&mut component.crashes, ran_for);
        let now = Instant::now();
        component.next_start = Some(now + respawn.delay);
        if respawn.failing {
            if component.failing_since.is_none() {
                component.failing_since = Some(now);
            }
            let lines: Vec<String> = self
                .logs
                .tail(&name, FAILING_LINES)
                .into_iter()
                .map(|l| l.text)
                .collect();
            tracing::error!(
                component = %name,
                crashes = component.crashes.0,
                last_exit = %ending,
                last_lines = ?lines,
                retry_in_secs = respawn.delay.as_secs_f64(),
                "failing: crash loop; retrying slowly"
            );
        } else {
            tracing::warn!(
                component = %name,
                %ending,
                reason = reason.as_deref(),
                ran_for_secs = ran_for.as_secs_f64(),
                restart_in_secs = respawn.delay.as_secs_f64(),
                "ended; restarting"
            );
        }
    }

    /// Why the critical components should stop the watchdog, if they should: one of them has
    /// been failing longer than the limit and is not up now.
    fn critical_problem(&self, now: Instant) -> Option<String> {
        let limit = self.settings.critical_failing_limit;
        self.components.iter().find_map(|c| {
            let since = c.failing_since?;
            let up = c.child.as_ref().is_some_and(|ch| ch.healthy_at.is_some());
            (c.spec.critical && !up && now.duration_since(since) > limit).then(|| {
                format!(
                    "critical component {} has been failing for {}s",
                    c.spec.name,
                    now.duration_since(since).as_secs()
                )
            })
        })
    }

    /// Puts the current component table where the control server reads it.
    fn publish(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = Instant::now();
        let table = self
            .components
            .iter()
            .map(|c| self.describe(c, now))
            .collect();
        *shared.components.lock().unwrap_or_else(|p| p.into_inner()) = table;
    }

    fn describe(&self, c: &Component, now: Instant) -> ComponentStatus {
        let state = match (&c.child, c.next_start) {
            (Some(child), _) if child.stopping.is_some() => State::Stopping,
            (Some(child), _) if child.healthy_at.is_some() => State::Up,
            (Some(_), _) => State::Starting,
            (None, Some(_)) => State::Waiting,
            (None, None) => State::Stopped,
        };
        let failing = c.failing_since.is_some();
        let last_lines = if failing {
            self.logs
                .tail(&c.spec.name, FAILING_LINES)
                .into_iter()
                .map(|l| l.text)
                .collect()
        } else {
            Vec::new()
        };
        ComponentStatus {
            name: c.spec.name.clone(),
            state,
            pid: c.child.as_ref().map(|ch| ch.pid.as_raw_nonzero().get()),
            uptime_secs: c
                .child
                .as_ref()
                .map(|ch| now.duration_since(ch.started).as_secs()),
            restarts: c.starts.saturating_sub(1),
            crashes: c.crashes.0,
            failing,
            critical: c.spec.critical,
            last_exit: c.last_exit.clone(),
            next_start_in_ms: c
                .next_start
                .filter(|_| c.child.is_none())
                .map(|at| at.saturating_duration_since(now).as_millis() as u64),
            last_lines,
        }
    }

    /// SIGTERM to every component (and any orphan we adopted), SIGKILL after the stop
    /// timeout, until no child is left.
    async fn shutdown(&mut self, chld: &mut tokio::signal::unix::Signal) {
        self.shutting_down = true;
        for component in &mut self.components {
            component.next_start = None;
            if let Some(child) = component.child.as_mut() {
                signal_group(child.pid, Signal::TERM);
                child.stopping = Some(("supervisor stopping".into(), None));
            }
        }
        for orphan in adopted_children() {
            let _ = rustix::process::kill_process(orphan, Signal::TERM);
        }

        let term_deadline = Instant::now() + self.settings.stop_timeout;
        let mut kill_deadline = None;
        loop {
            self.gate.beat();
            self.publish();
            if self.reap() {
                return;
            }
            let now = Instant::now();
            match kill_deadline {
                None if now >= term_deadline => {
                    tracing::warn!("components still running after the stop timeout; SIGKILL");
                    for component in &self.components {
                        if let Some(child) = &component.child {
                            signal_group(child.pid, Signal::KILL);
                        }
                    }
                    for orphan in adopted_children() {
                        let _ = rustix::process::kill_process(orphan, Signal::KILL);
                    }
                    kill_deadline = Some(now + KILL_GRACE);
                }
                Some(deadline) if now >= deadline => {
                    tracing::error!("children survived SIGKILL; giving up waiting");
                    return;
                }
                _ => {}
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), chld.recv()).await;
        }
    }
}

/// Signals a component's process group, or the process alone if the group is gone.
fn signal_group(pid: Pid, signal: Signal) {
    if rustix::process::kill_process_group(pid, signal).is_err()
        && let Err(e) = rustix::process::kill_process(pid, signal)
    {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "cannot signal");
    }
}

/// The children of this process, from /proc: the components and any orphan re-parented to us.
fn adopted_children() -> Vec<Pid> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .filter_map(Pid::from_raw)
        .collect()
}

/// The parent process id from `/proc/PID/stat` (proc(5): the 4th field, after `(comm)`).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may itself contain spaces and parentheses; it ends at the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}
