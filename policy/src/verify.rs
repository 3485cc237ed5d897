//! `lustre-blob verify`: the full audit behind "before you delete, check". The tree under a path
//! and the container under the same blob prefix are read side by side, both in blob-name order,
//! so memory stays bounded by the widest directory and one listing page, whatever their size:
//!
//! * a file with no blob is `missing` (not exported yet), or `lost` when the file system says it
//!   is archived and clean and carries an export record: the store lost a write it acknowledged,
//!   or someone deleted the blob;
//! * a blob whose file changed since (HSM dirty, or not archived) is `stale`;
//! * a blob that disagrees with the file's export record (ETag, size) is `mismatch`;
//! * a blob of another kind than its entry (directory, symlink, file) is `kind`;
//! * a blob under the prefix with no entry is `orphan` (deleted with `on_delete = keep`, or
//!   written by another tool): reported, not an error.
//!
//! Names a blob cannot carry are `uncarriable` (they are failures of the export already).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::model::FileKind;
use serde::Serialize;

/// What one finding says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// In scope, no blob.
    Missing,
    /// Archived and clean with an export record, but no blob.
    Lost,
    /// Changed since its export.
    Stale,
    /// The blob differs from what was exported.
    Mismatch,
    /// The entry and its blob are of different kinds.
    Kind,
    /// A blob without a file.
    Orphan,
    /// No blob can carry the name.
    Uncarriable,
}

impl FindingKind {
    /// Orphans are facts, not errors (deletes are not propagated by default).
    pub fn is_error(self) -> bool {
        self != FindingKind::Orphan
    }

    /// Whether `--requeue` can fix it by exporting the file again. Not a mismatch: the blob
    /// changed on the store side, a conflict the policy decides (`conflict = "overwrite"`).
    pub fn requeueable(self) -> bool {
        matches!(
            self,
            FindingKind::Missing | FindingKind::Lost | FindingKind::Stale
        )
    }
}

/// One difference between the tree and the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// Path relative to the mount (lossy for non-UTF-8 names), or the blob name of an orphan.
    pub path: String,
    /// The difference in words.
    pub detail: String,
}

/// One entry of the tree, with what the comparison needs.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the mount.
    pub rel: Vec<u8>,
    /// Its blob name, or why no blob can carry it.
    pub name: Result<String, String>,
    /// What kind of entry.
    pub kind: FileKind,
    /// Size (for a symlink: the target's length).
    pub size: u64,
    /// Regular files: archived, and not dirty.
    pub archived_clean: bool,
    /// Regular files: archived (clean or dirty).
    pub archived: bool,
    /// Regular files: the export record (ETag, size) when there is one.
    pub record: Option<(String, u64)>,
    /// Whether the export covers it (prefix and exclusions).
    pub in_scope: bool,
}

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Entries of the tree looked at.
    pub entries_checked: u64,
    /// Blobs looked at.
    pub blobs_checked: u64,
    /// [`FindingKind::Missing`] findings.
    pub missing: u64,
    /// [`FindingKind::Lost`] findings.
    pub lost: u64,
    /// [`FindingKind::Stale`] findings.
    pub stale: u64,
    /// [`FindingKind::Mismatch`] findings.
    pub mismatch: u64,
    /// [`FindingKind::Kind`] findings.
    pub kind: u64,
    /// [`FindingKind::Orphan`] findings.
    pub orphan: u64,
    /// [`FindingKind::Uncarriable`] findings.
    pub uncarriable: u64,
}

impl Summary {
    fn count(&mut self, k: FindingKind) {
        let c = match k {
            FindingKind::Missing => &mut self.missing,
            FindingKind::Lost => &mut self.lost,
            FindingKind::Stale => &mut self.stale,
            FindingKind::Mismatch => &mut self.mismatch,
            FindingKind::Kind => &mut self.kind,
            FindingKind::Orphan => &mut self.orphan,
            FindingKind::Uncarriable => &mut self.uncarriable,
        };
        *c += 1;
    }

