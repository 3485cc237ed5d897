//! The agent's lifecycle around the engine (issue 5 item 4): signals, policy reload, metrics, the
//! receive loop, and a bounded drain on the way out.
//!
//! * SIGTERM / SIGINT: cancel the engine's shutdown token: stop receiving; in-flight actions get
//!   `shutdown_timeout` to finish, then are aborted (ended ESHUTDOWN, nothing committed) and get
//!   `shutdown_timeout` again to end.
//! * SIGHUP: re-read the policy file (flags still override it); a bad file is logged and ignored.
//! * ESHUTDOWN from the coordinator (unmount): the same drain, then a clean exit.
//!
//! The metrics endpoint, the counters log line and the signal task live until the service
//! returns (so the drain can still be watched), on a token cancelled then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use endpoint::signals::Signal;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineConfig, StopReason};
use crate::journal::{Journal, Leftovers};
use crate::metrics::Metrics;
use crate::ports::{Coordinator, FailureLog, Store};

/// Re-reads the engine settings for SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<EngineConfig, String> + Send + Sync>;

/// What the service needs besides the two ports.
pub struct ServiceOptions {
    /// `<host>-<pid>`: names this agent in logs, metrics and failure entries.
    pub agent: String,
    /// The settings the engine starts with.
    pub engine: EngineConfig,
    /// Where to serve Prometheus metrics (`None`: nowhere).
    pub metrics_addr: Option<SocketAddr>,
    /// How often the counters are logged.
    pub metrics_interval: Duration,
    /// The grace given to in-flight actions on the way out (twice: to finish, then to abort).
    pub shutdown_timeout: Duration,
    /// Re-reads the engine settings for SIGHUP.
    pub reload: Reload,
    /// The journal of received items and what dead predecessors left in theirs (ended before
    /// the first receive); `None` keeps the journal in memory only.
    pub journal: Option<(Arc<Journal>, Leftovers)>,
}

/// Runs the agent until a signal, an unmount or (with --abort-on-error) an error.
pub fn run<C: Coordinator, S: Store>(
    rt: &Runtime,
    ct: Arc<C>,
    store: Arc<S>,
    log: Arc<dyn FailureLog>,
    opts: ServiceOptions,
) -> Result<StopReason, String> {
    let metrics = Arc::new(Metrics::default());
    let (journal, leftovers) = match opts.journal {
        Some((j, l)) => (j, Some(l)),
        None => (Arc::new(Journal::memory()), None),
    };
    let engine = Engine::new(
        ct,
        store,
        log,
        metrics.clone(),
        opts.agent.clone(),
        opts.engine,
        journal,
    );
    if let Some(l) = leftovers {
        end_leftovers(&engine, l);
    }
    let exiting = CancellationToken::new();
    serve_metrics(
        rt,
        &metrics,
        &opts.agent,
        opts.metrics_addr,
        opts.metrics_interval,
        &exiting,
    )?;
    let signals = handle_signals(rt, engine.clone(), opts.reload, exiting.clone())?;

    tracing::info!(agent = %opts.agent, "copytool running");
    let reason = engine.run_receiver(rt.handle());
    let aborted = rt.block_on(engine.drain(opts.shutdown_timeout));
    if aborted > 0 {
        tracing::warn!(aborted, "in-flight actions were aborted to stop");
    }
    tracing::info!(counters = %metrics.summary(), "copytool counters at exit");
    exiting.cancel();
    let _ = rt.block_on(signals);
    reason.map_err(|e| format!("receiving actions: {e}"))
}

/// Ends what dead copytools of this host left STARTED, before the first receive.
fn end_leftovers<C: Coordinator, S: Store>(engine: &Engine<C, S>, leftovers: Leftovers) {
    if leftovers.items.is_empty() {
        return;
    }
    let n = leftovers.items.len();
    let (ended, gone, kept) = engine.recover(leftovers);
    tracing::info!(
        journalled = n,
        ended,
        already_over = gone,
        kept,
        "requests left by a previous copytool"
    );
}

/// The Prometheus endpoint (when an address is set) and the periodic counters log line, until
/// `exiting`.
fn serve_metrics(
    rt: &Runtime,
    metrics: &Arc<Metrics>,
    agent: &str,
    addr: Option<SocketAddr>,
    every: Duration,
    exiting: &CancellationToken,
) -> Result<(), String> {
    if let Some(addr) = addr {
        let (m, agent) = (metrics.clone(), agent.to_string());
        let app = endpoint::metrics_router(move || m.render_prometheus(&agent));
        let bound = endpoint::spawn(rt.handle(), addr, app, exiting.clone())
            .map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    let (metrics, exiting) = (metrics.clone(), exiting.clone());
    rt.spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => tracing::info!(counters = %metrics.summary(), "copytool counters"),
                () = exiting.cancelled() => return,
            }
        }
    });
    Ok(())
}

/// SIGTERM and SIGINT stop the engine; SIGHUP reloads its settings. Until `exiting`. The signals
/// come from the one wiring both daemons share (`endpoint::signals`), forwarded into a channel
/// this task waits on.
fn handle_signals<C: Coordinator, S: Store>(
    rt: &Runtime,
    engine: Arc<Engine<C, S>>,
    reload: Reload,
    exiting: CancellationToken,
) -> Result<JoinHandle<()>, String> {
    // A few signals in a row are all one needs to see; a full channel drops a repeat.
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let watch = endpoint::signals::watch(move |s| {
        let _ = tx.try_send(s);
    })
    .map_err(|e| format!("installing signal handlers: {e}"))?;
    Ok(rt.spawn(async move {
        let _watch = watch;
        loop {
            let signal = tokio::select! {
                () = exiting.cancelled() => return,
                s = rx.recv() => match s {
                    Some(s) => s,
                    None => return,
                },
            };
            match signal {
                Signal::Stop(signo) => {
                    let signal = if signo == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
                    tracing::info!(signal, "stopping: no new actions, draining in-flight ones");
                    engine.request_stop();
                }
                Signal::Reload => match tokio::task::block_in_place(&reload) {
                    Ok(cfg) => {
                        tracing::info!(?cfg, "policy reloaded");
                        engine.reload(cfg);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "policy reload failed; keeping the current settings")
                    }
                },
            }
        }
    }))
}
