//! A fault-injecting HTTP proxy on 127.0.0.1, put between a client and Azurite to simulate a
//! flaky blob store.
//!
//! The proxy understands HTTP/1.1 framing (Content-Length and chunked bodies, keep-alive), so a
//! fault switched on applies to the *next request* even on connections a client already pools.
//! Modes ([`Fault`]):
//! * [`Fault::Pass`]: requests go to the upstream unchanged.
//! * [`Fault::Refuse`]: new connections are closed (reset) right after accept, and pooled ones
//!   are closed when their next request arrives, without an answer.
//! * [`Fault::Busy`]: every request is read in full and answered `503 Server Busy` with Azure's
//!   XML error body and `x-ms-error-code: ServerBusy`; with a count, the proxy goes back to
//!   [`Fault::Pass`] after that many answers.
//! * [`Fault::Latency`]: each request is held for the given time, then forwarded.
//!
//! ```no_run
//! use testkit::BlobEndpoint;
//! let az = testkit::Azurite::start();
//! let proxy = testkit::proxy::FaultProxy::start(az.port());
//! proxy.set(testkit::proxy::Fault::Busy { count: Some(10) });   // the next 10 requests get 503
//! // point the client at proxy.url() / proxy.container_url("c") instead of az.url()
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; further ones are closed at accept (a test harness, not a server).
const MAX_CONNECTIONS: usize = 256;
/// Longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What the proxy does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Close connections without answering.
    Refuse,
    /// Answer `503 Server Busy`; `count: Some(n)` for the next `n` requests, `None` until
    /// switched back.
    Busy { count: Option<u64> },
    /// Hold each request this long before forwarding it.
    Latency(Duration),
}

/// What the proxy has done so far (for assertions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted (including refused ones).
    pub connections: u64,
    /// Requests forwarded to the upstream.
    pub forwarded: u64,
    /// Requests answered 503 by the proxy.
    pub busy_answers: u64,
    /// Connections closed by [`Fault::Refuse`].
    pub refused: u64,
    /// Requests held by [`Fault::Latency`].
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    forwarded: AtomicU64,
    busy_answers: AtomicU64,
    refused: AtomicU64,
    delayed: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    counters: Counters,
    stop: AtomicBool,
    /// Streams of live connections (client side), shut down on drop to unblock their threads.
    live: Mutex<Vec<(u64, TcpStream)>>,
}

/// A running proxy; stops (and closes every connection) on drop.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `127.0.0.1:upstream_port`, in
    /// [`Fault::Pass`] mode.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            fault: Mutex::new(Fault::Pass),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn proxy thread");
        FaultProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// Switches the mode; applies to the next request on every connection.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().expect("proxy lock") = fault;
    }

    /// The current mode ([`Fault::Busy`] with a count falls back to [`Fault::Pass`] by itself).
    pub fn fault(&self) -> Fault {
        *self.shared.fault.lock().expect("proxy lock")
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::SeqCst),
            forwarded: c.forwarded.load(Ordering::SeqCst),
            busy_answers: c.busy_answers.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
            delayed: c.delayed.load(Ordering::SeqCst),
        }
    }
}

/// The Azurite account through the proxy: clients connect to the proxy's port.
impl crate::BlobEndpoint for FaultProxy {
    fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then cut every live connection so its thread returns.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        if let Ok(live) = self.shared.live.lock() {
            for (_, s) in live.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        if matches!(current(&shared), Fault::Refuse) {
            shared.counters.refused.fetch_add(1, Ordering::SeqCst);
            reset(client);
            continue;
        }
        let id = next_id;
        next_id += 1;
        {
            let mut live = shared.live.lock().expect("proxy lock");
            if live.len() >= MAX_CONNECTIONS {
                drop(live);
                reset(client);
                continue;
            }
            match client.try_clone() {
                Ok(c) => live.push((id, c)),
                Err(_) => continue,
            }
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let _ = serve_connection(client, &s);
                let mut live = s.live.lock().expect("proxy lock");
                live.retain(|(i, _)| *i != id);
            });
        if spawned.is_err() {
            shared
                .live
                .lock()
                .expect("proxy lock")
                .retain(|(i, _)| *i != id);
        }
    }
}