    /// Findings that are errors (everything but orphans).
    pub fn errors(&self) -> u64 {
        self.missing + self.lost + self.stale + self.mismatch + self.kind + self.uncarriable
    }
}

/// A blob as the comparison sees it.
#[derive(Debug, Clone)]
pub struct BlobSeen {
    /// Blob name.
    pub name: String,
    /// Size.
    pub size: u64,
    /// ETag.
    pub etag: Option<String>,
    /// What the blob stands for.
    pub kind: FileKind,
    /// Written by lustre-blob (carries a `lustre_fid`).
    pub ours: bool,
}

/// Compares `entries` and `blobs`, both in blob-name byte order, calling `found` for every
/// finding. Entries whose name no blob can carry may come anywhere. Returns the counts.
pub fn compare<E, B, F>(entries: E, blobs: B, mut found: F) -> Result<Summary, String>
where
    E: IntoIterator<Item = Result<Entry, String>>,
    B: IntoIterator<Item = Result<BlobSeen, String>>,
    F: FnMut(Finding),
{
    let mut sum = Summary::default();
    let mut report = |sum: &mut Summary, kind: FindingKind, path: String, detail: String| {
        sum.count(kind);
        found(Finding { kind, path, detail });
    };
    let mut blobs = blobs.into_iter().peekable();
    for e in entries {
        let e = e?;
        sum.entries_checked += 1;
        let path = String::from_utf8_lossy(&e.rel).into_owned();
        let name = match &e.name {
            Ok(n) => n.clone(),
            Err(why) => {
                if e.in_scope && e.kind != FileKind::Other {
                    report(&mut sum, FindingKind::Uncarriable, path, why.clone());
                }
                continue;
            }
        };
        // Blobs before this name have no entry.
        while let Some(b) = blobs.peek() {
            let b = match b {
                Ok(b) => b,
                Err(_) => return Err(blobs.next().and_then(Result::err).unwrap_or_default()),
            };
            if b.name.as_bytes() >= name.as_bytes() {
                break;
            }
            if let Some(Ok(b)) = blobs.next() {
                sum.blobs_checked += 1;
                let (k, p, d) = orphan(b);
                report(&mut sum, k, p, d);
            }
        }
        let blob = match blobs.peek() {
            Some(Ok(b)) if b.name == name => match blobs.next() {
                Some(Ok(b)) => {
                    sum.blobs_checked += 1;
                    Some(b)
                }
                _ => None,
            },
            _ => None,
        };
        if !e.in_scope || e.kind == FileKind::Other {
            continue;
        }
        if let Some((kind, detail)) = difference(&e, blob.as_ref()) {
            report(&mut sum, kind, path, detail);
        }
    }
    for b in blobs {
        let b = b?;
        sum.blobs_checked += 1;
        let (k, p, d) = orphan(b);
        report(&mut sum, k, p, d);
    }
    Ok(sum)
}

/// What is wrong between an in-scope entry and its blob (`None`: nothing).
fn difference(e: &Entry, blob: Option<&BlobSeen>) -> Option<(FindingKind, String)> {
    Some(match (blob, e.kind) {
        (None, FileKind::Regular) if e.archived_clean && e.record.is_some() => (
            FindingKind::Lost,
            "archived and clean with an export record, but the container has no blob: the \
             store lost it or someone deleted it"
                .to_string(),
        ),
        (None, _) => (
            FindingKind::Missing,
            "no blob: not exported yet (pending, failed, or changed while auto-export was off)"
                .to_string(),
        ),
        (Some(b), k) if b.kind != k => (
            FindingKind::Kind,
            format!("the entry is a {k} but its blob a {}", b.kind),
        ),
        (Some(b), FileKind::Regular) if !e.archived_clean => (
            FindingKind::Stale,
            format!(
                "changed since its export (HSM state: {}); blob has {} bytes, file {}",
                if e.archived { "dirty" } else { "not archived" },
                b.size,
                e.size
            ),
        ),
        (Some(b), FileKind::Regular) => match &e.record {
            Some((etag, _)) if b.etag.as_deref() != Some(etag.as_str()) => (
                FindingKind::Mismatch,
                format!(
                    "the blob changed since its export: ETag {} but the export record says {etag} \
                     (a conflict: export it again with conflict = \"overwrite\", or remove the blob)",
                    b.etag.as_deref().unwrap_or("?")
                ),
            ),
            _ if b.size != e.size => (
                FindingKind::Mismatch,
                format!("blob has {} bytes, file {}", b.size, e.size),
            ),
            _ => return None,
        },
        (Some(b), FileKind::Symlink) if b.size != e.size => (
            FindingKind::Mismatch,
            format!(
                "symlink blob holds {} bytes, the link target has {}",
                b.size, e.size
            ),
        ),
        (Some(_), _) => return None,
    })
}

