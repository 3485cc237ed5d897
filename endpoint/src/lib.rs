//! The HTTP endpoint of both daemons (the copytool's `--metrics` and the policy daemon's
//! `[control] metrics` / `http`): one axum server per address, so scrapes are served
//! concurrently (one task per connection), and Prometheus text written by the maintained
//! [`prometheus`] encoder rather than by hand.
//!
//! * [`spawn`] binds (errors surface at start) and serves a router until a token is cancelled;
//!   [`spawn_on`] serves on a listener the caller bound.
//! * [`metrics_router`] answers `GET /metrics` with whatever its closure renders per scrape.
//! * [`Exposition`] builds one scrape's metrics (fresh each time from the daemon's own counters)
//!   and [`Exposition::encode`]s them.
//!
//! Besides HTTP, what else both daemons run the same way: [`signals`] (SIGTERM/SIGINT/SIGHUP as
//! events) and [`logging`] (one `tracing` set-up).

#![warn(missing_docs)]

pub mod logging;
pub mod signals;

use std::net::SocketAddr;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::core::Collector;
use prometheus::{Encoder, Opts, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

pub use prometheus;

/// The content type of the text format the encoder writes (0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A router answering `GET /metrics` with `render()`, called once per scrape.
pub fn metrics_router<S>(render: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()).into_response() }
        }),
    )
}

/// Binds `addr` and serves `app` on the runtime `rt` until `stop` is cancelled (in-flight
/// requests finish first). Returns the bound address (useful with port 0).
pub fn spawn(
    rt: &tokio::runtime::Handle,
    addr: SocketAddr,
    app: Router,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    // Bound here, synchronously, so a taken port is the caller's error at start.
    spawn_on(rt, std::net::TcpListener::bind(addr)?, app, stop)
}

/// [`spawn`] on a listener the caller bound (when the router needs the bound address).
pub fn spawn_on(
    rt: &tokio::runtime::Handle,
    listener: std::net::TcpListener,
    app: Router,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    rt.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, %local, "http listener");
                return;
            }
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, %local, "http server stopped");
        }
    });
    Ok(local)
}

/// The metrics of one scrape. Metric names are given whole (the encoder adds no suffix), so
/// dashboards keep their names.
pub struct Exposition {
    registry: Registry,
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition::new()
    }
}

impl Exposition {
    /// No metrics yet.
    pub fn new() -> Exposition {
        Exposition {
            registry: Registry::new(),
        }
    }

    fn add(&self, c: impl Collector + 'static, name: &str) {
        // Only a name registered twice fails: a bug of the caller, logged, never a panic.
        if let Err(e) = self.registry.register(Box::new(c)) {
            tracing::error!(metric = name, error = %e, "metric not exposed");
        }
    }

    /// A counter with labels: one sample per `(label values, value)`.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str], samples: &[(&[&str], u64)]) {
        match prometheus::IntCounterVec::new(Opts::new(name, help), labels) {
            Ok(v) => {
                for (values, n) in samples {
                    match v.get_metric_with_label_values(values) {
                        Ok(c) => c.inc_by(*n),
                        Err(e) => tracing::error!(metric = name, error = %e, "sample not exposed"),
                    }
                }
                self.add(v, name);
            }
            Err(e) => tracing::error!(metric = name, error = %e, "metric not exposed"),
        }
    }

    /// A gauge with labels: one sample per `(label values, value)`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str], samples: &[(&[&str], f64)]) {
        match prometheus::GaugeVec::new(Opts::new(name, help), labels) {
            Ok(v) => {
                for (values, x) in samples {
                    match v.get_metric_with_label_values(values) {
                        Ok(g) => g.set(*x),
                        Err(e) => tracing::error!(metric = name, error = %e, "sample not exposed"),
                    }
                }
                self.add(v, name);
            }
            Err(e) => tracing::error!(metric = name, error = %e, "metric not exposed"),
        }
    }

    /// The text format, metrics sorted by name.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[test]
    fn encodes_counters_and_gauges_under_their_whole_names() {
        let e = Exposition::new();
        e.counter(
            "x_actions_total",
            "Actions.",
            &["agent", "action"],
            &[(&["a\"1", "archive"], 3), (&["a\"1", "restore"], 0)],
        );
        e.gauge("x_lag_seconds", "Lag.", &[], &[(&[], 1.5)]);
        let t = e.encode();
        assert!(t.contains("# TYPE x_actions_total counter\n"), "{t}");
        assert!(
            t.contains("x_actions_total{action=\"archive\",agent=\"a\\\"1\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("x_actions_total{action=\"restore\",agent=\"a\\\"1\"} 0\n"));
        assert!(
            t.contains("# TYPE x_lag_seconds gauge\nx_lag_seconds 1.5\n"),
            "{t}"
        );
        // A wrong label count is refused without a panic.
        e.gauge("x_bad", "Bad.", &["one"], &[(&["a", "b"], 1.0)]);
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_are_served_while_another_client_stalls() {
        let stop = CancellationToken::new();
        let app = metrics_router(|| "m 1\n".to_string());
        let addr = spawn(
            &tokio::runtime::Handle::current(),
            "127.0.0.1:0".parse().unwrap(),
            app,
            stop.clone(),
        )
        .unwrap();
        // A client that sends half a request and then nothing: a one-client-at-a-time server
        // would make every scrape below wait for it.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"GET /metr").await.unwrap();
        let scrapes: Vec<_> = (0..8)
            .map(|_| tokio::spawn(async move { get(addr, "/metrics").await }))
            .collect();
        let answers = tokio::time::timeout(Duration::from_secs(60), async {
            let mut v = Vec::new();
            for s in scrapes {
                v.push(s.await.unwrap());
            }
            v
        })
        .await
        .expect("scrapes were held up by the stalled client");
        for a in answers {
            assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
            assert!(a.contains(CONTENT_TYPE), "{a}");
            assert!(a.ends_with("\r\n\r\nm 1\n"), "{a}");
        }
        let r = get(addr, "/").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        drop(stalled);
        stop.cancel();
    }
}
