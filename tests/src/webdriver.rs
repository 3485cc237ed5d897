//! A small W3C WebDriver client for Debian's `chromedriver` driving headless `chromium`: enough
//! to load a page, find elements by CSS selector, read text, type, click and take a screenshot.
//! Plain HTTP/1.1 over 127.0.0.1, one request per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The element key of W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Driver {
    /// Starts chromedriver and a headless chromium session. Panics with what is missing (the
    /// test command installs both: Debian's `chromium` and `chromium-driver`).
    pub fn start() -> Driver {
        let driver = find_binary(&["/usr/bin/chromedriver"])
            .expect("chromedriver not found: apt-get install chromium-driver (scripts/test does)");
        let browser = find_binary(&["/usr/bin/chromium"])
            .expect("chromium not found: apt-get install chromium (scripts/test does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let up = crate::util::wait_until(Duration::from_secs(30), || {
            d.raw("GET", "/status", None).is_some()
        });
        assert!(up, "chromedriver did not answer on {port}");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser.to_string_lossy(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,1600",
                    format!("--user-data-dir={}", d._profile.path().display()),
                ]
            }
        }}});
        let r = d.call("POST", "/session", Some(caps));
        d.session = r["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        d
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        // chromedriver may keep the connection open: read the head, then exactly the body.
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut payload = raw[split + 4..].to_vec();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        match length {
            Some(len) => {
                while payload.len() < len {
                    let n = s.read(&mut buf).ok()?;
                    if n == 0 {
                        break;
                    }
                    payload.extend_from_slice(&buf[..n]);
                }
            }
            None => {
                let _ = s.read_to_end(&mut payload);
                if head.contains("transfer-encoding: chunked") {
                    payload = dechunk(&payload);
                }
            }
        }
        let v: Value = serde_json::from_slice(&payload).ok()?;
        Some(v["value"].clone())
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .raw(method, path, body.as_ref())
            .unwrap_or_else(|| panic!("webdriver {method} {path}: no answer"));
        if let Some(e) = v.get("error") {
            panic!("webdriver {method} {path}: {e}: {}", v["message"]);
        }
        v
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    /// The page's HTML as the browser holds it (for assertion messages).
    pub fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn current_url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self.raw(
            "POST",
            &self.at("/element"),
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        if std::env::var_os("WEBDRIVER_DEBUG").is_some() {
            eprintln!("find {css}: {v}");
        }
        v[ELEMENT].as_str().map(str::to_string)
    }

    pub fn text(&self, el: &str) -> String {
        self.call("GET", &self.at(&format!("/element/{el}/text")), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn text_of(&self, css: &str) -> Option<String> {
        self.find(css).map(|e| self.text(&e))
    }

    pub fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &self.at(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, el: &str) {
        self.call(
            "POST",
            &self.at(&format!("/element/{el}/click")),
            Some(json!({})),
        );
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, to: &Path) {
        use base64_shim::decode;
        let b64 = self.call("GET", &self.at("/screenshot"), None);
        let png = decode(b64.as_str().unwrap_or("")).expect("screenshot is base64");
        if let Some(p) = to.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        std::fs::write(to, png).expect("write screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = i + 2;
        let end = (start + n).min(rest.len());
        out.extend_from_slice(&rest[start..end]);
        rest = rest.get(end + 2..).unwrap_or(&[]);
    }
    out
}

/// Standard base64 decoding (the screenshot), without another dependency.
mod base64_shim {
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let val = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            })
        };
        let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
        for chunk in bytes.chunks(4) {
            let mut acc = 0u32;
            let mut n = 0;
            for &c in chunk {
                if c == b'=' {
                    break;
                }
                acc = (acc << 6) | val(c)?;
                n += 1;
            }
            acc <<= 6 * (4 - n);
            let b = acc.to_be_bytes();
            out.extend_from_slice(&b[1..n.max(1)]);
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes_padding() {
            assert_eq!(super::decode("aGk=").unwrap(), b"hi");
            assert_eq!(super::decode("aGV5").unwrap(), b"hey");
            assert_eq!(super::decode("aA==").unwrap(), b"h");
        }
    }
}