fn orphan(b: BlobSeen) -> (FindingKind, String, String) {
    let why = if b.ours {
        "its file is gone (deleted or renamed; deletes are kept with on_delete = keep)"
    } else {
        "no file has this name and lustre-blob did not write it (another tool?)"
    };
    (FindingKind::Orphan, b.name, why.to_string())
}

/// One pending item of the ordered walk: the key is the full blob-order key of what it yields.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    key: Vec<u8>,
    /// `true`: list this directory (its children sort after `key` = `dir/`).
    expand: bool,
    rel: Vec<u8>,
}

impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.cmp(&o.key).then(self.expand.cmp(&o.expand))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The entries under `root` (a directory relative to `mount`, its own entry not included), in
/// byte order of their full relative path: the order of their blob names. A directory `d` yields
/// itself at `d`, its children at `d/...`, and a sibling `d-x` between the two, as a listing
/// does. Holds the pending siblings of the directories on the way down, never the whole tree.
pub struct OrderedWalk {
    mount: PathBuf,
    heap: BinaryHeap<Reverse<Pending>>,
}

impl OrderedWalk {
    /// A walk of the tree under `root` (relative to `mount`), in blob name order.
    pub fn new(mount: &Path, root: &[u8]) -> OrderedWalk {
        let mut heap = BinaryHeap::new();
        let mut key = root.to_vec();
        if !key.is_empty() {
            key.push(b'/');
        }
        heap.push(Reverse(Pending {
            key,
            expand: true,
            rel: root.to_vec(),
        }));
        OrderedWalk {
            mount: mount.to_path_buf(),
            heap,
        }
    }

    fn abs(&self, rel: &[u8]) -> PathBuf {
        self.mount.join(std::ffi::OsStr::from_bytes(rel))
    }
}

impl Iterator for OrderedWalk {
    /// (relative path, its metadata, without following a symlink)
    type Item = Result<(Vec<u8>, std::fs::Metadata), String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Reverse(p) = self.heap.pop()?;
            if !p.expand {
                let md = std::fs::symlink_metadata(self.abs(&p.rel));
                match md {
                    Ok(md) => {
                        if md.is_dir() {
                            let mut key = p.rel.clone();
                            key.push(b'/');
                            self.heap.push(Reverse(Pending {
                                key,
                                expand: true,
                                rel: p.rel.clone(),
                            }));
                        }
                        return Some(Ok((p.rel, md)));
                    }
                    // Deleted while we walked: nothing to compare.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Some(Err(format!("{}: {e}", self.abs(&p.rel).display()))),
                }
            }
            let dir = self.abs(&p.rel);
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Some(Err(format!("{}: {e}", dir.display()))),
            };
            for ent in rd {
                let ent = match ent {
                    Ok(e) => e,
                    Err(e) => return Some(Err(format!("{}: {e}", dir.display()))),
                };
                let name = ent.file_name();
                // The simulator's and Lustre's own bookkeeping at the root, and `check`'s probe,
                // are not user data.
                if p.rel.is_empty()
                    && (name.as_bytes() == b".lustre"
                        || name.as_bytes() == crate::scope::PROBE_DIR.as_bytes())
                {
                    continue;
                }
                let mut rel = p.rel.clone();
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name.as_bytes());
                self.heap.push(Reverse(Pending {
                    key: rel.clone(),
                    expand: false,
                    rel,
                }));
            }
        }
    }
}

