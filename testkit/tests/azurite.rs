use std::io::{Read, Write};
use std::net::TcpStream;
use testkit::BlobEndpoint;

fn get_status(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1).map(str::to_string)
}

#[test]
fn starts_creates_containers_stops_and_restarts_on_the_same_port() {
    let az = testkit::Azurite::start();
    let port = az.port();
    assert!(az.url().starts_with("http://127.0.0.1:"));
    az.create_container("first");
    az.create_container("first"); // idempotent
    assert!(!az.container_exists("nope"));
    assert!(az.container_exists("first"));

    az.stop();
    assert!(!az.is_running());
    assert!(
        get_status(port, "/").is_none(),
        "still answering after stop"
    );
    az.restart();
    assert_eq!(az.port(), port);
    assert!(
        az.container_exists("first"),
        "container not re-created after restart"
    );
    drop(az);
    assert!(
        get_status(port, "/").is_none(),
        "still answering after drop"
    );
}

#[test]
fn target_dir_holds_the_test_executable() {
    let exe = std::env::current_exe().unwrap();
    assert!(exe.starts_with(testkit::target_dir()));
    assert_eq!(testkit::bin_path("x"), testkit::target_dir().join("x"));
}

#[test]
fn disk_mode_starts_and_restarts() {
    let az = testkit::Azurite::start_on_disk();
    az.create_container("kept");
    az.stop();
    az.restart();
    assert!(az.container_exists("kept"));
}
