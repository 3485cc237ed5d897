//! The daemon's HTTP side, on axum: `/metrics` (Prometheus text) and, when `[control] http` is
//! set, the Blob-integration page an Azure Managed Lustre user knows from the portal: Overall and
//! Current Iteration metrics under Azure's names, the Recent jobs table with a Cancel button,
//! the latest failures, the export lag, and small charts drawn as inline SVG (no external asset).
//!
//! The page is read-only unless `[control] http_token_file` names a token: Cancel and
//! enable/disable are POSTs that must carry it (compared in constant time). A cross-site form
//! cannot know the token, and a POST whose `Origin` is not this server is refused as well, so
//! the control socket's rights never leak to the network. Every request is answered by asking
//! the daemon's own loop (the same [`Request`]s the CLI sends), never by reading its state
//! behind its back.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response as HttpResponse};
use axum::routing::{get, post};
use axum::Router;

use crate::control::{Request, Response};
use blob::time::rfc3339_ms;

/// Asks the daemon loop; blocking (called on a blocking thread).
pub type Ask = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Points for the charts, kept by the daemon (in memory: a restart starts them afresh).
#[derive(Debug, Default)]
pub struct History {
    /// (iteration, files exported, MiB exported), the last [`HISTORY_POINTS`].
    pub iterations: VecDeque<(u64, u64, u64)>,
    /// (Unix ms, lag seconds), one sample per [`LAG_SAMPLE_MS`].
    pub lag: VecDeque<(u64, f64)>,
}

/// Points kept per chart.
pub const HISTORY_POINTS: usize = 60;
/// One lag sample this often.
pub const LAG_SAMPLE_MS: u64 = 10_000;

impl History {
    /// Records the status of now: a newly completed iteration, and a lag sample when due.
    pub fn note(&mut self, s: &crate::status::AutoExportStatus, now: u64) {
        if let (Some(n), false) = (s.current_iteration, s.current_iteration_running) {
            if self.iterations.back().is_none_or(|(last, _, _)| *last != n) {
                self.iterations.push_back((
                    n,
                    s.current_iteration_files_exported,
                    s.current_iteration_mib_exported,
                ));
            }
        }
        if self
            .lag
            .back()
            .is_none_or(|(t, _)| now.saturating_sub(*t) >= LAG_SAMPLE_MS)
        {
            self.lag
                .push_back((now, s.oldest_unexported_change_age_seconds));
        }
        while self.iterations.len() > HISTORY_POINTS {
            self.iterations.pop_front();
        }
        while self.lag.len() > HISTORY_POINTS {
            self.lag.pop_front();
        }
    }
}

#[derive(Clone)]
struct Web {
    ask: Ask,
    metrics: Arc<Mutex<String>>,
    history: Arc<Mutex<History>>,
    token: Option<Arc<String>>,
    /// `http://ADDR:PORT`, the only Origin a POST may come from.
    origin: String,
}

/// What the server needs from the daemon.
pub struct WebParts {
    pub ask: Ask,
    pub metrics: Arc<Mutex<String>>,
    pub history: Arc<Mutex<History>>,
}

/// Reads the token file: one line, mode 0600 or stricter (as ssh wants of its keys).
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path)
        .map_err(|e| format!("control.http_token_file {}: {e}", path.display()))?;
    if md.mode() & 0o077 != 0 {
        return Err(format!(
            "control.http_token_file {}: readable by group or others (mode {:04o}); chmod 600 it",
            path.display(),
            md.mode() & 0o7777
        ));
    }
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("control.http_token_file {}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(format!(
            "control.http_token_file {}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(t)
}

/// The router: `/metrics` always; the page, its JSON and its actions when `page` is set.
fn router(web: Web, page: bool) -> Router {
    let r = Router::new().route("/metrics", get(metrics));
    let r = if page {
        r.route("/", get(index))
            .route("/api/status", get(api_status))
            .route("/api/jobs", get(api_jobs))
            .route("/jobs/{id}", get(job_page))
            .route("/cancel", post(cancel))
            .route("/autoexport", post(autoexport))
    } else {
        r
    };
    r.with_state(web)
}

/// Binds `addr` and serves on `rt` until `stop` is cancelled (the `endpoint` crate's server, as
/// the copytool's). `page`: the Blob-integration page too (else `/metrics` only); `token`:
/// actions allowed with it.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    addr: SocketAddr,
    page: bool,
    token: Option<String>,
    parts: &WebParts,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    // The page checks a POST's Origin against the address it is served at, known once bound.
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let web = Web {
        ask: parts.ask.clone(),
        metrics: parts.metrics.clone(),
        history: parts.history.clone(),
        token: token.map(Arc::new),
        origin: format!("http://{local}"),
    };
    endpoint::spawn_on(rt, listener, router(web, page), stop)
}

