//! List Blobs as our own signed REST call (`GET ?restype=container&comp=list&include=metadata`).
//!
//! object_store's listing parses every returned name into its `Path` type, so one blob named
//! `a/../b` (or with a control character) failed the whole listing, and it carries no metadata.
//! Here names come back exactly as the service wrote them, unvalidated (callers decide what
//! they accept), with their metadata, one page (at most `maxresults` blobs) in memory at a time.

use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http::Method;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::error::{Error, Failure};
use crate::metadata::Metadata;
use crate::store::{BlobInfo, BlobStore};

/// Azure's largest page (and its default).
pub const MAX_PAGE: u32 = 5000;

const OP: &str = "list";

/// One answer of List Blobs.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Page {
    pub blobs: Vec<BlobInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next_marker: Option<String>,
}

impl BlobStore {
    /// Streams every blob whose name starts with `prefix` page by page, `page_size` (1 to
    /// [`MAX_PAGE`]) blobs per request, following `NextMarker`.
    pub(crate) fn list_pages(
        &self,
        prefix: String,
        page_size: u32,
    ) -> BoxStream<'static, Result<BlobInfo, Error>> {
        let page_size = page_size.clamp(1, MAX_PAGE).to_string();
        let store = self.clone();
        // State: the marker of the next page, or `None` once the last page was read.
        stream::try_unfold(Some(String::new()), move |marker| {
            let store = store.clone();
            let prefix = prefix.clone();
            let page_size = page_size.clone();
            async move {
                let Some(marker) = marker else {
                    return Ok::<_, Error>(None);
                };
                let page = store
                    .retrying(|| store.list_page(&prefix, &marker, &page_size))
                    .await?;
                let next = page.next_marker.filter(|m| !m.is_empty());
                let done = next.is_none();
                let items = stream::iter(page.blobs.into_iter().map(Ok::<_, Error>));
                Ok(Some((items, if done { None } else { next })))
            }
        })
        .try_flatten()
        .boxed()
    }

    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        marker: &str,
        page_size: &str,
    ) -> Result<Page, Error> {
        let mut query: Vec<(&str, &str)> = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("include", "metadata"),
            ("maxresults", page_size),
        ];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if !marker.is_empty() {
            query.push(("marker", marker));
        }
        let mut url = self.inner.container_url.clone();
        url.set_query(Some(&encode_query(&query)));
        let answer = self
            .inner
            .signed_at(OP, Method::GET, url, prefix, Vec::new(), Bytes::new())
            .await?;
        parse_page(&answer.body).map_err(|message| {
            Error::Permanent(Failure {
                op: OP,
                name: prefix.to_string(),
                status: Some(answer.status.as_u16()),
                code: None,
                message: format!("unreadable List Blobs answer: {message}"),
            })
        })
    }
}

/// `k=v&...` with everything but unreserved characters percent-encoded (a space is `%20`, never
/// `+`, which a service may keep as a plus sign).
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for &b in s.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A `<Blob>` being read.
#[derive(Default)]
struct Partial {
    name: Option<String>,
    name_encoded: bool,
    size: Option<u64>,
    etag: Option<String>,
    last_modified: Option<SystemTime>,
    metadata: Vec<(String, String)>,
}

impl Partial {
    fn finish(self) -> Result<BlobInfo, String> {
        let raw = self.name.ok_or("a <Blob> without <Name>")?;
        let name = if self.name_encoded {
            percent_decode(&raw)?
        } else {
            raw
        };
        let size = self
            .size
            .ok_or_else(|| format!("blob {name:?} has no Content-Length"))?;
        let last_modified = self
            .last_modified
            .ok_or_else(|| format!("blob {name:?} has no Last-Modified"))?;
        // Undecodable values written by another tool: the blob is reported without metadata
        // (as `head` does) rather than failing the listing.
        let pairs = self.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let metadata = match Metadata::from_pairs(pairs) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(blob = ?name, error = %e, "undecodable blob metadata in listing");
                None
            }
        };
        Ok(BlobInfo {
            name,
            size,
            etag: self.etag,
            last_modified,
            metadata,
            raw_metadata: {
                let mut pairs = self.metadata;
                pairs.sort();
                pairs
            },
        })
    }
}

