//! The hardware watchdog, and systemd's: petted from a thread of its own, and only while the
//! supervisor's loop runs and no critical component has been failing too long.
//!
//! The main loop calls [`Gate::beat`] on every turn and [`Gate::set_critical`] with its view of
//! the critical components. The petting thread checks both before each keepalive. A loop that
//! is stuck stops beating, so the thread stops petting although it is itself fine, and the
//! hardware resets the box (Documentation/watchdog/watchdog-api.rst).
//!
//! A device path that is not a character device is a stand-in for tests and development: a
//! regular file or a FIFO that gets a line per event (`timeout N`, `keepalive`, `V`).

mod ioctl;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::notify::Notifier;

/// How often the petting thread wakes up to check whether something is due.
const TICK: Duration = Duration::from_millis(100);

/// What the petting thread needs to know; shared with the main loop and the control server.
#[derive(Debug)]
pub struct Gate {
    start: Instant,
    /// Milliseconds after `start` of the main loop's last turn.
    heartbeat_ms: AtomicU64,
    /// Why the critical components stop the petting, if they do.
    critical: Mutex<Option<String>>,
    /// Ask the thread to write the magic close and end.
    stop: AtomicBool,
    /// Keepalives written so far.
    pets: AtomicU64,
    /// Why the last check refused to pet, if it did.
    refusal: Mutex<Option<String>>,
}

/// The watchdog as `GET /status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchdogStatus {
    /// The device, if one is configured.
    pub device: Option<PathBuf>,
    /// Whether systemd's watchdog is being served too.
    pub systemd: bool,
    /// Keepalives sent so far (device or systemd).
    pub pets: u64,
    /// Why petting has stopped, if it has.
    pub withheld: Option<String>,
}

/// How the petting thread runs.
#[derive(Debug, Clone)]
pub struct Petting {
    /// The device or stand-in; `None` for none.
    pub device: Option<PathBuf>,
    /// Timeout to set on a real device, in seconds.
    pub timeout_secs: u32,
    /// Interval between keepalives of the device.
    pub interval: Duration,
    /// The main loop counts as stuck once it has not turned for this long.
    pub stall_limit: Duration,
}

impl Gate {
    /// A gate whose loop has just beaten and whose critical components are fine.
    pub fn new() -> Gate {
        Gate {
            start: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            critical: Mutex::new(None),
            stop: AtomicBool::new(false),
            pets: AtomicU64::new(0),
            refusal: Mutex::new(None),
        }
    }

