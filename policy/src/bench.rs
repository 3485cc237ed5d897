//! `bench-changelog` (built with the `testing` feature): changelog processing speed on one
//! core over a synthetic changelog (DESIGN §7 target: 100,000 records/s). The namespace is in memory, so this measures
//! the engine's own cost per record (filter, directory cache, deduplication), not Lustre's.

use crate::engine::{Engine, EngineConfig};
use crate::fake::{FakeLog, FakeNs, FakeStore};
use crate::model::{Change, FileKind};
use crate::scope::Scope;
use lustre::{Fid, RecordType};
use lustre_blob_config::{DeleteMode, MetadataMode, RenameMode};
use std::time::Instant;

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// Records fed.
    pub records: u64,
    /// Distinct files they touched.
    pub files: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Records processed per second.
    pub records_per_second: f64,
    /// Files left pending afterwards (those in scope).
    pub pending_after: u64,
}

/// Processes `records` synthetic records touching `files` distinct files (a realistic mix:
/// CREATE, CLOSE, MTIME, SETATTR, SETXATTR of our record, CL_HSM, and 10 % outside the export
/// prefix or excluded), in batches as the readers deliver them.
pub fn run(records: u64, files: u64) -> Result<BenchResult, String> {
    let ns = FakeNs::default();
    let root = ns.add("", FileKind::Directory, 0);
    let proj = ns.add("projects", FileKind::Directory, 0);
    let other = ns.add("other", FileKind::Directory, 0);
    let files = files.max(1);
    let mut fids = Vec::with_capacity(files as usize);
    for i in 0..files {
        let (dir, path) = match i % 10 {
            0 => (other, format!("other/f{i}")),
            1 => (proj, format!("projects/f{i}.tmp")),
            _ => (proj, format!("projects/d{}/f{i}", i % 100)),
        };
        fids.push((ns.add(&path, FileKind::Regular, 4096), dir, path));
    }
    let cfg = EngineConfig {
        archive_id: 1,
        scope: Scope::new(&["projects".to_string()], &["*.tmp".to_string()])?,
        min_age_ms: 3_600_000, // nothing becomes due: only record processing is timed
        metadata: MetadataMode::Ignore,
        on_delete: DeleteMode::Keep,
        on_rename: RenameMode::Keep,
        batch_size: 1000,
        stale_after_ms: 30_000,
        discover_chunk: 256,
        job_id: "bench".into(),
        retry_max_ms: crate::engine::DEFAULT_RETRY_MAX_MS,
        max_in_flight: crate::engine::DEFAULT_MAX_IN_FLIGHT,
        queue_target_ms: crate::engine::DEFAULT_QUEUE_TARGET_MS,
        min_in_flight: crate::engine::DEFAULT_MIN_IN_FLIGHT,
        iteration_deadline_ms: crate::engine::DEFAULT_ITERATION_DEADLINE_MS,
    };
    let mut e = Engine::new(
        ns,
        FakeStore::default(),
        FakeLog::default(),
        cfg,
        1,
        None,
        true,
    )
    .map_err(|e| e.to_string())?;
    let _ = root;
    let mut batch: Vec<Change> = Vec::with_capacity(4096);
    let mut index = 0u64;
    let start = Instant::now();
    let mut now = 1_000_000u64;
    while index < records {
        batch.clear();
        while batch.len() < 4096 && index < records {
            index += 1;
            let (fid, parent, path): &(Fid, Fid, String) = &fids[(index % files) as usize];
            // Rotate the record type per file across passes, so every file sees every type.
            let kind = match (index / files + index) % 8 {
                0 => RecordType::Create,
                1..=4 => RecordType::Close,
                5 => RecordType::Mtime,
                6 => RecordType::Setxattr,
                _ => RecordType::Setattr,
            };
            let mut c = Change::simple(0, index, kind, *fid);
            if kind == RecordType::Create {
                c.record.pfid = *parent;
                c.record.name = path.rsplit('/').next().unwrap_or("").as_bytes().to_vec();
            }
            if kind == RecordType::Setxattr {
                c.record.xattr = Some(blob::EXPORT_XATTR.into());
            }
            batch.push(c);
        }
        now += 1;
        e.on_records(0, &batch, false, now);
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Ok(BenchResult {
        records,
        files,
        seconds,
        records_per_second: records as f64 / seconds,
        pending_after: e.state().pending.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_processes_every_record_and_filters_scope() {
        let r = super::run(20_000, 1_000).unwrap();
        assert_eq!(r.records, 20_000);
        // 80 % of the files are under the prefix and not excluded.
        assert_eq!(r.pending_after, 800);
    }
}
