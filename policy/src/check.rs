//! `lustre-blob check`: the preflight an admin runs before and after deployment. One line per
//! check: what was seen and, when it is not ok, the command that fixes it. Nothing is written
//! to user data: the only writes are probe blobs under a reserved prefix (removed again) and a
//! temporary file in the state directory.
//!
//! Some facts live only on the MDS (a changelog user's registration, `hsm_control`, the agents,
//! `max_requests`): a client cannot read them, so those lines are `manual` and name the command
//! to run there. A running daemon's warnings (e.g. a changelog that delivers nothing) are shown.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How a check came out. `Manual` does not change the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Only an admin can tell (listed, does not change the exit code).
    Manual,
    /// Works, but not as it should.
    Warn,
    /// Blocks the export.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub seen: String,
    /// What to run or change when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(check: &str, level: Level, seen: impl Into<String>, fix: Option<String>) -> Check {
        Check {
            check: check.to_string(),
            level,
            seen: seen.into(),
            fix,
        }
    }

    /// `LEVEL  CHECK  seen [— fix: ...]`
    pub fn line(&self) -> String {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Manual => "manual",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let how = if self.level == Level::Manual {
            "check"
        } else {
            "fix"
        };
        match &self.fix {
            Some(f) => format!("{level:<6} {:<18} {} — {how}: {f}", self.check, self.seen),
            None => format!("{level:<6} {:<18} {}", self.check, self.seen),
        }
    }
}

/// The exit code of a report: 0 all ok, 1 a warning, 2 a failure.
pub fn exit_code(checks: &[Check]) -> i32 {
    match checks.iter().map(|c| c.level).max() {
        Some(Level::Fail) => 2,
        Some(Level::Warn) => 1,
        _ => 0,
    }
}

/// Skew between our clock and the storage service's beyond which requests start failing
/// (Shared Key and SAS signatures are refused past 15 minutes).
const SKEW_FAIL: Duration = Duration::from_secs(15 * 60);
/// Skew worth a warning (timestamps in logs and metadata disagree).
const SKEW_WARN: Duration = Duration::from_secs(60);

/// Runs every check of `policy_path`.
pub fn run(policy_path: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let policy = match lustre_blob_config::Policy::load(policy_path) {
        Ok(p) => {
            out.push(Check::new(
                "policy",
                Level::Ok,
                format!("{}: valid", policy_path.display()),
                None,
            ));
            p
        }
        Err(e) => {
            out.push(Check::new(
                "policy",
                Level::Fail,
                e.to_string(),
                Some(format!("edit {}", policy_path.display())),
            ));
            return out;
        }
    };
    let probe = lustre_side(&policy, &mut out);
    out.extend(store_side(&policy, probe.as_deref()));
    out.push(state_dir(&policy.control.state_dir));
    out.extend(daemon_side(&policy));
    out
}

/// Returns the path (relative to the mount) of the HSM probe file, whose blob the store side
/// removes (a REMOVE keeps blobs unless the policy deletes them).
fn lustre_side(policy: &lustre_blob_config::Policy, out: &mut Vec<Check>) -> Option<String> {
    match lustre::lustre_sys::lib() {
        Ok(l) => out.push(Check::new(
            "liblustreapi",
            Level::Ok,
            l.path().to_string(),
            None,
        )),
        Err(e) => {
            out.push(Check::new(
                "liblustreapi",
                Level::Fail,
                e.to_string(),
                Some("install the Lustre client (lustre-client-utils) or set LUSTREAPI_LIB".into()),
            ));
            return None;
        }
    }
    let (mount, mdts) = mount_and_mdts(policy, out)?;
    changelog_checks(&mdts, &policy.lustre.changelog_user, out);
    let fsname = mdts
        .first()
        .and_then(|m| m.rsplit_once("-MDT"))
        .map_or("<fs>", |(f, _)| f)
        .to_string();
    let (probe, rel) = hsm_probe(&mount, policy.lustre.archive_id, &fsname);
    out.push(probe);
    out.push(Check::new(
        "hsm max_requests",
        Level::Manual,
        "an MDS parameter a client cannot read",
        Some(format!(
            "on the MDS: lctl get_param mdt.{fsname}-MDT*.hsm.max_requests (raise the default 3, e.g. to 64)"
        )),
    ));
    Some(rel)
}