async fn ask(web: &Web, req: Request) -> Response {
    let a = web.ask.clone();
    tokio::task::spawn_blocking(move || a(req))
        .await
        .unwrap_or_else(|_| Response::err(crate::exit::INTERNAL, "the daemon did not answer"))
}

async fn metrics(State(web): State<Web>) -> HttpResponse {
    let text = match web.metrics.lock() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    ([(header::CONTENT_TYPE, endpoint::CONTENT_TYPE)], text).into_response()
}

async fn api_status(State(web): State<Web>) -> HttpResponse {
    axum::Json(ask(&web, Request::Status).await.data).into_response()
}

async fn api_jobs(State(web): State<Web>) -> HttpResponse {
    axum::Json(ask(&web, Request::Jobs).await.data).into_response()
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A bar chart of `points` (label, value) as inline SVG.
fn bars(title: &str, unit: &str, points: &[(String, f64)]) -> String {
    let (w, h, pad) = (360.0, 120.0, 20.0);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1.0);
    let n = points.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut o = format!(
        "<figure><svg class=\"chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">",
        t = esc(title)
    );
    let _ = write!(
        o,
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = h - pad,
        x2 = w - pad
    );
    for (i, (label, v)) in points.iter().enumerate() {
        let bh = (h - 2.0 * pad) * v / max;
        let _ = write!(
            o,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"#0078d4\"><title>{l}: {v} {u}</title></rect>",
            x = pad + i as f64 * bw + 1.0,
            y = h - pad - bh,
            bw = (bw - 2.0).max(1.0),
            l = esc(label),
            u = esc(unit)
        );
    }
    let _ = write!(
        o,
        "<text x=\"{pad}\" y=\"12\" font-size=\"10\">max {max:.0} {u}</text></svg><figcaption>{t}</figcaption></figure>",
        u = esc(unit),
        t = esc(title)
    );
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}.num{text-align:right}section{margin-bottom:1em}figure{display:inline-block;margin:0 1em 0 0}\
.ok{color:#107c10}.bad{color:#a80000}.warn{color:#8a6d00}form{display:inline}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>{t}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        t = esc(title)
    ))
}

fn rows(pairs: &[(&str, String)]) -> String {
    let mut o = String::from("<table>");
    for (k, v) in pairs {
        let _ = write!(
            o,
            "<tr><th>{}</th><td class=\"num\" data-metric=\"{}\">{}</td></tr>",
            esc(k),
            esc(k),
            esc(v)
        );
    }
    o.push_str("</table>");
    o
}

