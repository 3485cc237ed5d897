//! `lustre-sim lfs ...` and `lustre-sim lctl ...`: the subsets of the real tools this project
//! uses, printing what they print. They use the same client paths as liblustreapi_sim.so.

use crate::client::{self, Res};
use crate::consts::*;
use crate::proto::{self, Request};
use std::path::{Path, PathBuf};

/// A failed command: the one line to print (exit status 1).
pub struct Fail(pub String);

type Out = Result<(), Fail>;

pub(crate) fn strerror(e: i32) -> String {
    std::io::Error::from_raw_os_error(e)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or("")
        .to_string()
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(msg.into()))
}

pub fn lfs(args: &[String]) -> Out {
    let Some(cmd) = args.first() else {
        return fail("lfs: missing command");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "path2fid" => path2fid(rest),
        "fid2path" => fid2path(rest),
        "hsm_state" => each_file(rest, "hsm_state", hsm_state),
        "hsm_action" => each_file(rest, "hsm_action", hsm_action),
        "hsm_archive" => hsm_req(rest, HUA_ARCHIVE, "hsm_archive"),
        "hsm_restore" => hsm_req(rest, HUA_RESTORE, "hsm_restore"),
        "hsm_release" => hsm_req(rest, HUA_RELEASE, "hsm_release"),
        "hsm_remove" => hsm_req(rest, HUA_REMOVE, "hsm_remove"),
        "hsm_cancel" => hsm_req(rest, HUA_CANCEL, "hsm_cancel"),
        "changelog" => changelog(rest),
        "getstripe" => crate::layout_cli::getstripe(rest),
        "setstripe" => crate::layout_cli::setstripe(rest),
        "changelog_clear" => {
            let [dev, id, end] = rest else {
                return fail("lfs changelog_clear: usage: changelog_clear <mdtname> <id> <endrec>");
            };
            let end: i64 = end
                .parse()
                .map_err(|_| Fail(format!("lfs changelog_clear: bad endrec '{end}'")))?;
            client::changelog_clear(dev, id, end).or_else(|e| {
                fail(format!(
                    "lfs changelog_clear: cannot purge records for '{id}': {} ({e})",
                    strerror(e)
                ))
            })
        }
        _ => fail(format!("lfs: unknown command '{cmd}'")),
    }
}

fn path2fid(rest: &[String]) -> Out {
    if rest.is_empty() {
        return fail("lfs path2fid: no file given");
    }
    for p in rest {
        match client::path2fid(Path::new(p)) {
            Ok(f) if rest.len() == 1 => println!("{f}"),
            Ok(f) => println!("{p}: {f}"),
            Err(e) => {
                return fail(format!(
                    "lfs path2fid: can't get fid for {p}: {}",
                    strerror(e)
                ))
            }
        }
    }
    Ok(())
}

fn fid2path(rest: &[String]) -> Out {
    let [dev, fids @ ..] = rest else {
        return fail("lfs fid2path: usage: fid2path <fsname|root> <fid>...");
    };
    if fids.is_empty() {
        return fail("lfs fid2path: usage: fid2path <fsname|root> <fid>...");
    }
    let (mount, _) = client::device_mount(dev).map_err(|e| {
        Fail(format!(
            "lfs fid2path: cannot find mount for '{dev}': {}",
            strerror(e)
        ))
    })?;
    for s in fids {
        let Some(fid) = crate::fid::parse(s) else {
            return fail(format!("lfs fid2path: invalid FID '{s}'"));
        };
        let mut link = 0u32;
        loop {
            match client::fid2path(&mount, &fid, link) {
                Ok((p, next)) => {
                    if p.is_empty() {
                        println!("{}", mount.display());
                    } else {
                        println!("{}/{}", mount.display(), p);
                    }
                    if next == link {
                        break;
                    }
                    link = next;
                }
                Err(e) => {
                    return fail(format!(
                        "lfs fid2path: cannot find {dev} {s}: {}",
                        strerror(e)
                    ))
                }
            }
        }
    }
    Ok(())
}

fn each_file(rest: &[String], cmd: &str, f: fn(&Path, &str) -> Res<()>) -> Out {
    if rest.is_empty() {
        return fail(format!("lfs {cmd}: no file given"));
    }
    for p in rest {
        f(Path::new(p), p).or_else(|e| fail(format!("lfs {cmd}: '{p}': {}", strerror(e))))?;
    }
    Ok(())
}

