//! A test harness for the supervisor: a small multi-call binary like `postroom`.
//!
//! - `harness run --config FILE` and `harness ctl ...` are `postroom run` and `postroom ctl`;
//!   every name in [`STAND_INS`] counts as a built-in component.
//! - `harness NAME [OPTIONS] --config FILE` is a stand-in component: it serves `GET /health`
//!   and `GET /status` on `<run_dir>/NAME.sock` with postroom-control, prints a line on SIGHUP,
//!   and stops on SIGTERM. Options make it misbehave:
//!   - `--exit-at-once CODE`: print a line to stderr and exit with CODE before serving;
//!   - `--ignore-sigterm`: stay up after SIGTERM (only SIGKILL ends it);
//!   - `--exit-if-exists FILE`: like `--exit-at-once 4`, but only while FILE exists;
//!   - `--leave-orphan FILE`: start a grandchild that outlives its parent and sleeps for
//!     `--orphan-secs SECS` (default 1.5), and write its pid to FILE.
//!
//!   - `--never-healthy`: every `/health` call hangs from the start.
//!
//!   `POST /debug/hang` makes every later `/health` call hang.
//! - `harness orphan-parent FILE SECS` and `harness sleeper SECS` are the two halves of
//!   `--leave-orphan`.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use postroom_config::Config;
use postroom_control::{Health, Status};
use tokio::signal::unix::{SignalKind, signal};

/// The component names this harness answers to, as `postroom` does: all of Postroom's.
const STAND_INS: &[&str] = postroom_config::supervisor::COMPONENTS;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(name) = args.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        eprintln!("usage: harness run|ctl|NAME ...");
        return ExitCode::from(2);
    };
    let rest: Vec<OsString> = std::iter::once(OsString::from(format!("harness {name}")))
        .chain(args[2..].iter().cloned())
        .collect();
    let result = match name.as_str() {
        "run" => postroom_supervisor::cli::run(rest, STAND_INS.iter().copied()),
        "ctl" => postroom_supervisor::cli::ctl(rest),
        "orphan-parent" => orphan_parent(&args[2..]),
        "sleeper" => sleeper(&args[2..]),
        _ => stand_in(&name, &args[2..]),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Default)]
struct Options {
    config: Option<PathBuf>,
    exit_at_once: Option<u8>,
    ignore_sigterm: bool,
    never_healthy: bool,
    exit_if_exists: Option<PathBuf>,
    leave_orphan: Option<PathBuf>,
    orphan_secs: Option<String>,
}

fn parse(args: &[OsString]) -> anyhow::Result<Options> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{arg:?} needs a value"))
        };
        match arg.to_str() {
            Some("--config") => options.config = Some(value()?.into()),
            Some("--exit-at-once") => {
                options.exit_at_once = Some(value()?.to_string_lossy().parse()?);
            }
            Some("--ignore-sigterm") => options.ignore_sigterm = true,
            Some("--never-healthy") => options.never_healthy = true,
            Some("--exit-if-exists") => options.exit_if_exists = Some(value()?.into()),
            Some("--leave-orphan") => options.leave_orphan = Some(value()?.into()),
            Some("--orphan-secs") => {
                options.orphan_secs = Some(value()?.to_string_lossy().into_owned());
            }
            _ => anyhow::bail!("unknown argument {arg:?}"),
        }
    }
    Ok(options)
}

fn stand_in(name: &str, args: &[OsString]) -> anyhow::Result<()> {
    let options = parse(args)?;
    println!("stand-in {name} starting, pid {}", std::process::id());
    if let Some(code) = options.exit_at_once {
        eprintln!("stand-in {name}: giving up at once with exit code {code}");
        std::process::exit(i32::from(code));
    }
    if let Some(file) = options.exit_if_exists.as_ref().filter(|f| f.exists()) {
        eprintln!(
            "stand-in {name}: {} exists, giving up with exit code 4",
            file.display()
        );
        std::process::exit(4);
    }
    let config_path = options
        .config
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--config is missing"))?;
    let config = Config::load(&config_path)?;
    let socket = config.system.run_dir.join(format!("{name}.sock"));
    if let Some(file) = &options.leave_orphan {
        let secs = options.orphan_secs.as_deref().unwrap_or("1.5");
        let status = Command::new(std::env::current_exe()?)
            .arg("orphan-parent")
            .arg(file)
            .arg(secs)
            .status()?;
        anyhow::ensure!(status.success(), "orphan-parent failed: {status}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(name.to_owned(), socket, options))
}

async fn serve(name: String, socket: PathBuf, options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let hung = Arc::new(AtomicBool::new(options.never_healthy));
    let reloads = Arc::new(AtomicU64::new(0));
    let component: &'static str = Box::leak(name.clone().into_boxed_str());

    let health_hung = hung.clone();
    let status_reloads = reloads.clone();
    let router = Router::new()
        .route(
            "/health",
            get(move || {
                let hung = health_hung.clone();
                async move {
                    if hung.load(Ordering::Relaxed) {
                        std::future::pending::<()>().await;
                    }
                    Json(Health::ok(component))
                }
            }),
        )
        .route(
            "/status",
            get(move || {
                let reloads = status_reloads.load(Ordering::Relaxed);
                async move {
                    Json(Status::new(
                        component,
                        started,
                        serde_json::json!({ "reloads": reloads }),
                    ))
                }
            }),
        )
        .route(
            "/debug/hang",
            post(move || {
                hung.store(true, Ordering::Relaxed);
                eprintln!("stand-in {component}: /health hangs from now on");
                async { Json(serde_json::json!({ "hung": true })) }
            }),
        );

    let server = postroom_control::serve(&socket, router).await?;
    println!("stand-in {name} serving on {}", socket.display());

    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                if options.ignore_sigterm {
                    eprintln!("stand-in {name}: ignoring SIGTERM");
                    continue;
                }
                println!("stand-in {name} stopping on SIGTERM");
                break;
            }
            _ = hup.recv() => {
                let n = reloads.fetch_add(1, Ordering::Relaxed) + 1;
                println!("stand-in {name} reloaded its configuration ({n})");
            }
        }
    }
    server.shutdown().await?;
    Ok(())
}

/// Starts a sleeper, writes its pid to FILE, and exits, so the sleeper is orphaned.
fn orphan_parent(args: &[OsString]) -> anyhow::Result<()> {
    let (Some(file), Some(secs)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: orphan-parent FILE SECS");
    };
    let child = Command::new(std::env::current_exe()?)
        .arg("sleeper")
        .arg(secs)
        .spawn()?;
    std::fs::write(file, child.id().to_string())?;
    Ok(())
}

/// Sleeps SECS seconds and exits.
fn sleeper(args: &[OsString]) -> anyhow::Result<()> {
    let secs: f64 = args
        .first()
        .and_then(|a| a.to_str())
        .unwrap_or("1")
        .parse()?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(())
}