/// Opens the mount and finds its MDT changelogs, reporting either failure.
fn mount_and_mdts(
    policy: &lustre_blob_config::Policy,
    out: &mut Vec<Check>,
) -> Option<(lustre::Mount, Vec<String>)> {
    let mount = match lustre::Mount::open(&policy.lustre.mount) {
        Ok(m) => m,
        Err(e) => {
            out.push(Check::new(
                "mount",
                Level::Fail,
                format!("lustre.mount {}: {e}", policy.lustre.mount.display()),
                Some("mount the Lustre client there, or correct lustre.mount".into()),
            ));
            return None;
        }
    };
    let mdts = match &policy.lustre.mdts {
        Some(v) => Ok(v.clone()),
        None => crate::real::discover_mdts(&mount),
    };
    let mdts = match mdts {
        Ok(m) => m,
        Err(e) => {
            out.push(Check::new(
                "mount",
                Level::Fail,
                format!(
                    "{}: no MDT changelog found: {e}",
                    policy.lustre.mount.display()
                ),
                Some("run as root on a Lustre client; check `lfs mdts`".into()),
            ));
            return None;
        }
    };
    out.push(Check::new(
        "mount",
        Level::Ok,
        format!(
            "{}: Lustre, {} MDT{}",
            policy.lustre.mount.display(),
            mdts.len(),
            if mdts.len() == 1 { "" } else { "s" }
        ),
        None,
    ));
    Some((mount, mdts))
}

/// Each MDT's changelog is readable; whether `user` is registered only the MDS can say.
fn changelog_checks(
    mdts: &[String],
    user: &lustre_blob_config::ChangelogUser,
    out: &mut Vec<Check>,
) {
    for mdt in mdts {
        match lustre::ChangelogReader::start(mdt, 0, false) {
            Ok(_) => out.push(Check::new(
                "changelog",
                Level::Ok,
                format!("{mdt}: readable"),
                None,
            )),
            Err(e) => out.push(Check::new(
                "changelog",
                Level::Fail,
                format!("{mdt}: {e}"),
                Some("run as root; the MDT must be reachable".into()),
            )),
        }
        out.push(Check::new(
            "changelog user",
            Level::Manual,
            format!("{mdt}: a client cannot see whether {user} is registered"),
            Some(format!(
                "on the MDS: lctl get_param mdd.{mdt}.changelog_users (expect {user}); \
                 lctl --device {mdt} changelog_register to make one; \
                 lctl get_param mdd.{mdt}.changelog_mask (needs CLOSE and HSM)"
            )),
        ));
    }
}

/// How long the probe waits for a copytool to archive its file (the coordinator's loop period
/// is 10 s by default).
const PROBE_WAIT: Duration = Duration::from_secs(30);

/// The coordinator and a copytool, tested the only way a client can: a small file in the
/// reserved directory `PROBE_DIR` (never exported by the daemon, no user data) is archived
/// with the policy's archive id, then removed from the archive and deleted. Archived in time:
/// both work. Refused with EAGAIN: the coordinator is not running. Still waiting: no copytool
/// serves the archive id (or `hsm_control` is disabled).
fn hsm_probe(mount: &lustre::Mount, archive_id: u32, fsname: &str) -> (Check, String) {
    let what = "hsm copytool";
    let dir = mount.root().join(crate::scope::PROBE_DIR);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let rel = format!(
        "{}/probe-{host}-{}",
        crate::scope::PROBE_DIR,
        std::process::id()
    );
    let file = mount.root().join(&rel);
    let made =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, b"lustre-blob check\n"));
    if let Err(e) = made {
        let c = Check::new(
            what,
            Level::Fail,
            format!("{}: {e}", file.display()),
            Some("run as root".into()),
        );
        return (c, rel);
    }
    let enable = format!("on the MDS: lctl set_param mdt.{fsname}-MDT*.hsm_control=enabled");
    let start = "start one on this client: lhsmtool_blob --archive N --config FILE MOUNT";
    let result = archive_probe(mount, &file, archive_id, &enable, start, fsname);
    let check = match result {
        Ok((fid, took)) => {
            remove_probe_copy(mount, &file, fid, archive_id);
            Check::new(
                what,
                Level::Ok,
                format!(
                    "a copytool archived a probe file for archive id {archive_id} in {:.1}s",
                    took.as_secs_f64()
                ),
                None,
            )
        }
        Err((level, seen, fix)) => Check::new(what, level, seen, fix),
    };
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    (check, rel)
}

/// A failed probe: its level, what was seen and the fix.
type ProbeFailure = (Level, String, Option<String>);

