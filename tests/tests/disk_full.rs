//! Disk full (issue 7 item 4): restores into a full file system fail with the reason (ENOSPC,
//! logged to the logging container), the small ones that fit still succeed, nothing crashes, and
//! once space is freed the failed ones restore with identical bytes.
//!
//! The simulator writes restored data into a volatile file under `MOUNT/.lustre/volatile/` and
//! copies it into place on success (the real MDT swaps layouts), so a 16 MiB tmpfs mounted there
//! is the full OST of this test, while the simulated MDT's journal stays on the big disk (on real
//! Lustre the MDT and the OSTs are separate devices too). Mounting needs root (mount(2)), which
//! `scripts/test` and CI have.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::util::{wait_until, Rng};

/// A tmpfs mounted on `dir` for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount_at(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            o.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `dir` until at most `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xAAu8; 64 * 1024];
    loop {
        if free_bytes(dir) <= leave + chunk.len() as u64 || f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    filler
}

fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs(3) with a NUL-terminated path and a zeroed, writable struct.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

#[test]
fn restore_into_a_full_file_system_fails_with_a_reason_others_continue() {
    let mut stack = Stack::new(StackOptions::default());
    // Declared after the stack, so unmounted before the stack's directories are removed.
    let fs = Tmpfs::mount_at(&stack.mount().join(".lustre/volatile"), "16m");
    stack.start_copytool(&[]);
    stack.start_daemon();
    let mut rng = Rng::new(7);
    let bigs: Vec<(PathBuf, Vec<u8>)> = (0..4)
        .map(|i| {
            let d = rng.bytes(3 << 20);
            (stack.write(&format!("big/b{i}.bin"), &d), d)
        })
        .collect();
    let smalls: Vec<(PathBuf, Vec<u8>)> = (0..4)
        .map(|i| {
            let d = rng.bytes(2000);
            (stack.write(&format!("small/s{i}.txt"), &d), d)
        })
        .collect();
    let o = stack.flush("90s");
    assert!(
        o.status.success(),
        "flush: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let all: Vec<&(PathBuf, Vec<u8>)> = bigs.iter().chain(smalls.iter()).collect();
    for (p, _) in &all {
        assert!(
            stack.hsm_state(p).contains("archived"),
            "{}",
            stack.hsm_state(p)
        );
        let o = stack.sim.lfs(&["hsm_release", &p.display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(wait_until(Duration::from_secs(30), || all
        .iter()
        .all(|(p, _)| stack.hsm_state(p).contains("released"))));

    // Leave 1 MiB: every 3 MiB restore runs out of space, then the 2 KB ones still fit (they go
    // second so that no small restore races a big one for the last bytes).
    let filler = fill(&fs.dir, 1 << 20);
    let restore = |files: &[(PathBuf, Vec<u8>)]| {
        for (p, _) in files {
            let o = stack.sim.lfs(&["hsm_restore", &p.display().to_string()]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    };
    restore(&bigs);
    let enospc_fids = || {
        let mut fids: Vec<String> = stack
            .store
            .json_lines(&stack.logs)
            .iter()
            .filter(|e| {
                e["kind"] == "failure"
                    && e["operation"] == "restore"
                    && (e["errno"] == libc::ENOSPC
                        || e["error"]
                            .as_str()
                            .is_some_and(|x| x.contains("No space left")))
            })
            .filter_map(|e| e["fid"].as_str().map(str::to_string))
            .collect();
        fids.sort();
        fids.dedup();
        fids
    };
    let logged = wait_until(Duration::from_secs(60), || {
        enospc_fids().len() == bigs.len()
    });
    assert!(
        logged,
        "every big restore failed with ENOSPC, logged: {:?} {}",
        enospc_fids(),
        stack.logs()
    );
    let big_fids: Vec<String> = bigs.iter().map(|(p, _)| stack.path2fid(p)).collect();
    for f in enospc_fids() {
        assert!(big_fids.contains(&f), "{f} is not one of the big files");
    }
    restore(&smalls);
    let smalls_back = wait_until(Duration::from_secs(60), || {
        smalls.iter().all(|(p, d)| {
            !stack.hsm_state(p).contains("released") && std::fs::read(p).ok().as_ref() == Some(d)
        })
    });
    assert!(
        smalls_back,
        "small files restored despite the full disk: {}",
        stack.logs()
    );
    for (p, _) in &bigs {
        assert!(
            stack.hsm_state(p).contains("released"),
            "{} still released",
            p.display()
        );
    }
    assert!(
        stack.copytools[0].alive(),
        "copytool died: {}",
        stack.logs()
    );
    assert!(
        stack.daemon.as_mut().unwrap().alive(),
        "daemon died: {}",
        stack.logs()
    );

    // Space again: the failed restores succeed with identical bytes.
    std::fs::remove_file(&filler).unwrap();
    for (p, _) in &bigs {
        let o = stack.sim.lfs(&["hsm_restore", &p.display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let back = wait_until(Duration::from_secs(90), || {
        bigs.iter().all(|(p, d)| {
            !stack.hsm_state(p).contains("released") && std::fs::read(p).ok().as_ref() == Some(d)
        })
    });
    assert!(
        back,
        "big files restored after space was freed: {}",
        stack.logs()
    );
    drop(fs);
}