fn hsm_state(path: &Path, shown: &str) -> Res<()> {
    let (mount, _) = client::rel_in_mount(path)?;
    let fid = client::path2fid(path)?;
    let s = client::hsm_state(&mount, &fid)?;
    let mut line = format!("{}:\t(0x{:08x})", shown, s.states);
    for n in hsm_state_names(s.states) {
        line.push(' ');
        line.push_str(n);
    }
    if s.archive_id != 0 {
        line.push_str(&format!(", archive_id:{}", s.archive_id));
    }
    println!("{line}");
    Ok(())
}

fn hsm_action(path: &Path, shown: &str) -> Res<()> {
    let (mount, _) = client::rel_in_mount(path)?;
    let fid = client::path2fid(path)?;
    let a = client::current_action(&mount, &fid)?;
    let st = ["NONE", "WAITING", "RUNNING", "DONE"]
        .get(a.state as usize)
        .copied()
        .unwrap_or("UNKNOWN");
    if a.state == HPS_RUNNING {
        println!(
            "{}: {} {} ({} bytes moved)",
            shown,
            hsm_user_action_name(a.action),
            st,
            a.length
        );
    } else {
        println!("{}: {} {}", shown, hsm_user_action_name(a.action), st);
    }
    Ok(())
}

fn hsm_req(rest: &[String], action: u32, cmd: &str) -> Out {
    let mut archive = 0u32;
    let mut data = Vec::new();
    let mut files: Vec<&String> = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-a" | "--archive" => {
                let v = it
                    .next()
                    .ok_or_else(|| Fail(format!("lfs {cmd}: -a needs an archive id")))?;
                archive = v
                    .parse()
                    .map_err(|_| Fail(format!("lfs {cmd}: invalid archive id '{v}'")))?;
            }
            "-d" | "--data" => {
                data = it
                    .next()
                    .ok_or_else(|| Fail(format!("lfs {cmd}: --data needs a value")))?
                    .as_bytes()
                    .to_vec()
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        return fail(format!("lfs {cmd}: no file given"));
    }
    let mut mount: Option<PathBuf> = None;
    let mut items = Vec::new();
    for f in &files {
        let (m, _) = client::rel_in_mount(Path::new(f))
            .map_err(|e| Fail(format!("lfs {cmd}: '{f}': {}", strerror(e))))?;
        let fid = client::path2fid(Path::new(f))
            .map_err(|e| Fail(format!("lfs {cmd}: '{f}': {}", strerror(e))))?;
        mount = Some(m);
        items.push((fid, 0u64, u64::MAX));
    }
    let Some(mount) = mount else {
        return fail(format!("lfs {cmd}: no file given"));
    };
    for chunk in items.chunks(52) {
        client::hsm_request(&mount, action, archive, 0, chunk.to_vec(), data.clone()).map_err(
            |e| {
                Fail(format!(
                    "lfs {cmd}: cannot send HSM request (use of {}): {}",
                    files[0],
                    strerror(e)
                ))
            },
        )?;
    }
    Ok(())
}

/// `lfs changelog`: the record line format of the real tool.
pub fn format_record(r: &crate::record::Rec) -> String {
    let secs = r.time >> 30;
    let nsec = r.time & 0x3FFF_FFFF;
    let (y, mo, d, h, mi, s) = civil(secs as i64);
    let tname = CL_NAMES.get(r.rtype as usize).copied().unwrap_or("UNKNW");
    let mut line = format!(
        "{} {:02}{:<5} {:02}:{:02}:{:02}.{:09} {:04}.{:02}.{:02} 0x{:x} t={}",
        r.index, r.rtype, tname, h, mi, s, nsec, y, mo, d, r.flags, r.tfid
    );
    if let Some(j) = &r.jobid {
        if !j.is_empty() {
            line.push_str(&format!(" j={j}"));
        }
    }
    if r.extra {
        line.push_str(&format!(" ef=0x{:x}", r.extra_bits()));
        if let Some((u, g)) = r.uidgid {
            line.push_str(&format!(" u={u}:{g}"));
        }
        if let Some(n) = r.nid {
            line.push_str(&format!(" nid={}", nid_text(n)));
        }
        if let Some(x) = &r.xattr {
            line.push_str(&format!(" x={x}"));
        }
    }
    // lfs.c lfs_changelog: the target parent and new name first, then the rename's source
    // (`p=[pfid] new s=[sfid] sp=[spfid] old`), as real 2.16.1 prints it (REAL_LUSTRE.md row 11).
    if r.pfid != crate::fid::Fid::default() {
        line.push_str(&format!(" p={}", r.pfid));
    }
    let new = r.name.split(|&c| c == 0).next().unwrap_or(&[]);
    if !new.is_empty() {
        line.push_str(&format!(" {}", String::from_utf8_lossy(new)));
    }
    if let Some((s, sp)) = r.rename {
        let old = r
            .name
            .iter()
            .position(|&c| c == 0)
            .map(|p| &r.name[p + 1..])
            .unwrap_or(&[]);
        line.push_str(&format!(
            " s={} sp={} {}",
            s,
            sp,
            String::from_utf8_lossy(old)
        ));
    }
    line
}

