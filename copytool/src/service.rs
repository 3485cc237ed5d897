//! The agent's lifecycle around the engine (issue 5 item 4): signals, policy reload, metrics, the
//! receive loop, and a bounded drain on the way out.
//!
//! * SIGTERM / SIGINT: stop receiving; in-flight actions get `shutdown_timeout` to finish, then are
//!   aborted (ended ESHUTDOWN, nothing committed) and get `shutdown_timeout` again to end.
//! * SIGHUP: re-read the policy file (flags still override it); a bad file is logged and ignored.
//! * ESHUTDOWN from the coordinator (unmount): the same drain, then a clean exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineConfig, StopReason};
use crate::journal::{Journal, Leftovers};
use crate::metrics::Metrics;
use crate::ports::{Coordinator, FailureLog, Store};

/// What the service needs besides the two ports.
pub struct ServiceOptions {
    pub agent: String,
    pub engine: EngineConfig,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Re-reads the engine settings for SIGHUP.
    pub reload: Box<dyn Fn() -> Result<EngineConfig, String> + Send + Sync>,
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
    let engine = Engine::with_journal(
        ct,
        store,
        log,
        metrics.clone(),
        opts.agent.clone(),
        opts.engine,
        journal,
    );
    if let Some(l) = leftovers {
        if !l.items.is_empty() {
            let n = l.items.len();
            let (ended, gone, kept) = engine.recover(l);
            tracing::info!(
                journalled = n,
                ended,
                already_over = gone,
                kept,
                "requests left by a previous copytool"
            );
        }
    }
    let stop_aux = CancellationToken::new();

    if let Some(addr) = opts.metrics_addr {
        let (m, agent) = (metrics.clone(), opts.agent.clone());
        let app = endpoint::metrics_router(move || m.render_prometheus(&agent));
        let bound = endpoint::spawn(rt.handle(), addr, app, stop_aux.clone())
            .map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    {
        let (metrics, stop, every) = (metrics.clone(), stop_aux.clone(), opts.metrics_interval);
        rt.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => tracing::info!(counters = %metrics.summary(), "copytool counters"),
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    let sig_handle = signals.handle();
    let sig_thread = {
        let engine = engine.clone();
        let reload = opts.reload;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    match sig {
                        SIGHUP => match reload() {
                            Ok(cfg) => {
                                tracing::info!(?cfg, "policy reloaded");
                                engine.reload(cfg);
                            }
                            Err(e) => tracing::error!(error = %e, "policy reload failed; keeping the current settings"),
                        },
                        _ => {
                            tracing::info!(signal = sig, "stopping: no new actions, draining in-flight ones");
                            engine.request_stop();
                        }
                    }
                }
            })
            .map_err(|e| format!("starting the signal thread: {e}"))?
    };

    tracing::info!(agent = %opts.agent, "copytool running");
    let reason = engine.run_receiver(rt.handle());
    engine.request_stop();
    let aborted = rt.block_on(engine.drain(opts.shutdown_timeout));
    if aborted > 0 {
        tracing::warn!(aborted, "in-flight actions were aborted to stop");
    }
    tracing::info!(counters = %metrics.summary(), "copytool counters at exit");
    stop_aux.cancel();
    sig_handle.close();
    let _ = sig_thread.join();
    reason.map_err(|e| format!("receiving actions: {e}"))
}
