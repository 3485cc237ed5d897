//! Several MDTs end to end (issue 17 item 3), real processes: `lustre-sim --mdts 4` with
//! directories spread over the MDTs, a changelog user per MDT (numbered per MDT, so the policy
//! names them in a table), one daemon, two copytools. Auto-export with a `kill -9` of the daemon
//! while the iteration runs, then renames across MDTs, deletes, and restores of files on every
//! MDT. Exactly once: Azurite logs every request it receives (`--debug`), and every file's content
//! must have been committed (Put Blob or Put Block List) exactly once, its blob must equal the
//! file, and the daemon's `totalFilesExported` must equal what the store saw committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::store::LoggedRequest;
use e2e::util::{sha256_hex, wait_until, Rng};

const MDTS: u32 = 4;
const FILES_PER_DIR: usize = 40;

/// The MDT holding `path`: the simulator numbers FID sequences 0x200000400 + index * 0x40000000
/// (one sequence range per MDT, as Lustre's FLD gives each MDT its own).
fn mdt_of(stack: &Stack, path: &Path) -> u32 {
    let fid = stack.path2fid(path);
    let seq = fid
        .trim_start_matches("[0x")
        .split(':')
        .next()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or_else(|| panic!("path2fid {}: {fid:?}", path.display()));
    u32::try_from((seq - 0x2_0000_0400) / 0x4000_0000).expect("MDT index")
}

/// Creates directories until every MDT holds two (new directories are placed by a hash of their
/// name, as `lfs setdirstripe -D -c 1 -i -1` spreads them); returns them by MDT.
fn dirs_on_every_mdt(stack: &Stack) -> BTreeMap<u32, Vec<String>> {
    let mut by_mdt: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for i in 0..64 {
        if (0..MDTS).all(|m| by_mdt.get(&m).is_some_and(|d| d.len() >= 2)) {
            break;
        }
        let name = format!("dir{i:02}");
        let p = stack.mount().join(&name);
        std::fs::create_dir(&p).expect("mkdir");
        by_mdt.entry(mdt_of(stack, &p)).or_default().push(name);
    }
    for m in 0..MDTS {
        assert!(
            by_mdt.get(&m).is_some_and(|d| d.len() >= 2),
            "no two directories on MDT{m}: {by_mdt:?}"
        );
    }
    by_mdt
}

/// Registers our changelog user on MDTs 1..4 (the stack registered MDT0's) after another
/// consumer took `cl1` on the odd ones, and points the policy at the table MDT = user.
fn changelog_user_per_mdt(stack: &mut Stack) -> BTreeMap<u32, String> {
    let mut ours = BTreeMap::from([(0, stack.policy.changelog_user.clone())]);
    for m in 1..MDTS {
        if m % 2 == 1 {
            assert_eq!(stack.sim.register_changelog_user(m), "cl1");
        }
        ours.insert(m, stack.sim.register_changelog_user(m));
    }
    assert_eq!(ours[&1], "cl2", "ids are numbered per MDT");
    assert_eq!(ours[&2], "cl1");
    let table: Vec<String> = ours
        .iter()
        .map(|(m, u)| format!("\"MDT{m:04x}\" = \"{u}\""))
        .collect();
    let text = stack.policy.to_toml().replace(
        &format!("changelog_user = {:?}", stack.policy.changelog_user),
        &format!("changelog_user = {{ {} }}", table.join(", ")),
    );
    assert!(text.contains("\"MDT0003\""), "{text}");
    std::fs::write(&stack.policy_path, text).expect("write policy");
    ours
}