/// A NID as `libcfs_nidstr` prints it: `0@lo`, `a.b.c.d@tcp[N]`, else `addr@<lnd:num>` (the
/// coordinator's zero NID is `0@<0:0>`).
pub fn nid_text(n: lustre::Nid) -> String {
    let (lnd, num, addr) = match n {
        lustre::Nid::Nid4(raw) => (((raw >> 48) & 0xFFFF) as u8, (raw >> 32) as u16, raw as u32),
        lustre::Nid::Large { lnd, num, addr, .. } => (lnd, num, addr[0]),
    };
    let net = |name: &str| {
        if num == 0 {
            name.to_string()
        } else {
            format!("{name}{num}")
        }
    };
    match lnd {
        LNET_LND_LO => "0@lo".to_string(),
        2 => format!("{}@{}", std::net::Ipv4Addr::from(addr), net("tcp")),
        5 => format!("{}@{}", std::net::Ipv4Addr::from(addr), net("o2ib")),
        _ => format!("{addr}@<{lnd}:{num}>"),
    }
}

/// Days-from-civil inverse (UTC), enough for printing record times.
fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86400);
    let rem = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

fn changelog(rest: &[String]) -> Out {
    let Some(dev) = rest.first() else {
        return fail("lfs changelog: usage: changelog <mdtname> [startrec [endrec]]");
    };
    let num = |s: Option<&String>| -> Result<Option<i64>, Fail> {
        match s {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Fail(format!("lfs changelog: bad record number '{v}'"))),
        }
    };
    let start = num(rest.get(1))?.unwrap_or(0);
    let end = num(rest.get(2))?;
    let mut st = client::ChangelogStream::start(
        dev,
        // 2.16's lfs asks for NID_BE (its records show ef=0x13)
        CHANGELOG_FLAG_JOBID | CHANGELOG_FLAG_EXTRA_FLAGS | CHANGELOG_FLAG_NID_BE,
        start,
    )
    .map_err(|e| {
        Fail(format!(
            "lfs changelog: cannot start changelog on '{dev}': {}",
            strerror(e)
        ))
    })?;
    st.xflags = CLFE_UIDGID | CLFE_NID | CLFE_OPEN | CLFE_XATTR;
    loop {
        match st.recv() {
            Ok(Some(r)) => {
                if end.is_some_and(|e| r.index as i64 > e) {
                    break;
                }
                println!("{}", format_record(&r));
            }
            Ok(None) => break,
            Err(e) => return fail(format!("lfs changelog: {}", strerror(e))),
        }
    }
    Ok(())
}

pub fn lctl(args: &[String]) -> Out {
    let mut device: Option<String> = None;
    let mut args = args.to_vec();
    if args.first().map(String::as_str) == Some("--device") {
        if args.len() < 2 {
            return fail("lctl: --device needs a device name");
        }
        device = Some(args[1].clone());
        args.drain(0..2);
    }
    let Some(cmd) = args.first().cloned() else {
        return fail("lctl: missing command");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "changelog_register" => {
            let Some(dev) = device else {
                return fail("lctl changelog_register: needs --device <fsname>-MDTxxxx");
            };
            let mut name = None;
            let mut bare = false;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-n" => bare = true,
                    "-u" | "--user" => name = it.next().cloned(),
                    "-m" | "--mask" => {
                        it.next();
                    }
                    other => {
                        return fail(format!("lctl changelog_register: unknown option '{other}'"))
                    }
                }
            }
            match client::changelog_register(&dev, name) {
                Ok(id) if bare => println!("{id}"),
                Ok(id) => println!("{dev}: Registered changelog userid '{id}'"),
                Err(e) => return fail(format!("lctl changelog_register: {dev}: {}", strerror(e))),
            }
            Ok(())
        }
        "changelog_deregister" => {
            let Some(dev) = device else {
                return fail("lctl changelog_deregister: needs --device <fsname>-MDTxxxx");
            };
            let Some(id) = rest.first() else {
                return fail("lctl changelog_deregister: needs a user id (clN)");
            };
            client::changelog_deregister(&dev, id).map_err(|e| {
                Fail(format!(
                    "lctl changelog_deregister: {dev}: {id}: {}",
                    strerror(e)
                ))
            })?;
            println!(
                "{dev}: Deregistered changelog user #{}",
                id.trim_start_matches("cl")
            );
            Ok(())
        }
        "get_param" => {
            let mut only_values = false;
            let mut pats = Vec::new();
            for a in rest {
                if a == "-n" {
                    only_values = true;
                } else {
                    pats.push(a.clone());
                }
            }
            if pats.is_empty() {
                return fail("lctl get_param: no parameter given");
            }
            for p in pats {
                let vals = param_call(&p, |m| {
                    proto::call_as::<Vec<(String, String)>>(
                        m,
                        &Request::GetParam { pattern: p.clone() },
                    )
                })
                .map_err(|e| {
                    Fail(format!(
                        "error: get_param: param_path '{p}': {}",
                        strerror(e)
                    ))
                })?;
                for (n, v) in vals.into_iter().flatten() {
                    // Multi-line values start on the line after "name=", as lctl prints them.
                    match (only_values, v.contains('\n')) {
                        (true, _) => println!("{v}"),
                        (false, true) => println!("{n}=\n{v}"),
                        (false, false) => println!("{n}={v}"),
                    }
                }
            }
            Ok(())
        }
        "set_param" => {
            if rest.is_empty() {
                return fail("lctl set_param: no parameter given");
            }
            for a in rest {
                let Some((n, v)) = a.split_once('=') else {
                    return fail(format!("error: set_param: setting {a}: no value given"));
                };
                param_call(n, |m| {
                    proto::call(
                        m,
                        &Request::SetParam {
                            name: n.to_string(),
                            value: v.to_string(),
                        },
                    )
                    .map(|_| ())
                })
                .map_err(|e| {
                    Fail(format!(
                        "error: set_param: setting '{n}'='{v}': {}",
                        strerror(e)
                    ))
                })?;
                println!("{n}={v}");
            }
            Ok(())
        }
        _ => fail(format!("lctl: unknown command '{cmd}'")),
    }
}