/// Options of one `verify` run.
pub struct VerifyOptions {
    /// Directory to audit (absolute, or relative to the working directory); `None`: the mount.
    pub path: Option<PathBuf>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Hand what an export would fix to the daemon's next iteration.
    pub requeue: bool,
}

/// What a run found, and what `--requeue` handed on.
pub struct Outcome {
    /// The counts.
    pub summary: Summary,
    /// Paths (relative to the mount) to export again.
    pub requeue: Vec<PathBuf>,
}

/// Audits the tree against the container: prints every finding (a line each, or JSON lines)
/// and returns the counts. Files found archived and clean whose blob is lost or changed are
/// marked dirty (`llapi_hsm_state_set`) with `--requeue`, so the coordinator archives them again;
/// the caller asks the daemon to requeue `Outcome::requeue`.
pub fn run(
    policy: &lustre_blob_config::Policy,
    opts: &VerifyOptions,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Outcome, String> {
    let mount = lustre::Mount::open(&policy.lustre.mount)
        .map_err(|e| format!("lustre.mount {}: {e}", policy.lustre.mount.display()))?;
    let root_dir = mount.root().to_path_buf();
    let rel_root = audited_dir(&root_dir, opts.path.as_deref())?;
    let scope = crate::scope::Scope::new(&policy.autoexport.path, &policy.autoexport.exclude)?;
    let store = blob::BlobStore::open(&crate::daemon::target_spec(policy))
        .map_err(|e| format!("blob.url: {e}"))?;
    let list_prefix = if rel_root.is_empty() {
        store.prefix().to_string()
    } else {
        store
            .name_for(&rel_root)
            .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&rel_root)))?
            .as_str()
            .to_string()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut listing = store.list(&list_prefix).map_err(|e| e.to_string())?;
    let blobs = std::iter::from_fn(|| {
        use futures::StreamExt;
        let next = rt.block_on(listing.next())?;
        Some(
            next.map_err(|e| format!("listing the container: {e}"))
                .map(blob_seen),
        )
    });
    let mut walked = 0u64;
    let walk = OrderedWalk::new(&root_dir, &rel_root).map(|r| {
        let (rel, md) = r?;
        walked += 1;
        progress(walked);
        tree_entry(&mount, &store, &scope, rel, &md)
    });
    let mut report = Report {
        out,
        json: opts.json,
        requeue: opts.requeue,
        to_requeue: Vec::new(),
        write_err: None,
    };
    let summary = compare(walk, blobs, &mut |f| report.finding(f))?;
    if let Some(e) = report.write_err {
        return Err(format!("writing the report: {e}"));
    }
    let requeue = prepare_requeue(&mount, report.to_requeue)?;
    Ok(Outcome { summary, requeue })
}

/// The directory to audit, relative to the mount (`None`: the mount itself); it must be a
/// directory under the mount.
fn audited_dir(root_dir: &Path, path: Option<&Path>) -> Result<Vec<u8>, String> {
    let rel_root = match path {
        None => Vec::new(),
        Some(p) => crate::real::rel_to_mount(root_dir, p).ok_or_else(|| {
            format!(
                "{}: not under the mount {}",
                p.display(),
                root_dir.display()
            )
        })?,
    };
    if !std::fs::metadata(root_dir.join(std::ffi::OsStr::from_bytes(&rel_root)))
        .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&rel_root)))?
        .is_dir()
    {
        return Err(format!(
            "{}: not a directory (verify walks a tree)",
            String::from_utf8_lossy(&rel_root)
        ));
    }
    Ok(rel_root)
}