/// Archives the probe file and waits for a copytool to end it: its FID and how long it took.
fn archive_probe(
    mount: &lustre::Mount,
    file: &std::path::Path,
    archive_id: u32,
    enable: &str,
    start: &str,
    fsname: &str,
) -> Result<(lustre::Fid, Duration), ProbeFailure> {
    use lustre::UserAction;
    let fid = mount
        .path2fid(file)
        .map_err(|e| (Level::Fail, e.to_string(), None))?;
    let started = std::time::Instant::now();
    if let Err(e) = mount.hsm_request(UserAction::Archive, archive_id, 0, &[fid], b"lb:check") {
        let coordinator_off = matches!(e.errno(), Some(libc::EAGAIN) | Some(libc::ESHUTDOWN));
        return Err(if coordinator_off {
            (
                Level::Fail,
                format!("the HSM coordinator refuses requests: {e}"),
                Some(enable.to_string()),
            )
        } else {
            (Level::Fail, format!("archive request refused: {e}"), None)
        });
    }
    loop {
        match mount.hsm_state(file) {
            Ok(h) if h.is_clean_archive() => return Ok((fid, started.elapsed())),
            Ok(_) if started.elapsed() < PROBE_WAIT => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Ok(_) => {
                let _ = mount.hsm_request(UserAction::Cancel, archive_id, 0, &[fid], b"");
                return Err((
                    Level::Fail,
                    format!(
                        "no copytool archived a probe file within {}s: none serves archive id \
                         {archive_id}, or the coordinator is disabled",
                        PROBE_WAIT.as_secs()
                    ),
                    Some(format!(
                        "{start}; {enable}; check mdt.{fsname}-MDT*.hsm.agents"
                    )),
                ));
            }
            Err(e) => return Err((Level::Fail, e.to_string(), None)),
        }
    }
}

/// Takes the probe's copy out of the archive again and waits (bounded) until it is gone:
/// nothing of the probe stays.
fn remove_probe_copy(
    mount: &lustre::Mount,
    file: &std::path::Path,
    fid: lustre::Fid,
    archive_id: u32,
) {
    let _ = mount.hsm_request(
        lustre::UserAction::Remove,
        archive_id,
        0,
        &[fid],
        b"lb:check",
    );
    let t = std::time::Instant::now();
    while t.elapsed() < PROBE_WAIT {
        match mount.hsm_state(file) {
            Ok(h) if h.is_exists() => std::thread::sleep(Duration::from_millis(200)),
            _ => break,
        }
    }
}

/// Put, head, list, get and delete of a probe blob in the export and the logging container.
fn store_side(policy: &lustre_blob_config::Policy, hsm_probe: Option<&str>) -> Vec<Check> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![Check::new("store", Level::Fail, e.to_string(), None)],
    };
    let store = match blob::BlobStore::open(&crate::daemon::target_spec(policy)) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::new(
                "export container",
                Level::Fail,
                format!("blob.url: {e}"),
                Some("correct [blob] url and credentials".into()),
            )]
        }
    };
    let mut out = Vec::new();
    if let Some(rel) = hsm_probe {
        // What the copytool archived for the HSM probe goes again (nothing of a check stays).
        if let Ok(name) = store.name_for(rel.as_bytes()) {
            if let Err(e) = rt.block_on(store.delete_if_exists(&name)) {
                tracing::warn!(blob = %name, error = %e, "could not remove the HSM probe's blob");
            }
        }
    }
    let logs = store.with_container(&policy.logging.container);
    let (export, skew) = rt.block_on(probe(&store, "export container"));
    out.push(export);
    match logs {
        Ok(l) => out.push(rt.block_on(probe(&l, "logging container")).0),
        Err(e) => out.push(Check::new(
            "logging container",
            Level::Fail,
            e.to_string(),
            Some("correct [logging] container".into()),
        )),
    }
    if let Some(skew) = skew {
        let secs = skew.as_secs();
        let (level, fix) = if skew > SKEW_FAIL {
            (
                Level::Fail,
                Some("synchronise the clock (chrony/ntp)".to_string()),
            )
        } else if skew > SKEW_WARN {
            (
                Level::Warn,
                Some("synchronise the clock (chrony/ntp)".to_string()),
            )
        } else {
            (Level::Ok, None)
        };
        out.push(Check::new(
            "clock",
            level,
            format!("{secs}s from the storage service's clock"),
            fix,
        ));
    }
    out
}

/// Writes, reads, lists and deletes `.lustre-blob-check/<host>-<pid>` under the store's prefix.
/// Returns the check and the clock skew seen on the write.
async fn probe(store: &blob::BlobStore, what: &str) -> (Check, Option<Duration>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let rel = format!(".lustre-blob-check/{host}-{}", std::process::id());
    match probe_rights(store, &rel).await {
        Ok(skew) => (
            Check::new(what, Level::Ok, "read, write, list and delete work", None),
            Some(skew),
        ),
        Err((right, e)) => (
            Check::new(
                what,
                Level::Fail,
                format!("{right} refused: {e}"),
                Some(
                    "the credentials need read, write, list and delete on the container \
                     (SAS permissions rwdl, or the Storage Blob Data Contributor role), \
                     and the container must exist"
                        .into(),
                ),
            ),
            None,
        ),
    }
}