fn current(shared: &Shared) -> Fault {
    *shared.fault.lock().expect("proxy lock")
}

/// Closes with a TCP reset (SO_LINGER 0), as a crashed or refusing server would look.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a pointer to a live `linger` and its exact size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// What to do with one request, decided when its head has arrived.
enum Decision {
    Forward,
    Busy,
    Close,
}

fn decide(shared: &Shared) -> (Decision, Option<Duration>) {
    let mut f = shared.fault.lock().expect("proxy lock");
    match *f {
        Fault::Pass => (Decision::Forward, None),
        Fault::Latency(d) => (Decision::Forward, Some(d)),
        Fault::Refuse => (Decision::Close, None),
        Fault::Busy { count: None } => (Decision::Busy, None),
        Fault::Busy { count: Some(n) } => {
            *f = if n <= 1 {
                Fault::Pass
            } else {
                Fault::Busy { count: Some(n - 1) }
            };
            if n == 0 {
                (Decision::Forward, None)
            } else {
                (Decision::Busy, None)
            }
        }
    }
}

fn serve_connection(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut client_w = client.try_clone()?;
    let mut client_r = BufReader::new(client);
    // The upstream connection is opened lazily and kept while both sides keep it alive.
    let mut upstream: Option<(TcpStream, BufReader<TcpStream>)> = None;
    loop {
        let Some(head) = read_head(&mut client_r)? else {
            return Ok(());
        };
        let req = parse_head(&head)?;
        let (decision, delay) = decide(shared);
        match decision {
            Decision::Close => {
                shared.counters.refused.fetch_add(1, Ordering::SeqCst);
                if let Ok(s) = client_w.try_clone() {
                    reset(s);
                }
                return Ok(());
            }
            Decision::Busy => {
                if req.expect_continue {
                    // Answer before the body is sent, then close (the body is never read).
                    write_busy(&mut client_w, &req, true)?;
                    shared.counters.busy_answers.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                copy_body(&mut client_r, &mut io::sink(), req.body)?;
                write_busy(&mut client_w, &req, req.close)?;
                shared.counters.busy_answers.fetch_add(1, Ordering::SeqCst);
                if req.close {
                    return Ok(());
                }
            }
            Decision::Forward => {
                if let Some(d) = delay {
                    shared.counters.delayed.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(d);
                }
                if upstream.is_none() {
                    let s = TcpStream::connect(shared.upstream)?;
                    let r = BufReader::new(s.try_clone()?);
                    upstream = Some((s, r));
                }
                let (up_w, up_r) = upstream.as_mut().expect("upstream just set");
                // The proxy answers 100-continue itself and forwards the request without it.
                if req.expect_continue {
                    client_w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                }
                up_w.write_all(&strip_expect(&head))?;
                copy_body(&mut client_r, up_w, req.body)?;
                up_w.flush()?;
                shared.counters.forwarded.fetch_add(1, Ordering::SeqCst);
                let resp_close = forward_response(up_r, &mut client_w, req.head_request)?;
                if resp_close {
                    // The upstream closes after this response: so does the proxy.
                    let _ = client_w.shutdown(Shutdown::Both);
                    return Ok(());
                }
                if req.close {
                    return Ok(());
                }
            }
        }
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug)]
enum Body {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

struct RequestHead {
    body: Body,
    close: bool,
    expect_continue: bool,
    head_request: bool,
}

/// Reads up to and including the blank line; `None` on a clean close before any byte.
fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a message head",
                ))
            };
        }
        if head.is_empty() && (line == b"\r\n" || line == b"\n") {
            continue; // tolerated stray CRLF between messages
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
    }
}

fn headers(head: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    head.split(|&b| b == b'\n').skip(1).filter_map(|l| {
        let l = String::from_utf8_lossy(l);
        let (k, v) = l.split_once(':')?;
        Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
    })
}