async fn index(State(web): State<Web>) -> Html<String> {
    let st = ask(&web, Request::Status).await.data;
    let jobs = ask(&web, Request::Jobs).await.data;
    let g = |k: &str| text(&st[k]);
    let mut b = String::from("<h1>Blob integration</h1>");
    let everything = st["everythingExported"] == true;
    let _ = write!(
        b,
        "<p>Auto-export: <strong id=\"state\">{}</strong> {}</p><p id=\"exported\" class=\"{}\">Everything exported: {}</p>",
        esc(&g("state")),
        esc(&text(&st["statusMessage"]).replace('—', "")),
        if everything { "ok" } else { "warn" },
        if everything { "yes" } else { "no" }
    );
    for w in st["warnings"].as_array().into_iter().flatten() {
        let _ = write!(b, "<p class=\"warn\">Warning: {}</p>", esc(&text(w)));
    }
    b.push_str("<section><h2>Overall</h2>");
    b.push_str(&rows(&[
        ("Total Files Exported", g("totalFilesExported")),
        ("Total MiB Exported", g("totalMiBExported")),
        ("Iterations Completed", g("exportIterationCount")),
        (
            "Last Successful Iteration",
            g("lastSuccessfulIterationCompletionTimeUTC"),
        ),
        ("Standing failures", g("standingFailures")),
        (
            "Oldest unexported change (s)",
            format!(
                "{:.0}",
                st["oldestUnexportedChangeAgeSeconds"]
                    .as_f64()
                    .unwrap_or(0.0)
            ),
        ),
    ]));
    let running = st["currentIterationRunning"] == true;
    let _ = write!(
        b,
        "</section><section><h2>Current Iteration{}</h2>",
        match (&st["currentIteration"], running) {
            (serde_json::Value::Number(n), true) => format!(" ({n}, so far)"),
            (serde_json::Value::Number(n), false) => format!(" ({n}, completed)"),
            _ => String::new(),
        }
    );
    b.push_str(&rows(&[
        ("Files Discovered", g("currentIterationFilesDiscovered")),
        ("MiB Discovered", g("currentIterationMiBDiscovered")),
        ("Files Exported", g("currentIterationFilesExported")),
        ("MiB Exported", g("currentIterationMiBExported")),
        ("Files Failed", g("currentIterationFilesFailed")),
    ]));
    b.push_str("</section>");
    // Charts.
    let (iters, lag) = match web.history.lock() {
        Ok(h) => (h.iterations.clone(), h.lag.clone()),
        Err(p) => {
            let h = p.into_inner();
            (h.iterations.clone(), h.lag.clone())
        }
    };
    let files: Vec<(String, f64)> = iters
        .iter()
        .map(|(n, f, _)| (format!("iteration {n}"), *f as f64))
        .collect();
    let mib: Vec<(String, f64)> = iters
        .iter()
        .map(|(n, _, m)| (format!("iteration {n}"), *m as f64))
        .collect();
    let lagp: Vec<(String, f64)> = lag.iter().map(|(t, l)| (rfc3339_ms(*t), *l)).collect();
    b.push_str("<section><h2>History</h2>");
    b.push_str(&bars("Files exported per iteration", "files", &files));
    b.push_str(&bars("MiB exported per iteration", "MiB", &mib));
    b.push_str(&bars("Export lag over time", "s", &lagp));
    b.push_str("</section>");
    // Actions.
    if web.token.is_some() {
        let (action, label) = if st["state"] == "InProgress" {
            ("disable", "Disable auto-export")
        } else {
            ("enable", "Enable auto-export")
        };
        let _ = write!(
            b,
            "<section><h2>Control</h2><form method=\"post\" action=\"/autoexport\">\
             <input type=\"hidden\" name=\"action\" value=\"{action}\">\
             <input type=\"password\" name=\"token\" placeholder=\"token\" autocomplete=\"off\">\
             <button id=\"toggle\" type=\"submit\">{label}</button></form></section>"
        );
    } else {
        b.push_str("<p><small>Read-only: set <code>[control] http_token_file</code> to cancel jobs or switch auto-export from here.</small></p>");
    }
    // Recent jobs.
    b.push_str("<section><h2>Recent jobs</h2><table id=\"jobs\"><tr><th>Job</th><th>Type</th><th>State</th><th>Start (UTC)</th><th>End (UTC)</th><th>Exported</th><th>Failed</th><th></th></tr>");
    for j in jobs.as_array().into_iter().flatten() {
        let id = text(&j["id"]);
        let exported = if j["kind"] == "import" {
            text(&j["totalBlobsImported"])
        } else if j["kind"] == "autoexport" {
            text(&j["totalFilesExported"])
        } else {
            text(&j["filesExported"])
        };
        let failed = if j["kind"] == "import" {
            text(&j["totalErrors"])
        } else if j["kind"] == "autoexport" {
            text(&j["totalFilesFailed"])
        } else {
            text(&j["filesFailed"])
        };
        let running = matches!(
            j["state"].as_str(),
            Some("Idle" | "FSScanInProgress" | "InProgress" | "Cancelling")
        );
        let cancel = if running && web.token.is_some() {
            format!(
                "<form method=\"post\" action=\"/cancel\"><input type=\"hidden\" name=\"id\" value=\"{i}\">\
                 <input type=\"password\" name=\"token\" placeholder=\"token\" autocomplete=\"off\">\
                 <button class=\"cancel\" data-job=\"{i}\" type=\"submit\">Cancel</button></form>",
                i = esc(&id)
            )
        } else {
            String::new()
        };
        let _ = write!(
            b,
            "<tr data-job=\"{i}\"><td><a href=\"/jobs/{i}\">{i}</a></td><td>{k}</td><td class=\"state\">{s}</td><td>{st}</td><td>{en}</td><td class=\"num\">{ex}</td><td class=\"num\">{fa}</td><td>{cancel}</td></tr>",
            i = esc(&id),
            k = esc(&text(&j["kind"])),
            s = esc(&text(&j["state"])),
            st = esc(&text(&j["startTimeUTC"])),
            en = esc(&text(&j["completionTimeUTC"])),
            ex = esc(&exported),
            fa = esc(&failed),
        );
    }
    b.push_str("</table></section>");
    // Latest failures with their reasons.
    let failures = ask(&web, Request::Failures { limit: 20 }).await.data;
    let _ = write!(
        b,
        "<section><h2>Latest failures</h2><p>Standing now: <span id=\"standing\">{}</span></p><table id=\"failures\"><tr><th>Time (UTC)</th><th>Iteration</th><th>Path</th><th>Operation</th><th>Reason</th></tr>",
        esc(&text(&failures["standing"]))
    );
    for f in failures["latest"].as_array().into_iter().flatten() {
        let at = f["at_ms"].as_u64().map(rfc3339_ms).unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&at),
            esc(&text(&f["iteration"])),
            esc(&text(&f["path"]).escape_debug().to_string()),
            esc(&text(&f["operation"])),
            esc(&text(&f["error"]))
        );
    }
    b.push_str("</table></section>");
    b.push_str("<p><small>Every failure, with its reason, is in the logging container; <code>lustre-blob flush --wait</code> lists the standing ones. JSON: <a href=\"/api/status\">status</a>, <a href=\"/api/jobs\">jobs</a>, <a href=\"/metrics\">metrics</a>.</small></p>");
    page("lustre-blob: Blob integration", &b)
}

