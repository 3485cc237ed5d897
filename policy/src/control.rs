//! The control socket: one JSON request line, one JSON response line, per connection.
//! The socket is created with mode 0600 (root only when the daemon runs as root).

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the CLI asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Jobs,
    /// One job; with `wait_ms`, the answer waits until the job ends or that long has passed
    /// (a `--wait` follows a job without sleeping between questions).
    Job {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    Export {
        path: String,
    },
    Import {
        prefix: String,
        conflict: String,
        maximum_errors: i64,
    },
    Cancel {
        id: String,
    },
    /// Export barrier: answered when every change recorded before it is exported or failed
    /// (`wait`), or at once after forcing an iteration (`!wait`).
    Flush {
        wait: bool,
        timeout_ms: Option<u64>,
    },
    Autoexport {
        enable: bool,
    },
    /// The latest failures (newest first, at most `limit`) and how many stand now.
    Failures {
        limit: usize,
    },
    /// Export these paths (relative to the mount) at the next iteration, whatever the changelog
    /// said (`verify --requeue`).
    Requeue {
        paths: Vec<std::path::PathBuf>,
    },
}

/// The answer. `code` is the CLI's exit code for refusals (see `main.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            code: None,
            data,
        }
    }
    pub fn err(code: i32, msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            code: Some(code),
            data: serde_json::Value::Null,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the daemon at {path}: {source} (is `lustre-blob daemon` running with this --config?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: malformed answer: {source}")]
    Protocol {
        path: String,
        source: serde_json::Error,
    },
    #[error("control socket {path} is in use by a running daemon")]
    InUse { path: String },
}

/// Sends one request and waits for the answer (`timeout`: None = wait as long as it takes).
pub fn call(
    socket: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let path = socket.display().to_string();
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut s = UnixStream::connect(socket).map_err(|source| ControlError::Connect {
        path: path.clone(),
        source,
    })?;
    s.set_read_timeout(timeout).map_err(io)?;
    let mut line = serde_json::to_string(req).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|source| ControlError::Protocol {
        path: path.clone(),
        source,
    })
}

/// Handles requests; may block (a flush waits for its barrier).
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// The listening socket, served on the daemon's runtime until the daemon's shutdown token is
/// cancelled or this is dropped; the socket file is removed on drop.
pub struct Server {
    path: PathBuf,
    stop: CancellationToken,
}

const MAX_CONNECTIONS: usize = 32;

impl Server {
    /// Binds `path` (mode 0600), refusing when a live daemon already answers there, and accepts
    /// connections on `rt` until `shutdown` is cancelled. Each connection is served on a
    /// blocking thread of its own (the handler may wait for a flush).
    pub fn start(
        path: &Path,
        handler: Handler,
        rt: &tokio::runtime::Handle,
        shutdown: &CancellationToken,
    ) -> Result<Server, ControlError> {
        let p = path.display().to_string();
        let io = |source| ControlError::Io {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse { path: p });
            }
            std::fs::remove_file(path).map_err(io)?; // stale, from a killed daemon
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let listener = {
            let _in_rt = rt.enter();
            tokio::net::UnixListener::from_std(listener).map_err(io)?
        };
        let stop = shutdown.child_token();
        rt.spawn(accept_loop(listener, handler, stop.clone()));
        Ok(Server {
            path: path.to_path_buf(),
            stop,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts until `stop`; wakes only for a connection or the stop.
async fn accept_loop(
    listener: tokio::net::UnixListener,
    handler: Handler,
    stop: CancellationToken,
) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted.and_then(|(s, _)| s.into_std()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                // Out of descriptors, say: try again a moment later rather than spin.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = stream.set_nonblocking(false);
            let _ = reply(
                &stream,
                &Response::err(75, "daemon busy: too many control connections"),
            );
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (h, a) = (handler.clone(), active.clone());
        tokio::task::spawn_blocking(move || {
            serve(stream, &h);
            a.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn reply(mut stream: &UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())
}

fn serve(stream: UnixStream, handler: &Handler) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handler(req),
        Err(e) => Response::err(64, format!("malformed request: {e}")),
    };
    if let Err(e) = reply(&stream, &resp) {
        tracing::debug!(error = %e, "control client went away");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn request_response_round_trip_over_a_0600_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run/ctl.sock");
        let h: Handler = Arc::new(|r: Request| match r {
            Request::Status => Response::ok(serde_json::json!({"state": "InProgress"})),
            other => Response::err(69, format!("refused {other:?}")),
        });
        let (rt, shutdown) = (runtime(), CancellationToken::new());
        let srv = Server::start(&sock, h.clone(), rt.handle(), &shutdown).unwrap();
        let md = std::fs::metadata(&sock).unwrap();
        assert!(md.file_type().is_socket());
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let r = call(&sock, &Request::Status, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r, Response::ok(serde_json::json!({"state": "InProgress"})));
        let r = call(&sock, &Request::Cancel { id: "x".into() }, None).unwrap();
        assert_eq!(r.code, Some(69));
        // A second daemon on the same socket is refused.
        assert!(matches!(
            Server::start(&sock, h.clone(), rt.handle(), &shutdown),
            Err(ControlError::InUse { .. })
        ));
        drop(srv);
        assert!(!sock.exists());
        assert!(matches!(
            call(&sock, &Request::Status, None),
            Err(ControlError::Connect { .. })
        ));
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ctl.sock");
        drop(UnixListener::bind(&sock).unwrap()); // left behind by a killed daemon
        let h: Handler = Arc::new(|_| Response::ok(serde_json::Value::Null));
        let (rt, shutdown) = (runtime(), CancellationToken::new());
        let _srv = Server::start(&sock, h, rt.handle(), &shutdown).unwrap();
        assert!(call(&sock, &Request::Jobs, None).unwrap().ok);
        // The daemon's shutdown ends the server: the socket no longer answers.
        shutdown.cancel();
        rt.shutdown_timeout(Duration::from_secs(60));
        assert!(call(&sock, &Request::Jobs, Some(Duration::from_secs(60))).is_err());
    }

    #[test]
    fn requests_have_a_stable_wire_form() {
        let j = serde_json::to_string(&Request::Flush {
            wait: true,
            timeout_ms: Some(5),
        })
        .unwrap();
        assert_eq!(j, r#"{"cmd":"flush","wait":true,"timeout_ms":5}"#);
        let r: Request = serde_json::from_str(r#"{"cmd":"autoexport","enable":false}"#).unwrap();
        assert_eq!(r, Request::Autoexport { enable: false });
    }
}