/// A listed blob as the comparison sees it.
fn blob_seen(b: blob::BlobInfo) -> BlobSeen {
    let kind = match b.metadata.as_ref().map(|m| m.kind) {
        Some(blob::FileKind::Dir) => FileKind::Directory,
        Some(blob::FileKind::Symlink) => FileKind::Symlink,
        _ => FileKind::Regular,
    };
    BlobSeen {
        ours: b.metadata.as_ref().is_some_and(|m| m.fid.is_some()),
        name: b.name,
        size: b.size,
        etag: b.etag,
        kind,
    }
}

/// One entry of the walked tree, with the HSM state and export record of an in-scope file.
fn tree_entry(
    mount: &lustre::Mount,
    store: &blob::BlobStore,
    scope: &crate::scope::Scope,
    rel: Vec<u8>,
    md: &std::fs::Metadata,
) -> Result<Entry, String> {
    let kind = FileKind::from(md.file_type());
    let in_scope = scope.covers(&rel);
    let mut e = Entry {
        name: store
            .name_for(&rel)
            .map(|n| n.as_str().to_string())
            .map_err(|e| e.to_string()),
        rel,
        kind,
        size: md.len(),
        archived_clean: false,
        archived: false,
        record: None,
        in_scope,
    };
    if kind == FileKind::Regular && in_scope {
        let abs = mount.root().join(std::ffi::OsStr::from_bytes(&e.rel));
        let hsm = mount
            .hsm_state(&abs)
            .map_err(|err| format!("{}: {err}", abs.display()))?;
        e.archived = hsm.is_archived();
        e.archived_clean = hsm.is_clean_archive();
        e.record = blob::ExportRecord::read_at(&abs)
            .ok()
            .flatten()
            .map(|r| (r.etag, r.size));
    }
    Ok(e)
}

/// Where the findings go: one line each (text or JSON), and those `--requeue` can fix.
struct Report<'a> {
    out: &'a mut dyn std::io::Write,
    json: bool,
    requeue: bool,
    to_requeue: Vec<(FindingKind, PathBuf)>,
    /// The first failed write (the rest are not tried).
    write_err: Option<std::io::Error>,
}

impl Report<'_> {
    fn finding(&mut self, f: Finding) {
        if self.write_err.is_some() {
            return;
        }
        let r = if self.json {
            serde_json::to_string(&f)
                .map_err(std::io::Error::other)
                .and_then(|l| writeln!(self.out, "{l}"))
        } else {
            let kind = serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            writeln!(
                self.out,
                "{kind:<12} {}: {}",
                f.path.escape_debug(),
                f.detail
            )
        };
        if let Err(e) = r {
            self.write_err = Some(e);
        }
        if self.requeue && f.kind.requeueable() {
            self.to_requeue.push((f.kind, PathBuf::from(&f.path)));
        }
    }
}