    /// Records a turn of the main loop.
    pub fn beat(&self) {
        self.heartbeat_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago the main loop last turned.
    pub fn since_beat(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)))
    }

    /// `Some(reason)` when a critical component should stop the petting.
    pub fn set_critical(&self, problem: Option<String>) {
        *lock(&self.critical) = problem;
    }

    /// The status for `/status`.
    pub fn status(&self, device: Option<PathBuf>, systemd: bool) -> WatchdogStatus {
        WatchdogStatus {
            device,
            systemd,
            pets: self.pets.load(Ordering::Relaxed),
            withheld: lock(&self.refusal).clone(),
        }
    }

    /// Whether a keepalive may be sent now, and if not, why.
    fn check(&self, stall_limit: Duration) -> Result<(), String> {
        let since = self.since_beat();
        if since > stall_limit {
            return Err(format!(
                "the supervisor loop has not run for {}s",
                since.as_secs()
            ));
        }
        match lock(&self.critical).clone() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The petting thread; [`Watchdog::stop`] ends it with the magic close.
#[derive(Debug)]
pub struct Watchdog {
    gate: Arc<Gate>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the petting thread. Opening the device happens in the thread, because opening a
    /// FIFO stand-in waits for its reader.
    pub fn start(gate: Arc<Gate>, petting: Petting, notifier: Option<Arc<Notifier>>) -> Watchdog {
        let thread_gate = gate.clone();
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || pet_loop(&thread_gate, &petting, notifier.as_deref()));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the watchdog thread; nothing is petted");
                None
            }
        };
        Watchdog { gate, thread }
    }

    /// Writes the magic close to the device (a clean shutdown disarms it) and ends the thread.
    pub fn stop(mut self) {
        self.gate.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn pet_loop(gate: &Gate, petting: &Petting, notifier: Option<&Notifier>) {
    let mut device = petting.device.as_deref().and_then(|path| {
        Device::open(path, petting.timeout_secs, &gate.stop)
            .map_err(|e| {
                tracing::error!(device = %path.display(), error = %e, "cannot open the watchdog")
            })
            .ok()
            .flatten()
    });
    let systemd_interval = notifier.and_then(Notifier::watchdog_interval);
    let mut next_device = Instant::now();
    let mut next_systemd = Instant::now();
    let mut withheld = false;

    while !gate.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let device_due = device.is_some() && now >= next_device;
        let systemd_due = systemd_interval.is_some() && now >= next_systemd;
        if device_due || systemd_due {
            match gate.check(petting.stall_limit) {
                Ok(()) => {
                    if withheld {
                        tracing::info!("watchdog petting resumed");
                        withheld = false;
                        *lock(&gate.refusal) = None;
                    }
                    if device_due && let Some(dev) = device.as_mut() {
                        match dev.keepalive() {
                            Ok(()) => {
                                gate.pets.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => tracing::warn!(error = %e, "watchdog keepalive failed"),
                        }
                    }
                    if systemd_due && let Some(notifier) = notifier {
                        notifier.send("WATCHDOG=1");
                        gate.pets.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(reason) => {
                    if !withheld {
                        tracing::error!(%reason, "watchdog no longer petted; the box will reset");
                        withheld = true;
                    }
                    *lock(&gate.refusal) = Some(reason);
                }
            }
            if device_due {
                next_device = now + petting.interval;
            }
            if let (true, Some(interval)) = (systemd_due, systemd_interval) {
                next_systemd = now + interval;
            }
        }
        std::thread::sleep(TICK);
    }

    if let Some(dev) = device {
        dev.close();
    }
}

/// An open watchdog: the real Linux device, or a stand-in file.
enum Device {
    Real(File),
    StandIn(File),
}

impl Device {
    /// Opens the device; `None` if asked to stop while waiting for a FIFO's reader.
    fn open(path: &Path, timeout_secs: u32, stop: &AtomicBool) -> std::io::Result<Option<Device>> {
        let file_type = std::fs::metadata(path).map(|m| m.file_type());
        if file_type.as_ref().is_ok_and(|t| t.is_char_device()) {
            // Opening the device starts it (watchdog-api.rst), so set the timeout at once.
            let file = OpenOptions::new().write(true).open(path)?;
            match ioctl::set_timeout(&file, timeout_secs) {
                Ok(chosen) => tracing::info!(device = %path.display(), timeout = chosen,
                    "hardware watchdog armed"),
                Err(e) => tracing::warn!(device = %path.display(), error = %e,
                    "cannot set the watchdog timeout; the driver's default stays"),
            }
            return Ok(Some(Device::Real(file)));
        }

        let mut file = if file_type.as_ref().is_ok_and(|t| t.is_fifo()) {
            // Opening a FIFO for writing waits for a reader; waiting without blocking keeps a
            // shutdown from hanging here (fifo(7): ENXIO while nobody reads).
            let nonblocking = rustix::fs::OFlags::NONBLOCK.bits() as i32;
            loop {
                match OpenOptions::new()
                    .write(true)
                    .custom_flags(nonblocking)
                    .open(path)
                {
                    Ok(file) => break file,
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(None);
                        }
                        std::thread::sleep(TICK);
                    }
                    Err(e) => return Err(e),
                }
            }
        } else {
            OpenOptions::new().append(true).create(true).open(path)?
        };
        writeln!(file, "timeout {timeout_secs}")?;
        tracing::info!(device = %path.display(), "stand-in watchdog opened");
        Ok(Some(Device::StandIn(file)))
    }

    fn keepalive(&mut self) -> std::io::Result<()> {
        match self {
            Device::Real(file) => ioctl::keepalive(&*file).map_err(std::io::Error::from),
            Device::StandIn(file) => writeln!(file, "keepalive"),
        }
    }

    /// The magic close: 'V' before close disarms the watchdog, if the driver supports it.
    fn close(self) {
        let result = match self {
            Device::Real(mut file) => file.write_all(b"V"),
            Device::StandIn(mut file) => writeln!(file, "V"),
        };
        match result {
            Ok(()) => tracing::info!("watchdog disarmed"),
            Err(e) => tracing::warn!(error = %e, "cannot write the watchdog's magic close"),
        }
    }
}