async fn job_page(State(web): State<Web>, Path(id): Path<String>) -> HttpResponse {
    let r = ask(
        &web,
        Request::Job {
            id: id.clone(),
            wait_ms: None,
        },
    )
    .await;
    if !r.ok {
        return (
            StatusCode::NOT_FOUND,
            page(
                "no such job",
                &format!("<p>{}</p>", esc(&r.error.unwrap_or_default())),
            ),
        )
            .into_response();
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(m) = r.data.as_object() {
        for (k, v) in m {
            pairs.push((k.clone(), text(v)));
        }
    }
    let list: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    page(
        &format!("job {id}"),
        &format!(
            "<h1>Job {}</h1>{}<p><a href=\"/\">back</a></p>",
            esc(&id),
            rows(&list)
        ),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct CancelForm {
    id: String,
    #[serde(default)]
    token: String,
}

#[derive(serde::Deserialize)]
struct ToggleForm {
    action: String,
    #[serde(default)]
    token: String,
}

/// Whether a POST may act: a token is configured, the form's equals it (constant time), and
/// the browser says the form came from this page.
fn allowed(web: &Web, headers: &HeaderMap, given: &str) -> Result<(), (StatusCode, String)> {
    use subtle::ConstantTimeEq;
    let Some(token) = &web.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "read-only: set [control] http_token_file to act from the page".into(),
        ));
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != web.origin.as_bytes() {
            return Err((StatusCode::FORBIDDEN, "cross-site request refused".into()));
        }
    }
    if !bool::from(token.as_bytes().ct_eq(given.as_bytes())) {
        return Err((StatusCode::FORBIDDEN, "wrong token".into()));
    }
    Ok(())
}

fn refused(code: StatusCode, why: String) -> HttpResponse {
    (
        code,
        page(
            "refused",
            &format!(
                "<p id=\"refused\">{}</p><p><a href=\"/\">back</a></p>",
                esc(&why)
            ),
        ),
    )
        .into_response()
}

async fn cancel(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(f): Form<CancelForm>,
) -> HttpResponse {
    if let Err((code, why)) = allowed(&web, &headers, &f.token) {
        return refused(code, why);
    }
    let r = ask(&web, Request::Cancel { id: f.id.clone() }).await;
    if !r.ok {
        return refused(StatusCode::CONFLICT, r.error.unwrap_or_default());
    }
    tracing::info!(job = %f.id, "cancelled from the page");
    Redirect::to("/").into_response()
}

async fn autoexport(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(f): Form<ToggleForm>,
) -> HttpResponse {
    if let Err((code, why)) = allowed(&web, &headers, &f.token) {
        return refused(code, why);
    }
    let enable = match f.action.as_str() {
        "enable" => true,
        "disable" => false,
        other => return refused(StatusCode::BAD_REQUEST, format!("unknown action {other:?}")),
    };
    let r = ask(&web, Request::Autoexport { enable }).await;
    if !r.ok {
        return refused(StatusCode::CONFLICT, r.error.unwrap_or_default());
    }
    Redirect::to("/").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_charts_are_self_contained() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let svg = bars("t<", "files", &[("i1".into(), 3.0), ("i2".into(), 6.0)]);
        assert!(svg.contains("<svg") && svg.contains("t&lt;"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(!svg.contains("http"), "no external asset");
    }

    #[test]
    fn a_token_file_readable_by_others_or_too_short_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("token");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_token(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "0123456789abcdef0123");
        std::fs::write(&p, "short").unwrap();
        assert!(read_token(&p).unwrap_err().contains("at least 16"));
    }

    #[test]
    fn history_keeps_one_point_per_iteration_and_spaced_lag_samples() {
        let mut h = History::default();
        let mut s = crate::status::build(&crate::state::State::default(), 0, None);
        s.current_iteration = Some(1);
        s.current_iteration_files_exported = 4;
        h.note(&s, 0);
        h.note(&s, 1_000);
        assert_eq!(h.iterations.len(), 1);
        assert_eq!(h.lag.len(), 1, "not before LAG_SAMPLE_MS");
        s.current_iteration = Some(2);
        h.note(&s, LAG_SAMPLE_MS);
        assert_eq!(h.iterations.len(), 2);
        assert_eq!(h.lag.len(), 2);
    }
}