fn first_line(head: &[u8]) -> String {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    String::from_utf8_lossy(&head[..end]).trim_end().to_string()
}

fn body_of(head: &[u8]) -> io::Result<Option<Body>> {
    let mut len = None;
    for (k, v) in headers(head) {
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            return Ok(Some(Body::Chunked));
        }
        if k == "content-length" {
            len = Some(Body::Length(v.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "bad content-length")
            })?));
        }
    }
    Ok(len)
}

fn has_token(head: &[u8], name: &str, token: &str) -> bool {
    headers(head)
        .any(|(k, v)| k == name && v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn parse_head(head: &[u8]) -> io::Result<RequestHead> {
    let line = first_line(head);
    let method = line.split_whitespace().next().unwrap_or("");
    let http10 = line.ends_with("HTTP/1.0");
    Ok(RequestHead {
        body: body_of(head)?.unwrap_or(Body::None),
        close: has_token(head, "connection", "close")
            || (http10 && !has_token(head, "connection", "keep-alive")),
        expect_continue: has_token(head, "expect", "100-continue"),
        head_request: method.eq_ignore_ascii_case("HEAD"),
    })
}

fn strip_expect(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|&b| b == b'\n') {
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        if lower.starts_with("expect:") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

fn copy_exact<R: Read, W: Write>(r: &mut R, w: &mut W, mut n: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while n > 0 {
        let want = n.min(buf.len() as u64) as usize;
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a body",
            ));
        }
        w.write_all(&buf[..got])?;
        n -= got as u64;
    }
    Ok(())
}

/// Copies one body (framing bytes included, so chunked bodies pass through unchanged).
fn copy_body<R: BufRead, W: Write>(r: &mut R, w: &mut W, body: Body) -> io::Result<()> {
    match body {
        Body::None => Ok(()),
        Body::Length(n) => copy_exact(r, w, n),
        Body::UntilClose => io::copy(r, w).map(|_| ()),
        Body::Chunked => loop {
            let mut size_line = Vec::new();
            if r.read_until(b'\n', &mut size_line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            w.write_all(&size_line)?;
            let text = String::from_utf8_lossy(&size_line);
            let hex = text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers up to the blank line.
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    w.write_all(&l)?;
                    if l == b"\r\n" || l == b"\n" {
                        return Ok(());
                    }
                }
            }
            copy_exact(r, w, size + 2)?; // data + CRLF
        },
    }
}

/// Forwards one response (skipping interim 1xx ones); returns whether the connection ends after it.
fn forward_response<R: BufRead, W: Write>(
    up: &mut R,
    client: &mut W,
    head_request: bool,
) -> io::Result<bool> {
    loop {
        let head = read_head(up)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed before answering",
            )
        })?;
        let line = first_line(&head);
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
        if (100..200).contains(&status) {
            continue; // the proxy already answered 100-continue itself
        }
        client.write_all(&head)?;
        let close = has_token(&head, "connection", "close");
        let body = if head_request || status == 204 || status == 304 {
            Body::None
        } else {
            body_of(&head)?.unwrap_or(Body::UntilClose)
        };
        copy_body(up, client, body)?;
        client.flush()?;
        return Ok(close || matches!(body, Body::UntilClose));
    }
}

