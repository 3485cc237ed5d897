//! What auto-export covers: export prefixes plus exclusion globs, applied to paths relative to
//! the mount; and the directory-path cache that turns (parent FID, name) into a path without a
//! fid2path call per record.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use lustre::Fid;
use std::collections::HashMap;

/// Export prefixes and exclusions.
#[derive(Debug, Clone)]
pub struct Scope {
    prefixes: Vec<Vec<u8>>,
    excludes: GlobSet,
}

impl Scope {
    /// `prefixes` as the config normalised them (`""` = everything); `excludes` are globs.
    pub fn new(prefixes: &[String], excludes: &[String]) -> Result<Scope, String> {
        let mut b = GlobSetBuilder::new();
        for g in excludes {
            let glob = GlobBuilder::new(g)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid glob \"{g}\": {}", e.kind()))?;
            b.add(glob);
        }
        let excludes = b.build().map_err(|e| e.to_string())?;
        let prefixes = prefixes
            .iter()
            .map(|p| p.trim_end_matches('/').as_bytes().to_vec())
            .collect();
        Ok(Scope { prefixes, excludes })
    }

    /// Under some prefix (the prefix directory itself included).
    pub fn under_prefix(&self, rel: &[u8]) -> bool {
        self.prefixes.iter().any(|p| {
            p.is_empty() || (rel.starts_with(p) && (rel.len() == p.len() || rel[p.len()] == b'/'))
        })
    }

    /// Could `dir` contain in-scope paths (it is under a prefix, or a prefix is under it)?
    pub fn may_contain(&self, dir: &[u8]) -> bool {
        self.under_prefix(dir)
            || self.prefixes.iter().any(|p| {
                dir.is_empty()
                    || (p.starts_with(dir) && p.len() > dir.len() && p[dir.len()] == b'/')
            })
    }

    /// Whether an exclusion glob matches the path (relative to the mount).
    pub fn excluded(&self, rel: &[u8]) -> bool {
        if self.excludes.is_empty() {
            return false;
        }
        // Globs match text; a name that is not UTF-8 is matched on its lossy form.
        let text = String::from_utf8_lossy(rel);
        self.excludes.is_match(text.as_ref())
    }

    /// Exported by auto-export: under a prefix and not excluded. The mount root itself never is.
    pub fn covers(&self, rel: &[u8]) -> bool {
        !rel.is_empty() && !is_reserved(rel) && self.under_prefix(rel) && !self.excluded(rel)
    }
}

/// The directory at the mount root where `lustre-blob check` makes its HSM probe file: never
/// exported, whatever the export path says.
pub const PROBE_DIR: &str = ".lustre-blob-check";

/// Whether `rel` is `PROBE_DIR` or inside it.
pub fn is_reserved(rel: &[u8]) -> bool {
    let d = PROBE_DIR.as_bytes();
    rel.starts_with(d) && (rel.len() == d.len() || rel[d.len()] == b'/')
}

/// Joins a parent path and an entry name (the root is `""`).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Directory FID -> path cache, bounded; cleared when a directory is renamed (its descendants'
/// paths change with it) and trimmed when full.
#[derive(Debug, Default)]
pub struct DirCache {
    map: HashMap<Fid, Vec<u8>>,
    cap: usize,
}

impl DirCache {
    /// An empty cache of at most `cap` directories.
    pub fn new(cap: usize) -> DirCache {
        DirCache {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }
    /// The cached path of a directory.
    pub fn get(&self, fid: &Fid) -> Option<&[u8]> {
        self.map.get(fid).map(Vec::as_slice)
    }
    /// Caches a directory's path.
    pub fn insert(&mut self, fid: Fid, path: Vec<u8>) {
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        self.map.insert(fid, path);
    }
    /// Forgets a directory (removed).
    pub fn remove(&mut self, fid: &Fid) {
        self.map.remove(fid);
    }
    /// A directory was renamed: every cached path below it is stale.
    pub fn invalidate_all(&mut self) {
        self.map.clear();
    }
    /// Directories cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_directory_is_never_covered() {
        let s = Scope::new(&[String::new()], &[]).unwrap();
        assert!(!s.covers(b".lustre-blob-check"));
        assert!(!s.covers(b".lustre-blob-check/probe-h-1"));
        assert!(s.covers(b".lustre-blob-checks/x"), "only that very name");
        assert!(s.covers(b"a/.lustre-blob-check/x"), "only at the root");
    }

    fn scope(p: &[&str], x: &[&str]) -> Scope {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        let x: Vec<String> = x.iter().map(|s| s.to_string()).collect();
        Scope::new(&p, &x).unwrap()
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let s = scope(&["projects"], &[]);
        assert!(s.covers(b"projects"));
        assert!(s.covers(b"projects/a.dat"));
        assert!(!s.covers(b"projectsX/a.dat"));
        assert!(!s.covers(b"other/a.dat"));
        assert!(!s.covers(b""));
        let all = scope(&[""], &[]);
        assert!(all.covers(b"x"));
        assert!(!all.covers(b""));
    }

    #[test]
    fn several_prefixes() {
        let s = scope(&["a/b", "c"], &[]);
        assert!(s.covers(b"a/b/x") && s.covers(b"c/y"));
        assert!(!s.covers(b"a/x"));
        assert!(s.may_contain(b"a") && s.may_contain(b"") && !s.may_contain(b"d"));
    }

    #[test]
    fn exclusions_cross_directories() {
        let s = scope(&[""], &["*.tmp", "**/.cache/**"]);
        assert!(!s.covers(b"a/b/c.tmp"));
        assert!(!s.covers(b"x.tmp"));
        assert!(!s.covers(b"a/.cache/f"));
        assert!(!s.covers(b".cache/f"));
        assert!(s.covers(b"a/b/c.dat"));
        assert!(s.covers(b"a/cache/f"));
    }

    #[test]
    fn bad_glob_is_refused() {
        assert!(Scope::new(&[String::new()], &["a[".into()]).is_err());
    }

    #[test]
    fn join_handles_root() {
        assert_eq!(join(b"", b"a"), b"a".to_vec());
        assert_eq!(join(b"d", b"a"), b"d/a".to_vec());
    }

    #[test]
    fn dircache_is_bounded() {
        let mut c = DirCache::new(2);
        c.insert(Fid::new(1, 1, 0), b"a".to_vec());
        c.insert(Fid::new(1, 2, 0), b"b".to_vec());
        assert_eq!(c.len(), 2);
        c.insert(Fid::new(1, 3, 0), b"c".to_vec());
        assert!(c.len() <= 2);
        assert_eq!(c.get(&Fid::new(1, 3, 0)), Some(&b"c"[..]));
        c.invalidate_all();
        assert!(c.is_empty());
    }
}
