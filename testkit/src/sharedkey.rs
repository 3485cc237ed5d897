//! Azure shared-key request signing, just enough for the harness's own management calls
//! (object_store cannot create containers).

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Computes the `Authorization: SharedKey ACCOUNT:SIG` header value.
///
/// `headers` are the request's standard headers by lower-case name (`content-length`,
/// `content-type`, `if-match`, ...) plus every `x-ms-*` header; `path` is the URL path as sent
/// (path-style emulator URLs include the account), `query` its decoded `(name, value)` pairs.
pub fn sign_shared_key(
    account: &str,
    key_b64: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<String, String> {
    let key = STANDARD
        .decode(key_b64)
        .map_err(|e| format!("account key is not base64: {e}"))?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .unwrap_or("")
    };
    let content_length = match get("content-length") {
        "0" => "",
        other => other,
    };
    let mut s = format!(
        "{method}\n{}\n{}\n{content_length}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        get("content-encoding"),
        get("content-language"),
        get("content-md5"),
        get("content-type"),
        get("date"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    ms.sort();
    for (k, v) in ms {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{account}{path}"));
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    q.sort();
    for (k, v) in q {
        s.push_str(&format!("\n{k}:{v}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(s.as_bytes());
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {account}:{sig}"))
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
pub fn percent_encode(b: &[u8], keep_slash: bool) -> String {
    let mut s = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) || (keep_slash && c == b'/') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// Sends one request signed with the emulator's well-known account key to the Azurite blob
/// service on `127.0.0.1:port` (`path` below the account, already percent-encoded; `query`
/// decoded) and returns the raw answer, head and body. `Connection: close`: the answer ends at EOF.
pub fn signed_exchange(
    port: u16,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: &[u8],
    timeout: std::time::Duration,
) -> std::io::Result<Vec<u8>> {
    use crate::azurite::{AZURITE_ACCOUNT, AZURITE_KEY};
    use std::io::{Read, Write};
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let full = format!("/{AZURITE_ACCOUNT}{path}");
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-length", &len),
        ("x-ms-date", &date),
        ("x-ms-version", "2021-08-06"),
    ];
    headers.extend_from_slice(extra);
    let auth = sign_shared_key(AZURITE_ACCOUNT, AZURITE_KEY, method, &full, query, &headers)
        .map_err(std::io::Error::other)?;
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v.as_bytes(), false)))
        .collect();
    let target = if qs.is_empty() {
        full
    } else {
        format!("{full}?{}", qs.join("&"))
    };
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: {auth}\r\n"
    );
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_deterministic_and_key_dependent() {
        let h = [
            ("x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("x-ms-version", "2021-08-06"),
        ];
        let a = sign_shared_key(
            "acct",
            "a2V5MQ==",
            "PUT",
            "/c",
            &[("restype", "container")],
            &h,
        )
        .unwrap();
        let b = sign_shared_key(
            "acct",
            "a2V5MQ==",
            "PUT",
            "/c",
            &[("restype", "container")],
            &h,
        )
        .unwrap();
        let c = sign_shared_key(
            "acct",
            "a2V5Mg==",
            "PUT",
            "/c",
            &[("restype", "container")],
            &h,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("SharedKey acct:"));
        assert!(sign_shared_key("acct", "not base64!", "PUT", "/c", &[], &h).is_err());
    }
}
