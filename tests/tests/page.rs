//! The Blob-integration page (issue 16 item 3) in a real browser: Debian's headless chromium
//! driven through chromedriver. The numbers change after an export; a job is cancelled without
//! the token (refused) and with it (done); a cross-site POST is refused. The screenshot is kept
//! under `target/page-screenshots/`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::util::wait_until;
use e2e::webdriver::Driver;

const TOKEN: &str = "page-test-token-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn post(port: u16, path: &str, origin: &str, form: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/page-screenshots")
}

#[test]
fn the_page_shows_the_numbers_and_cancels_only_with_the_token() {
    let port = free_port();
    let mut s = Stack::new(StackOptions::default());
    let token_file = s.dir.path().join("page.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    s.edit_policy(|p| {
        p.extra
            .push(("control".into(), format!("http = \"127.0.0.1:{port}\"")));
        p.extra.push((
            "control".into(),
            format!("http_token_file = \"{}\"", token_file.display()),
        ));
    });
    s.start_copytool(&[]);
    s.start_daemon();
    let url = format!("http://127.0.0.1:{port}/");
    let b = Driver::start();
    b.goto(&url);
    let total = |b: &Driver| b.text_of("td[data-metric='Total Files Exported']");
    assert_eq!(
        total(&b).as_deref(),
        Some("0"),
        "a fresh system: {}",
        b.source()
    );
    assert_eq!(b.text_of("#state").as_deref(), Some("InProgress"));

    for i in 0..3 {
        s.write(&format!("web/f{i}.txt"), b"page");
    }
    assert!(s.flush("60s").status.success(), "{}", s.logs());
    // One failure, with its reason, on the page.
    s.write("web/bad\nname.txt", b"no blob can carry this name");
    let o = s.flush("60s");
    assert_eq!(o.status.code(), Some(1));
    // web/ and its three files, once each (new files in web/ leave no record on web/ itself,
    // as on Lustre: REAL_LUSTRE.md row 15), and the very number the daemon reports.
    let changed = wait_until(Duration::from_secs(30), || {
        b.goto(&url);
        let daemon = s.status_json()["totalFilesExported"].as_u64();
        let shown = total(&b).and_then(|t| t.parse::<u64>().ok());
        shown == Some(4) && shown == daemon
    });
    assert!(changed, "the page never showed the export: {:?}", total(&b));
    assert_eq!(
        b.text_of("#exported").as_deref(),
        Some("Everything exported: no")
    );
    assert_eq!(b.text_of("#standing").as_deref(), Some("1"));
    let failures = b.text_of("#failures").unwrap_or_default();
    assert!(
        failures.contains("web/bad\\nname.txt") && failures.contains("control character"),
        "{failures}"
    );
    assert!(b.find("svg.chart").is_some(), "charts are drawn");
    b.screenshot(&screenshots().join("page-after-export.png"));

    // Cancel without the right token: refused, nothing changes.
    let field = b
        .find("tr[data-job='autoexport'] input[name='token']")
        .expect("token field of the running job");
    b.type_into(&field, "not-the-token-at-all");
    b.click(
        &b.find("tr[data-job='autoexport'] button.cancel")
            .expect("cancel"),
    );
    // The answer is a page of its own: wait for the browser to have loaded it (a click returns
    // once the form is sent, and under load the old page can still be the one read).
    let refused = wait_until(Duration::from_secs(20), || {
        b.text_of("#refused").as_deref() == Some("wrong token")
    });
    assert!(refused, "no refusal shown: {}", b.source());
    assert_eq!(s.status_json()["state"], "InProgress");

    // A form posted from another site is refused even with the token.
    let answer = post(
        port,
        "/cancel",
        "http://evil.example",
        &format!("id=autoexport&token={TOKEN}"),
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(s.status_json()["state"], "InProgress");

    // With the token: cancelled, and the page says so.
    b.goto(&url);
    let field = b
        .find("tr[data-job='autoexport'] input[name='token']")
        .expect("token field");
    b.type_into(&field, TOKEN);
    b.click(
        &b.find("tr[data-job='autoexport'] button.cancel")
            .expect("cancel"),
    );
    let done = wait_until(Duration::from_secs(20), || {
        b.goto(&url);
        b.text_of("tr[data-job='autoexport-1'] td.state").as_deref() == Some("Canceled")
    });
    assert!(done, "the cancelled job is not listed Canceled");
    assert_eq!(b.text_of("#state").as_deref(), Some("Disabled"));
    assert_eq!(s.status_json()["state"], "Disabled");
    b.screenshot(&screenshots().join("page-after-cancel.png"));
    assert!(screenshots()
        .join("page-after-cancel.png")
        .metadata()
        .is_ok_and(|m| m.len() > 1000));
}

#[test]
fn without_a_token_the_page_is_read_only() {
    let port = free_port();
    let mut s = Stack::new(StackOptions::default());
    s.edit_policy(|p| {
        p.extra
            .push(("control".into(), format!("http = \"127.0.0.1:{port}\"")));
    });
    s.start_daemon();
    let origin = format!("http://127.0.0.1:{port}");
    let answer = post(
        port,
        "/autoexport",
        &origin,
        "action=disable&token=anything-at-all-here",
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("read-only"), "{answer}");
    assert_eq!(s.status_json()["state"], "InProgress");
}