/// Readies the files `--requeue` hands on. A lost blob's export record is voided (or the
/// copytool takes the loss for a deletion behind its back: a conflict) and the file marked
/// dirty (archived and clean, the coordinator would skip a new archive request).
fn prepare_requeue(
    mount: &lustre::Mount,
    found: Vec<(FindingKind, PathBuf)>,
) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for (kind, rel) in found {
        let abs = mount.root().join(&rel);
        if kind == FindingKind::Lost {
            blob::ExportRecord::clear_at(&abs)
                .map_err(|e| format!("{}: removing its export record: {e}", abs.display()))?;
            mount
                .hsm_state_set(&abs, u64::from(lustre::lustre_sys::HS_DIRTY), 0, 0)
                .map_err(|e| format!("{}: marking it dirty: {e}", abs.display()))?;
        }
        paths.push(rel);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, kind: FileKind, size: u64) -> Result<Entry, String> {
        Ok(Entry {
            rel: rel.as_bytes().to_vec(),
            name: Ok(rel.to_string()),
            kind,
            size,
            archived_clean: true,
            archived: true,
            record: Some((format!("e-{rel}"), size)),
            in_scope: true,
        })
    }

    fn blob(name: &str, kind: FileKind, size: u64) -> Result<BlobSeen, String> {
        Ok(BlobSeen {
            name: name.to_string(),
            size,
            etag: Some(format!("e-{name}")),
            kind,
            ours: true,
        })
    }

    fn run(e: Vec<Result<Entry, String>>, b: Vec<Result<BlobSeen, String>>) -> Vec<Finding> {
        let mut out = Vec::new();
        compare(e, b, |f| out.push(f)).unwrap();
        out
    }

    #[test]
    fn a_tree_and_its_exact_export_agree() {
        let f = run(
            vec![
                entry("a", FileKind::Directory, 0),
                entry("a/x", FileKind::Regular, 3),
                entry("a-b", FileKind::Symlink, 4),
            ],
            vec![
                blob("a", FileKind::Directory, 0),
                blob("a/x", FileKind::Regular, 3),
                blob("a-b", FileKind::Symlink, 4),
            ],
        );
        assert_eq!(f, vec![]);
    }

    #[test]
    fn every_kind_of_difference_is_found() {
        let mut dirty = entry("d/stale", FileKind::Regular, 9).unwrap();
        dirty.archived_clean = false;
        let mut new = entry("d/new", FileKind::Regular, 1).unwrap();
        new.archived_clean = false;
        new.archived = false;
        new.record = None;
        let mut excluded = entry("d/skip.tmp", FileKind::Regular, 1).unwrap();
        excluded.in_scope = false;
        let mut bad = entry("d/bad\nname", FileKind::Regular, 1).unwrap();
        bad.name = Err("control character".into());
        let mut foreign = blob("d/zz-foreign", FileKind::Regular, 1).unwrap();
        foreign.ours = false;
        let mut changed = blob("d/changed", FileKind::Regular, 5).unwrap();
        changed.etag = Some("other".into());
        let f = run(
            vec![
                Ok(bad),
                entry("d", FileKind::Directory, 0),
                entry("d/changed", FileKind::Regular, 5),
                entry("d/dir-as-file", FileKind::Directory, 0),
                entry("d/lost", FileKind::Regular, 7),
                Ok(new),
                Ok(excluded),
                Ok(dirty),
            ],
            vec![
                blob("d", FileKind::Directory, 0),
                Ok(changed),
                blob("d/deleted", FileKind::Regular, 2),
                blob("d/dir-as-file", FileKind::Regular, 0),
                blob("d/stale", FileKind::Regular, 8),
                Ok(foreign),
            ],
        );
        let kinds: Vec<(FindingKind, &str)> = f.iter().map(|x| (x.kind, x.path.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::Uncarriable, "d/bad\nname"),
                (FindingKind::Mismatch, "d/changed"),
                (FindingKind::Orphan, "d/deleted"),
                (FindingKind::Kind, "d/dir-as-file"),
                (FindingKind::Lost, "d/lost"),
                (FindingKind::Missing, "d/new"),
                (FindingKind::Stale, "d/stale"),
                (FindingKind::Orphan, "d/zz-foreign"),
            ]
        );
        assert!(f[7].detail.contains("another tool"));
    }

    #[test]
    fn the_walk_yields_blob_order_and_skips_the_simulator_bookkeeping() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/x", "a-b/y", "a/b/c", "z"] {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"1").unwrap();
        }
        std::fs::create_dir_all(d.path().join(".lustre/x")).unwrap();
        let got: Vec<String> = OrderedWalk::new(d.path(), b"")
            .map(|r| String::from_utf8(r.unwrap().0).unwrap())
            .collect();
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want, "byte order of the full path");
        assert_eq!(got, vec!["a", "a-b", "a-b/y", "a/b", "a/b/c", "a/x", "z"]);
        let under: Vec<String> = OrderedWalk::new(d.path(), b"a")
            .map(|r| String::from_utf8(r.unwrap().0).unwrap())
            .collect();
        assert_eq!(under, vec!["a/b", "a/b/c", "a/x"]);
    }
}