/// Parses one List Blobs answer. Text is taken as sent (entities and character references
/// resolved, no line-end normalisation) so names keep every character; a `<Name Encoded="true">`
/// (names with characters XML cannot carry) is percent-decoded.
pub(crate) fn parse_page(xml: &[u8]) -> Result<Page, String> {
    let mut reader = Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut page = Page::default();
    let mut blob: Option<Partial> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => {
                let name = element_name(&e)?;
                text.clear();
                match (path.last().map(String::as_str), name.as_str()) {
                    (Some("Blobs"), "Blob") => blob = Some(Partial::default()),
                    (Some("Blob"), "Name") => {
                        if let Some(b) = blob.as_mut() {
                            b.name_encoded = is_encoded(&e)?;
                        }
                    }
                    _ => {}
                }
                path.push(name);
            }
            Event::Empty(e) => {
                // `<Name/>` is an empty name; other empty elements carry nothing we keep.
                let name = element_name(&e)?;
                match (path.last().map(String::as_str), blob.as_mut()) {
                    (Some("Blob"), Some(b)) if name == "Name" => b.name = Some(String::new()),
                    (Some("Metadata"), Some(b)) => b.metadata.push((name, String::new())),
                    _ => {}
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(c);
                } else {
                    let entity = r.decode().map_err(|e| e.to_string())?;
                    let v = quick_xml::escape::resolve_predefined_entity(&entity)
                        .ok_or_else(|| format!("unknown entity &{entity};"))?;
                    text.push_str(v);
                }
            }
            Event::End(_) => {
                let name = path.pop().ok_or("unbalanced end tag")?;
                let parent = path.last().map(String::as_str);
                let value = std::mem::take(&mut text);
                match (parent, name.as_str()) {
                    (Some("EnumerationResults"), "NextMarker") => page.next_marker = Some(value),
                    (Some("Blobs"), "Blob") => {
                        if let Some(b) = blob.take() {
                            page.blobs.push(b.finish()?);
                        }
                    }
                    (Some("Blob"), "Name") => {
                        if let Some(b) = blob.as_mut() {
                            b.name = Some(value);
                        }
                    }
                    (Some("Metadata"), _) => {
                        if let Some(b) = blob.as_mut() {
                            b.metadata.push((name, value));
                        }
                    }
                    (Some("Properties"), field) => {
                        if let Some(b) = blob.as_mut() {
                            match field {
                                "Content-Length" => {
                                    b.size = Some(value.trim().parse().map_err(|_| {
                                        format!("Content-Length {value:?} is not a size")
                                    })?)
                                }
                                // Quoted as in a HEAD's `ETag` header, so both compare equal.
                                "Etag" if value.starts_with('"') => b.etag = Some(value),
                                "Etag" => b.etag = Some(format!("\"{value}\"")),
                                "Last-Modified" => {
                                    let t = chrono::DateTime::parse_from_rfc2822(value.trim())
                                        .map_err(|e| format!("Last-Modified {value:?}: {e}"))?;
                                    b.last_modified = Some(t.into());
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err("truncated answer".into());
    }
    Ok(page)
}

fn element_name(e: &BytesStart<'_>) -> Result<String, String> {
    std::str::from_utf8(e.local_name().as_ref())
        .map(str::to_string)
        .map_err(|_| "element name is not UTF-8".to_string())
}

fn is_encoded(e: &BytesStart<'_>) -> Result<bool, String> {
    let attr = e.try_get_attribute("Encoded").map_err(|e| e.to_string())?;
    Ok(match attr {
        Some(a) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .eq_ignore_ascii_case("true"),
        None => false,
    })
}

/// An `Encoded="true"` name: `%XX` decoded, as UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("encoded name {s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const PAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1/devstoreaccount1" ContainerName="c">
<Prefix>p/</Prefix><MaxResults>2</MaxResults>
<Blobs>
<Blob><Name>p/a &amp; b&lt;&#xA;&#13;.txt</Name><Properties>
<Last-Modified>Wed, 25 Nov 2026 20:00:01 GMT</Last-Modified><Etag>"0x1"</Etag>
<Content-Length>12</Content-Length></Properties>
<Metadata><owner>7</owner><lustre_type>dir</lustre_type><Other>x</Other></Metadata></Blob>
<Blob><Name Encoded="true">p%2F..%2F%EF%BF%BE</Name><Properties>
<Last-Modified>Wed, 25 Nov 2026 20:00:02 GMT</Last-Modified><Content-Length>0</Content-Length>
</Properties><Metadata><owner>not a number</owner></Metadata></Blob>
<Blob><Name>p/b</Name><Properties><Last-Modified>Wed, 25 Nov 2026 20:00:03 GMT</Last-Modified><Etag>0x2</Etag>
<Content-Length>3</Content-Length></Properties><Metadata/></Blob>
</Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;

    #[test]
    fn parses_names_exactly_with_properties_and_metadata() {
        let page = parse_page(PAGE.as_bytes()).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("2!abc"));
        assert_eq!(page.blobs.len(), 3);
        let a = &page.blobs[0];
        assert_eq!(a.name, "p/a & b<\n\r.txt");
        assert_eq!(a.size, 12);
        assert_eq!(a.etag.as_deref(), Some("\"0x1\""));
        assert_eq!(
            a.last_modified,
            UNIX_EPOCH + Duration::from_secs(1_795_636_801)
        );
        let m = a.metadata.as_ref().unwrap();
        assert_eq!(m.owner, 7);
        assert_eq!(m.kind, crate::FileKind::Dir);
        assert_eq!(m.extra.get("other").map(String::as_str), Some("x"));
        // Encoded names are percent-decoded; undecodable metadata leaves the blob listed without.
        assert_eq!(page.blobs[1].name, "p/../\u{fffe}");
        assert_eq!(page.blobs[1].metadata, None);
        assert_eq!(page.blobs[1].etag, None);
        // No metadata at all decodes like a head of such a blob: a plain file.
        assert_eq!(page.blobs[2].metadata, Some(Metadata::default()));
        assert_eq!(page.blobs[2].etag.as_deref(), Some("\"0x2\""));
    }

    #[test]
    fn last_page_has_an_empty_marker() {
        let page = parse_page(
            b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>".as_slice(),
        )
        .unwrap();
        assert_eq!(page, Page::default());
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            "<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs></EnumerationResults>",
            "<EnumerationResults><Blobs><Blob><Name>x</Name><Properties><Content-Length>z</Content-Length>",
            "<EnumerationResults><Blobs></EnumerationResults>",
            "<EnumerationResults><Blobs><Blob><Name Encoded=\"true\">%zz</Name></Blob></Blobs></EnumerationResults>",
        ] {
            assert!(parse_page(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded_without_plus() {
        assert_eq!(
            encode_query(&[("prefix", "pre fix%/a+b"), ("comp", "list")]),
            "prefix=pre%20fix%25%2Fa%2Bb&comp=list"
        );
    }
}