/// Blob name -> how many requests committed uploaded content to it.
fn content_commits(requests: &[LoggedRequest], container: &str) -> BTreeMap<String, usize> {
    let prefix = format!("/devstoreaccount1/{container}/");
    let mut n = BTreeMap::new();
    for r in requests.iter().filter(|r| r.commits_uploaded_content()) {
        if let Some(name) = r.path.strip_prefix(&prefix) {
            *n.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    n
}

fn exported(stack: &Stack) -> u64 {
    stack.status_json()["totalFilesExported"]
        .as_u64()
        .unwrap_or(0)
}

fn flush_clean(stack: &Stack) {
    let o = stack.flush("120s");
    assert!(
        o.status.success(),
        "flush: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        stack.logs()
    );
}

/// `ok:N` of every agent the coordinator of `mdt` lists.
fn agents_ok(stack: &Stack, mdt: u32) -> Vec<u64> {
    stack
        .sim
        .get_param(mdt, "hsm.agents")
        .lines()
        .filter_map(|l| {
            l.split("ok:")
                .nth(1)?
                .split([' ', ']'])
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The record index up to which `user` cleared MDT `mdt`'s changelog (`mdd.*.changelog_users`).
fn cleared_to(stack: &Stack, mdt: u32, user: &str) -> u64 {
    let p = format!("mdd.{}.changelog_users", stack.sim.mdt_name(mdt));
    let o = stack.sim.lctl(&["get_param", "-n", &p]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == user).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

fn wait_state(stack: &Stack, p: &Path, released: bool) {
    let ok = wait_until(Duration::from_secs(60), || {
        let s = stack.hsm_state(p);
        s.contains("archived") && s.contains("released") == released && !s.contains("dirty")
    });
    assert!(
        ok,
        "{}: {} (wanted released={released})\n{}",
        p.display(),
        stack.hsm_state(p),
        stack.logs()
    );
}

#[test]
fn four_mdts_export_rename_delete_restore_and_a_daemon_kill9_exactly_once() {
    let seed = Rng::seed_from_env();
    eprintln!("several_mdts: seed {seed}");
    let mut rng = Rng::new(seed);
    let mut stack = Stack::new(StackOptions {
        mdts: MDTS,
        log_requests: true,
        max_requests: 16,
        ..StackOptions::default()
    });
    stack.edit_policy(|p| {
        p.extra
            .push(("autoexport".into(), "on_delete = \"delete\"".into()));
        p.extra
            .push(("autoexport".into(), "on_rename = \"move\"".into()));
    });
    let users = changelog_user_per_mdt(&mut stack);
    let dirs = dirs_on_every_mdt(&stack);
    stack.start_copytool(&["--max-actions", "8"]);
    stack.start_copytool(&["--max-actions", "8"]);
    stack.start_daemon();

    // Files on every MDT; one in ten spans several 64 KiB blocks (Put Block List).
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for d in dirs.values().flatten() {
        for i in 0..FILES_PER_DIR {
            let size = if i % 10 == 0 {
                rng.range(65_537, 300_000)
            } else {
                rng.range(1, 4096)
            } as usize;
            let body = rng.bytes(size);
            let rel = format!("{d}/f{i:03}.bin");
            stack.write(&rel, &body);
            files.insert(rel, sha256_hex(&body));
        }
    }

    // kill -9 of the daemon while its iteration still has files to export.
    let total = files.len() as u64;
    assert!(
        wait_until(Duration::from_secs(120), || exported(&stack) >= 20),
        "the export never got going: {}",
        stack.logs()
    );
    let st = stack.status_json();
    let left = st["pendingFiles"].as_u64().unwrap_or(0) + st["inFlightFiles"].as_u64().unwrap_or(0);
    assert!(
        left > 0 && st["totalFilesExported"].as_u64().unwrap_or(0) < total,
        "the iteration ended before the kill: {st}"
    );
    eprintln!(
        "kill -9 of the daemon with {} exported, {left} pending or in flight",
        st["totalFilesExported"]
    );
    if let Some(mut d) = stack.daemon.take() {
        d.kill9();
    }
    stack.start_daemon();
    flush_clean(&stack);

    // Nothing lost, each file's content committed exactly once, counters agree with the store.
    let listed: BTreeSet<String> = stack
        .store
        .list(&stack.container, "")
        .into_iter()
        .map(|b| b.name)
        .collect();
    let all_dirs: BTreeSet<&String> = dirs.values().flatten().collect();
    let mut wrong = Vec::new();
    for (rel, sum) in &files {
        match stack.store.get(&stack.container, rel) {
            Some(b) if sha256_hex(&b) == *sum => {}
            Some(_) => wrong.push(format!("{rel}: content differs")),
            None => wrong.push(format!("{rel}: no blob")),
        }
    }
    for name in &listed {
        let dir = name.trim_end_matches('/');
        if !files.contains_key(name) && !all_dirs.contains(&dir.to_string()) {
            wrong.push(format!("{name}: a blob for nothing in the file system"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}\n{}", stack.logs());
    let commits = content_commits(&stack.store.requests(), &stack.container);
    let not_once: Vec<(&String, usize)> = files
        .keys()
        .map(|f| (f, commits.get(f).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        not_once.is_empty(),
        "files whose content was not committed exactly once: {not_once:?}"
    );
    let dir_commits: usize = commits
        .iter()
        .filter(|(n, _)| !files.contains_key(*n))
        .map(|(_, c)| c)
        .sum();
    assert_eq!(
        exported(&stack),
        total + dir_commits as u64,
        "totalFilesExported against {total} file and {dir_commits} directory commits Azurite saw"
    );
    // Every MDT's coordinator served archives, and both copytools took part.
    for m in 0..MDTS {
        assert!(
            agents_ok(&stack, m).iter().sum::<u64>() > 0,
            "MDT{m}: no request served: {}",
            stack.sim.get_param(m, "hsm.agents")
        );
    }
    let per_agent: Vec<u64> = (0..2)
        .map(|a| {
            (0..MDTS)
                .map(|m| agents_ok(&stack, m).get(a).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    assert!(
        per_agent.iter().all(|n| *n > 0),
        "a copytool served nothing: {per_agent:?}"
    );
    // Our user was cleared on every MDT; the other consumer's cl1 on MDT1 and MDT3 never was.
    for (m, u) in &users {
        assert!(
            wait_until(Duration::from_secs(20), || cleared_to(&stack, *m, u) > 0),
            "MDT{m}: {u} never cleared"
        );
        if u != "cl1" {
            assert_eq!(
                cleared_to(&stack, *m, "cl1"),
                0,
                "MDT{m}: the other consumer's cl1 was cleared"
            );
        }
    }

    // Renames across MDTs (each MDT's first directory to the next MDT's) and deletes on every MDT.
    let mut moved: Vec<(String, String)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    for m in 0..MDTS {
        let from = &dirs[&m][0];
        let to = &dirs[&((m + 1) % MDTS)][1];
        for i in 1..4 {
            let old = format!("{from}/f{i:03}.bin");
            let new = format!("{to}/from-mdt{m}-f{i:03}.bin");
            std::fs::rename(stack.mount().join(&old), stack.mount().join(&new)).expect("rename");
            moved.push((old, new));
        }
        for i in 4..6 {
            let gone = format!("{}/f{i:03}.bin", dirs[&m][1]);
            std::fs::remove_file(stack.mount().join(&gone)).expect("unlink");
            deleted.push(gone);
        }
    }
    flush_clean(&stack);
    for (old, new) in &moved {
        let body = stack.store.get(&stack.container, new);
        assert_eq!(
            body.map(|b| sha256_hex(&b)).as_ref(),
            files.get(old),
            "{old} -> {new}: the blob did not move with the file\n{}",
            stack.logs()
        );
        assert!(
            stack.store.get(&stack.container, old).is_none(),
            "{old}: the old blob stayed after the rename"
        );
    }
    for gone in &deleted {
        assert!(
            stack.store.get(&stack.container, gone).is_none(),
            "{gone}: the blob stayed after the delete"
        );
    }
    let commits = content_commits(&stack.store.requests(), &stack.container);
    for (old, new) in &moved {
        assert_eq!(
            commits.get(old).copied().unwrap_or(0) + commits.get(new).copied().unwrap_or(0),
            1,
            "{old} -> {new}: a rename must move the blob, not upload the file again"
        );
    }

    // Restores of files on every MDT (one of them renamed there from another MDT).
    let mut restore: Vec<(String, String)> = Vec::new();
    for m in 0..MDTS {
        let d = &dirs[&m][1];
        for i in 6..8 {
            let rel = format!("{d}/f{i:03}.bin");
            let sum = files[&rel].clone();
            restore.push((rel, sum));
        }
    }
    for (old, new) in moved.iter().step_by(3) {
        restore.push((new.clone(), files[old].clone()));
    }
    let restore_mdts: BTreeSet<u32> = restore
        .iter()
        .map(|(rel, _)| mdt_of(&stack, &stack.mount().join(rel)))
        .collect();
    assert_eq!(restore_mdts.len(), MDTS as usize, "restores on every MDT");
    for (rel, _) in &restore {
        let p = stack.mount().join(rel);
        let o = stack.sim.lfs(&["hsm_release", &p.display().to_string()]);
        assert!(o.status.success(), "hsm_release {rel}: {o:?}");
        wait_state(&stack, &p, true);
    }
    for (rel, _) in &restore {
        let p = stack.mount().join(rel);
        let o = stack.sim.lfs(&["hsm_restore", &p.display().to_string()]);
        assert!(o.status.success(), "hsm_restore {rel}: {o:?}");
    }
    for (rel, sum) in &restore {
        let p = stack.mount().join(rel);
        wait_state(&stack, &p, false);
        let body = std::fs::read(&p).expect("read restored file");
        assert_eq!(&sha256_hex(&body), sum, "{rel}: restored bytes differ");
    }
    // A restore reads the blob; it never writes one.
    flush_clean(&stack);
    let after = content_commits(&stack.store.requests(), &stack.container);
    assert_eq!(after, commits, "a restore committed a blob");
}
