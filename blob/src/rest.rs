//! Our own signed REST calls for what object_store does not offer: a conditional Put Block List
//! (`If-None-Match: *` / `If-Match: ETAG` on the commit of a multipart upload) and Set Blob
//! Metadata. Requests are authorised by object_store's own `AzureAuthorizer` with the store's
//! credential provider, so every credential type works (key, SAS, tokens).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use object_store::azure::AzureAuthorizer;
use object_store::client::{HttpClient, HttpRequestBody};

use crate::error::{Error, Failure};
use crate::name::BlobName;
use crate::store::Inner;

/// An answer from the service.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn etag(&self) -> Option<String> {
        self.headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Inner {
    /// The URL of a blob: container URL plus the name's segments, each percent-encoded once.
    pub(crate) fn blob_url(&self, name: &BlobName) -> url::Url {
        let mut u = self.container_url.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty().extend(name.segments());
        }
        u
    }

    /// Sends one signed request; transport failures come back classified (transient).
    pub(crate) async fn signed(
        &self,
        op: &'static str,
        method: Method,
        name: &BlobName,
        query: &[(&str, &str)],
        headers: Vec<(HeaderName, String)>,
        body: Bytes,
    ) -> Result<Answer, Error> {
        let mut url = self.blob_url(name);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.signed_at(op, method, url, name.as_str(), headers, body)
            .await
    }

    /// Sends one signed request to `url` (query included); `label` names the blob, or the
    /// prefix for a listing, in errors. Transport failures come back classified (transient).
    pub(crate) async fn signed_at(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        label: &str,
        headers: Vec<(HeaderName, String)>,
        body: Bytes,
    ) -> Result<Answer, Error> {
        let name = label;
        let mut req = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .body(HttpRequestBody::from(body.clone()))
            .map_err(|e| self.permanent(op, name, format!("building request: {e}")))?;
        let h = req.headers_mut();
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        for (k, v) in headers {
            let v = HeaderValue::from_str(&v).map_err(|_| {
                self.permanent(
                    op,
                    name,
                    format!("header {k} has a value that cannot be sent"),
                )
            })?;
            h.insert(k, v);
        }
        let cred = self
            .azure
            .credentials()
            .get_credential()
            .await
            .map_err(|e| self.classifier.store_error(op, name, e))?;
        AzureAuthorizer::new(&cred, &self.resolved.account)
            .try_authorize(&mut req)
            .map_err(|e| self.classifier.store_error(op, name, e))?;
        let resp = self.http.execute(req).await.map_err(|e| {
            Error::Transient(Failure {
                op,
                name: name.to_string(),
                status: None,
                code: None,
                message: self.classifier.scrub(&format!("{:?}: {e}", e.kind())),
            })
        })?;
        let (parts, body) = resp.into_parts();
        let body = body.bytes().await.map_err(|e| {
            Error::Transient(Failure {
                op,
                name: name.to_string(),
                status: Some(parts.status.as_u16()),
                code: None,
                message: self.classifier.scrub(&e.to_string()),
            })
        })?;
        let answer = Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        if answer.status.is_success() {
            Ok(answer)
        } else {
            let text = String::from_utf8_lossy(&answer.body);
            let mut err = self
                .classifier
                .http_error(op, name, answer.status.as_u16(), &text);
            if let Error::Conflict(f)
            | Error::NotFound(f)
            | Error::Permanent(f)
            | Error::Transient(f)
            | Error::PermissionDenied(f) = &mut err
            {
                if f.code.is_none() {
                    f.code = answer
                        .headers
                        .get("x-ms-error-code")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                }
            }
            Err(err)
        }
    }

    pub(crate) fn permanent(&self, op: &'static str, name: &str, message: String) -> Error {
        Error::Permanent(Failure {
            op,
            name: name.to_string(),
            status: None,
            code: None,
            message,
        })
    }
}

/// Builds the HTTP client our own calls use, with the store's client options.
pub(crate) fn http_client(options: &object_store::ClientOptions) -> Result<HttpClient, Error> {
    use object_store::client::{HttpConnector, ReqwestConnector};
    ReqwestConnector::default()
        .connect(options)
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// `x-ms-meta-*` headers for metadata pairs.
pub(crate) fn metadata_headers(pairs: &[(String, String)]) -> Vec<(HeaderName, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes())
                .ok()
                .map(|h| (h, v.clone()))
        })
        .collect()
}

/// The Put Block List body for block ids (raw ids; base64-encoded here as Azure requires).
pub(crate) fn block_list_xml(ids: &[String]) -> String {
    use base64::Engine;
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        s.push_str("<Latest>");
        s.push_str(&base64::engine::general_purpose::STANDARD.encode(id));
        s.push_str("</Latest>");
    }
    s.push_str("</BlockList>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_list_body() {
        assert_eq!(
            block_list_xml(&["ab".into(), "cd".into()]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>YWI=</Latest><Latest>Y2Q=</Latest></BlockList>"
        );
    }

    #[test]
    fn meta_headers() {
        let h = metadata_headers(&[("owner".into(), "1".into())]);
        assert_eq!(h[0].0.as_str(), "x-ms-meta-owner");
        assert_eq!(h[0].1, "1");
    }
}
