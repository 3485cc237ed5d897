//! An Azurite process the suites can crash and restart on the same port, and a raw REST client
//! (shared-key signed, one connection per request) that sees blob names byte for byte, including
//! names the product must refuse.

pub use testkit::http::Reply;
use testkit::{percent_encode, Azurite};

/// A listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// One request as Azurite's debug log records it on arrival.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    /// The path below the host, percent-encoded as sent (`/devstoreaccount1/container/blob`).
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// The request headers, names lower-case.
    pub headers: serde_json::Map<String, serde_json::Value>,
}

impl LoggedRequest {
    /// A `BlobStorageContextMiddleware: RequestMethod=M RequestURL=U RequestHeaders:{..} ...`
    /// line of Azurite's debug log; None for every other line.
    fn parse(line: &str) -> Option<LoggedRequest> {
        let method = between(line, "RequestMethod=", " ")?.to_string();
        let url = between(line, "RequestURL=", " ")?;
        let after_host = url.split_once("://").map_or(url, |(_, r)| r);
        let path_query = after_host.find('/').map_or("/", |i| &after_host[i..]);
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let headers_start = line.find("RequestHeaders:")? + "RequestHeaders:".len();
        let mut stream = serde_json::Deserializer::from_str(&line[headers_start..])
            .into_iter::<serde_json::Map<String, serde_json::Value>>();
        let headers = stream.next()?.ok()?;
        Some(LoggedRequest {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
        })
    }

    /// The value of query parameter `name` (raw), if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }

    /// A request that commits a blob's content from the client's bytes: Put Blob, or Put Block
    /// List (not Put Block, not a server-side copy, not a metadata or property change).
    pub fn commits_uploaded_content(&self) -> bool {
        self.method == "PUT"
            && !self.headers.contains_key("x-ms-copy-source")
            && match self.query_param("comp") {
                None => self.headers.contains_key("x-ms-blob-type"),
                Some(c) => c == "blocklist",
            }
    }
}

/// Azurite ([`testkit::Azurite`], reached through `Deref`: its port, URLs, containers, data
/// directory) with a crash-and-restart on the same port, its request log, and a raw REST client.
pub struct Store {
    az: Azurite,
}

impl std::ops::Deref for Store {
    type Target = Azurite;
    fn deref(&self) -> &Azurite {
        &self.az
    }
}

impl Store {
    /// Starts Azurite on a free port: in memory, or with its data in a temp dir (`on_disk`).
    pub fn start(on_disk: bool) -> Store {
        Store::start_with(on_disk, false)
    }

    /// [`Store::start`]; with `log_requests`, Azurite also logs every request it receives, read
    /// back with [`Store::requests`] (the store's own count of what clients asked of it).
    pub fn start_with(on_disk: bool, log_requests: bool) -> Store {
        Store {
            az: Azurite::start_with(on_disk, log_requests),
        }
    }

    /// Every request Azurite received since it was first started (all its runs), oldest first;
    /// empty unless started with `log_requests`.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.az
            .request_logs()
            .iter()
            .flat_map(|log| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.lines()
                    .filter_map(LoggedRequest::parse)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `kill -9` (in memory: everything is lost; on disk: what Azurite had persisted stays).
    pub fn kill9(&self) {
        self.az.kill();
    }

    /// A crash and a start again on the same port, with the containers of `create_container`
    /// made again (unlike [`Azurite::restart`], which stops it gracefully first).
    pub fn restart(&self) {
        self.az.kill();
        self.az.resume();
    }

    /// Deletes a container and everything in it (Azure answers 202; a missing one is 404).
    pub fn delete_container(&self, name: &str) {
        let r = self
            .request(
                "DELETE",
                &format!("/{name}"),
                &[("restype", "container")],
                &[],
                b"",
            )
            .expect("delete container");
        assert!(
            r.status == 202 || r.status == 404,
            "delete container {name}: {}",
            r.status
        );
    }

    /// Puts a block blob under a raw name (any bytes: percent-encoded on the wire).
    pub fn put_raw(&self, container: &str, name: &[u8], body: &[u8]) -> Reply {
        self.az
            .request(
                "PUT",
                &format!("/{container}/{}", encode(name, true)),
                &[],
                &[("x-ms-blob-type", "BlockBlob")],
                body,
            )
            .expect("put blob")
    }

    /// The blob's bytes, `None` when it does not exist.
    pub fn get(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        let r = self
            .request(
                "GET",
                &format!("/{container}/{}", encode(name.as_bytes(), true)),
                &[],
                &[],
                b"",
            )
            .expect("get blob");
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("get {container}/{name}: HTTP {s}"),
        }
    }

    /// The blob's properties and metadata headers (`x-ms-meta-*`), `None` when absent.
    pub fn head(&self, container: &str, name: &str) -> Option<Reply> {
        let r = self
            .request(
                "HEAD",
                &format!("/{container}/{}", encode(name.as_bytes(), true)),
                &[],
                &[],
                b"",
            )
            .expect("head blob");
        match r.status {
            200 => Some(r),
            404 => None,
            s => panic!("head {container}/{name}: HTTP {s}"),
        }
    }

    /// Every committed blob under `prefix` (names XML-unescaped).
    pub fn list(&self, container: &str, prefix: &str) -> Vec<Listed> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let mut q = vec![("comp", "list"), ("restype", "container")];
            if !prefix.is_empty() {
                q.push(("prefix", prefix));
            }
            if !marker.is_empty() {
                q.push(("marker", marker.as_str()));
            }
            let r = self
                .request("GET", &format!("/{container}"), &q, &[], b"")
                .expect("list blobs");
            assert_eq!(r.status, 200, "list {container}: HTTP {}", r.status);
            let text = String::from_utf8_lossy(&r.body).into_owned();
            for blob in text.split("<Blob>").skip(1) {
                let name = unescape(between(blob, "<Name>", "</Name>").unwrap_or(""));
                let size = between(blob, "<Content-Length>", "</Content-Length>")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.push(Listed { name, size });
            }
            marker = between(&text, "<NextMarker>", "</NextMarker>")
                .unwrap_or("")
                .to_string();
            if marker.is_empty() {
                return out;
            }
        }
    }

    /// Every JSON line of every blob in a (logging) container.
    pub fn json_lines(&self, container: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for b in self.list(container, "") {
            if let Some(body) = self.get(container, &b.name) {
                for line in String::from_utf8_lossy(&body).lines() {
                    if let Ok(v) = serde_json::from_str(line) {
                        out.push(v);
                    }
                }
            }
        }
        out
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

fn unescape(s: &str) -> String {
    let mut out = s
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'");
    // Numeric references (Azurite escapes control characters this way).
    while let Some(i) = out.find("&#") {
        let Some(end) = out[i..].find(';') else { break };
        let num = &out[i + 2..i + end];
        let code = if let Some(h) = num.strip_prefix('x') {
            u32::from_str_radix(h, 16).ok()
        } else {
            num.parse().ok()
        };
        match code.and_then(char::from_u32) {
            Some(c) => out.replace_range(i..i + end + 1, &c.to_string()),
            None => break,
        }
    }
    out.replace("&amp;", "&")
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
pub fn encode(b: &[u8], keep_slash: bool) -> String {
    percent_encode(b, keep_slash)
}