/// Runs a parameter call on every live simulated mount the pattern can match (only the mount
/// in `LUSTRE_SIM_MOUNT` when that is set); fails when none answered.
fn param_call<T>(pattern: &str, f: impl Fn(&Path) -> Res<T>) -> Res<Vec<T>> {
    let comp = pattern.split('.').nth(1).unwrap_or("*");
    let mounts = match std::env::var("LUSTRE_SIM_MOUNT") {
        Ok(m) => vec![(String::new(), PathBuf::from(m))],
        Err(_) => crate::mounts::live_mounts(),
    };
    let mut out = Vec::new();
    let mut last = libc::ENOENT;
    for (fs, m) in mounts {
        let may_match = fs.is_empty()
            || comp.contains('*')
            || comp.contains('?')
            || comp.starts_with(&format!("{fs}-"));
        if !may_match {
            continue;
        }
        match f(&m) {
            Ok(v) => out.push(v),
            Err(e) => last = e,
        }
    }
    if out.is_empty() {
        return Err(last);
    }
    Ok(out)
}

#[cfg(test)]
mod format_tests {
    use super::*;
    use crate::fid::Fid;
    use crate::record::{Rec, NID_LO_BE, NID_NONE_BE};

    fn fid(oid: u32) -> Fid {
        Fid {
            seq: 0x200000402,
            oid,
            ver: 0,
        }
    }

    #[test]
    fn a_rename_prints_target_then_source_as_lfs_does() {
        let r = Rec {
            rtype: CL_RENAME,
            index: 59,
            tfid: Fid::default(),
            pfid: fid(0xd),
            rename: Some((fid(0xe), fid(0xd))),
            extra: true,
            uidgid: Some((0, 0)),
            nid: Some(NID_LO_BE),
            name: b"b\0a".to_vec(),
            ..Default::default()
        };
        let line = format_record(&r);
        // real 2.16.1: "... ef=0x13 u=0:0 nid=0@lo p=[..:0xd:0x0] b s=[..:0xe:0x0] sp=[..] a"
        let tail = line.split_once(" ef=").map(|x| x.1).unwrap_or_default();
        assert_eq!(
            tail,
            "0x13 u=0:0 nid=0@lo p=[0x200000402:0xd:0x0] b s=[0x200000402:0xe:0x0] \
             sp=[0x200000402:0xd:0x0] a"
        );
    }

    #[test]
    fn nids_print_as_libcfs_nidstr() {
        assert_eq!(nid_text(NID_LO_BE), "0@lo");
        assert_eq!(nid_text(NID_NONE_BE), "0@<0:0>");
        assert_eq!(nid_text(lustre::Nid::Nid4(NID_LO)), "0@lo");
        assert_eq!(
            nid_text(lustre::Nid::Nid4(0x0002_0000_c0a8_141f)),
            "192.168.20.31@tcp"
        );
    }
}