/// Writes, reads back, lists and deletes a probe blob at `rel`: the clock skew seen from its
/// Last-Modified, or the right refused and why.
async fn probe_rights(
    store: &blob::BlobStore,
    rel: &str,
) -> Result<Duration, (&'static str, String)> {
    let name = store
        .name_for(rel.as_bytes())
        .map_err(|e| ("naming a probe blob", e.to_string()))?;
    let body = bytes::Bytes::from_static(b"lustre-blob check probe\n");
    let before = SystemTime::now();
    let meta = blob::Metadata::default();
    store
        .put_bytes(&name, body.clone(), &meta, blob::WriteMode::Overwrite)
        .await
        .map_err(|e| ("write", e.to_string()))?;
    let after = SystemTime::now();
    let info = match store.head(&name).await {
        Ok(Some(i)) => i,
        Ok(None) => return Err(("read", "the probe blob just written is not there".into())),
        Err(e) => return Err(("read", e.to_string())),
    };
    // Last-Modified has one-second resolution: a skew inside [before - 1 s, after] is none.
    let lm = info.last_modified;
    let skew = if lm + Duration::from_secs(1) < before {
        before.duration_since(lm).ok()
    } else {
        lm.duration_since(after).ok()
    }
    .unwrap_or_default();
    match store.get_bytes(&name).await {
        Ok(b) if b == body => {}
        Ok(_) => return Err(("read", "the probe blob came back different".into())),
        Err(e) => return Err(("read", e.to_string())),
    }
    if !is_listed(store, &name).await.map_err(|e| ("list", e))? {
        return Err(("list", "the probe blob is not listed".into()));
    }
    store
        .delete(&name)
        .await
        .map_err(|e| ("delete", e.to_string()))?;
    Ok(skew)
}

/// Whether listing the blob's directory shows it.
async fn is_listed(store: &blob::BlobStore, name: &blob::BlobName) -> Result<bool, String> {
    use futures::StreamExt;
    let dir = name.as_str().rsplit_once('/').map_or("", |(d, _)| d);
    let mut s = store.list(dir).map_err(|e| e.to_string())?;
    while let Some(item) = s.next().await {
        if item.map_err(|e| e.to_string())?.name == name.as_str() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn state_dir(dir: &Path) -> Check {
    let probe = dir.join(format!(".check-{}", std::process::id()));
    let r = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"x"))
        .and_then(|()| std::fs::remove_file(&probe));
    match r {
        Ok(()) => Check::new(
            "state directory",
            Level::Ok,
            format!("{}: writable", dir.display()),
            None,
        ),
        Err(e) => Check::new(
            "state directory",
            Level::Fail,
            format!("{}: {e}", dir.display()),
            Some("give [control] state_dir a directory root can write".into()),
        ),
    }
}

/// The daemon, when it runs: its state and every warning it has.
fn daemon_side(policy: &lustre_blob_config::Policy) -> Vec<Check> {
    let req = crate::control::Request::Status;
    match crate::control::call(&policy.control.socket, &req, Some(Duration::from_secs(10))) {
        Ok(r) if r.ok => {
            let state = r.data["state"].as_str().unwrap_or("?").to_string();
            let mut out = vec![Check::new(
                "daemon",
                if state == "Failed" {
                    Level::Fail
                } else {
                    Level::Ok
                },
                format!(
                    "running, auto-export {state}{}",
                    r.data["statusMessage"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                None,
            )];
            for w in r.data["warnings"].as_array().into_iter().flatten() {
                out.push(Check::new(
                    "daemon",
                    Level::Warn,
                    w.as_str().unwrap_or("").to_string(),
                    None,
                ));
            }
            out
        }
        Ok(r) => vec![Check::new(
            "daemon",
            Level::Warn,
            r.error.unwrap_or_default(),
            None,
        )],
        Err(e) => vec![Check::new(
            "daemon",
            Level::Warn,
            format!("not answering on {}: {e}", policy.control.socket.display()),
            Some("systemctl start lustre-blob (or `lustre-blob daemon --config FILE`)".into()),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_line_decides_the_exit_code_and_manual_lines_do_not_count() {
        let ok = Check::new("a", Level::Ok, "fine", None);
        let manual = Check::new("b", Level::Manual, "look", Some("lctl ...".into()));
        let warn = Check::new("c", Level::Warn, "hm", None);
        let fail = Check::new("d", Level::Fail, "no", Some("fix it".into()));
        assert_eq!(exit_code(&[ok.clone(), manual.clone()]), 0);
        assert_eq!(exit_code(&[ok.clone(), warn.clone(), manual]), 1);
        assert_eq!(exit_code(&[warn, fail.clone(), ok]), 2);
        assert_eq!(fail.line(), "FAIL   d                  no — fix: fix it");
    }

    #[test]
    fn a_bad_policy_is_one_failure_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("policy.toml");
        std::fs::write(&p, "[lustre]\nmount = 3\n").unwrap();
        let c = run(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].seen.contains("policy.toml"), "{}", c[0].seen);
    }
}