/// Azure's answer when it throttles: `503 Server Busy` with its XML error body.
fn write_busy<W: Write>(w: &mut W, req: &RequestHead, close: bool) -> io::Result<()> {
    let request_id = format!("{:016x}", rand_id());
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code>\
         <Message>The server is busy.\nRequestId:{request_id}\nTime:{}</Message></Error>",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    let mut resp = format!(
        "HTTP/1.1 503 Server Busy\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-ms-error-code: ServerBusy\r\nx-ms-request-id: {request_id}\r\nRetry-After: 1\r\n",
        body.len()
    );
    resp.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    if !req.head_request {
        resp.push_str(&body);
    }
    w.write_all(resp.as_bytes())?;
    w.flush()
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    //! Each mode, shown with a plain HTTP/1.1 client (keep-alive, shared-key signed) against a
    //! real Azurite behind the proxy.
    use super::*;
    use crate::{sign_shared_key, Azurite, BlobEndpoint, AZURITE_ACCOUNT, AZURITE_KEY};
    use std::time::Instant;

    struct Response {
        status: u16,
        head: String,
        body: Vec<u8>,
    }

    /// One keep-alive connection to the proxy.
    struct Client {
        port: u16,
        w: TcpStream,
        r: BufReader<TcpStream>,
    }

    impl Client {
        fn connect(port: u16) -> io::Result<Client> {
            let w = TcpStream::connect(("127.0.0.1", port))?;
            w.set_read_timeout(Some(Duration::from_secs(30)))?;
            let r = BufReader::new(w.try_clone()?);
            Ok(Client { port, w, r })
        }

        fn send(
            &mut self,
            method: &str,
            path: &str,
            query: &[(&str, &str)],
            body: &[u8],
        ) -> io::Result<Response> {
            let date = chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            let path = format!("/{AZURITE_ACCOUNT}{path}");
            let len = body.len().to_string();
            let mut headers = vec![
                ("content-length", len.as_str()),
                ("x-ms-date", date.as_str()),
                ("x-ms-version", "2021-08-06"),
            ];
            if method == "PUT" && query.is_empty() {
                headers.push(("x-ms-blob-type", "BlockBlob"));
            }
            let auth =
                sign_shared_key(AZURITE_ACCOUNT, AZURITE_KEY, method, &path, query, &headers)
                    .expect("sign");
            let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let target = if qs.is_empty() {
                path
            } else {
                format!("{path}?{}", qs.join("&"))
            };
            let mut req = format!(
                "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\n",
                self.port
            );
            for (k, v) in &headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            self.w.write_all(req.as_bytes())?;
            self.w.write_all(body)?;
            let head = read_head(&mut self.r)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer")
            })?;
            let status = first_line(&head)
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let framing = if method == "HEAD" {
                Body::None
            } else {
                body_of(&head)?.unwrap_or(Body::None)
            };
            let mut raw = Vec::new();
            copy_body(&mut self.r, &mut raw, framing)?;
            let body = match framing {
                Body::Chunked => crate::http::dechunk(&raw),
                _ => raw,
            };
            Ok(Response {
                status,
                head: String::from_utf8_lossy(&head).into_owned(),
                body,
            })
        }
    }

    #[test]
    fn pass_through_forwards_requests_on_one_connection() {
        let az = Azurite::start();
        let proxy = FaultProxy::start(az.port());
        let mut c = Client::connect(proxy.port()).unwrap();
        let r = c
            .send("PUT", "/pass", &[("restype", "container")], b"")
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.head);
        let r = c
            .send("PUT", "/pass/a.txt", &[], b"hello through the proxy")
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.head);
        let r = c.send("GET", "/pass/a.txt", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello through the proxy");
        let r = c.send("HEAD", "/pass/a.txt", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        let r = c
            .send(
                "GET",
                "/pass",
                &[("comp", "list"), ("restype", "container")],
                b"",
            )
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("<Name>a.txt</Name>"));
        assert!(az.container_exists("pass"), "the container reached Azurite");
        let st = proxy.stats();
        assert_eq!(st.connections, 1, "five requests shared one connection");
        assert_eq!(st.forwarded, 5);
        assert_eq!(st.busy_answers, 0);
    }

    #[test]
    fn busy_for_n_requests_answers_503_then_passes_again() {
        let az = Azurite::start();
        az.create_container("busy");
        let proxy = FaultProxy::start(az.port());
        let mut c = Client::connect(proxy.port()).unwrap();
        proxy.set(Fault::Busy { count: Some(2) });
        let body = vec![7u8; 100 * 1024];
        for i in 0..2 {
            let r = c.send("PUT", "/busy/b.bin", &[], &body).unwrap();
            assert_eq!(r.status, 503, "request {i}: {}", r.head);
            assert!(r.head.starts_with("HTTP/1.1 503 Server Busy\r\n"));
            assert!(r.head.contains("x-ms-error-code: ServerBusy"));
            assert!(String::from_utf8_lossy(&r.body).contains("<Code>ServerBusy</Code>"));
        }
        let (status, _) = az.signed_request("HEAD", "/busy/b.bin", &[]);
        assert_eq!(status, 404, "a 503 answer did not reach Azurite");
        assert_eq!(
            proxy.fault(),
            Fault::Pass,
            "back to pass-through after 2 answers"
        );
        // Same connection: the discarded bodies kept the framing intact.
        let r = c.send("PUT", "/busy/b.bin", &[], &body).unwrap();
        assert_eq!(r.status, 201, "{}", r.head);
        let r = c.send("GET", "/busy/b.bin", &[], b"").unwrap();
        assert_eq!(r.body, body);
        let st = proxy.stats();
        assert_eq!((st.busy_answers, st.forwarded, st.connections), (2, 2, 1));
    }

    #[test]
    fn busy_until_switched_back_including_head_requests() {
        let az = Azurite::start();
        az.create_container("hold");
        let proxy = FaultProxy::start(az.port());
        let mut c = Client::connect(proxy.port()).unwrap();
        assert_eq!(c.send("PUT", "/hold/x", &[], b"x").unwrap().status, 201);
        proxy.set(Fault::Busy { count: None });
        for _ in 0..3 {
            let r = c.send("HEAD", "/hold/x", &[], b"").unwrap();
            assert_eq!(r.status, 503);
            assert!(r.body.is_empty(), "no body on a HEAD answer");
            assert_eq!(c.send("GET", "/hold/x", &[], b"").unwrap().status, 503);
        }
        assert_eq!(proxy.fault(), Fault::Busy { count: None });
        proxy.set(Fault::Pass);
        let r = c.send("GET", "/hold/x", &[], b"").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"x".as_slice()));
        assert_eq!(proxy.stats().busy_answers, 6);
    }

    #[test]
    fn refuse_closes_new_and_pooled_connections() {
        let az = Azurite::start();
        az.create_container("refuse");
        let proxy = FaultProxy::start(az.port());
        let mut pooled = Client::connect(proxy.port()).unwrap();
        assert_eq!(
            pooled.send("PUT", "/refuse/y", &[], b"y").unwrap().status,
            201
        );
        proxy.set(Fault::Refuse);
        // The pooled connection gets no answer to its next request.
        assert!(pooled.send("GET", "/refuse/y", &[], b"").is_err());
        // A new connection is closed right away.
        match Client::connect(proxy.port()) {
            Err(_) => {}
            Ok(mut fresh) => assert!(fresh.send("GET", "/refuse/y", &[], b"").is_err()),
        }
        assert_eq!(proxy.stats().refused, 2);
        proxy.set(Fault::Pass);
        let mut again = Client::connect(proxy.port()).unwrap();
        let r = again.send("GET", "/refuse/y", &[], b"").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"y".as_slice()));
    }

    #[test]
    fn latency_holds_each_request_then_forwards_it() {
        let az = Azurite::start();
        az.create_container("slow");
        let proxy = FaultProxy::start(az.port());
        let mut c = Client::connect(proxy.port()).unwrap();
        let hold = Duration::from_millis(300);
        proxy.set(Fault::Latency(hold));
        for i in 0..2 {
            let t = Instant::now();
            let r = c.send("PUT", &format!("/slow/{i}"), &[], b"z").unwrap();
            assert_eq!(r.status, 201);
            // A lower bound only: the proxy sleeps `hold` before forwarding.
            assert!(t.elapsed() >= hold, "request {i} was not held");
        }
        let st = proxy.stats();
        assert_eq!((st.delayed, st.forwarded), (2, 2));
        let (status, _) = az.signed_request("HEAD", "/slow/1", &[]);
        assert_eq!(status, 200);
    }
}
