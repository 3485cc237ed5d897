//! The few HTTP pieces the harness needs to read Azurite's answers itself (a raw client sees blob
//! names and headers exactly as sent): one parsed answer and chunked-body decoding.

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked; empty for HEAD).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole HTTP/1.1 answer (`head`: the answer to a HEAD, which has no body).
pub fn parse_reply(raw: &[u8], head: bool) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no HTTP head"))?;
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = if head {
        Vec::new()
    } else {
        raw[end + 4..].to_vec()
    };
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked && !head {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The payload of a `Transfer-Encoding: chunked` body (a truncated chunk ends it).
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..nl])
                .trim()
                .split(';')
                .next()
                .unwrap_or(""),
            16,
        )
        .unwrap_or(0);
        if size == 0 || rest.len() < nl + 1 + size {
            break;
        }
        out.extend_from_slice(&rest[nl + 1..nl + 1 + size]);
        rest = &rest[(nl + 1 + size + 2).min(rest.len())..];
    }
    out
}
