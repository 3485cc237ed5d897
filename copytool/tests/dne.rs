//! RESTORE on a file system with several MDTs (issue 12 item 2): the volatile file must be created
//! on the file's own MDT, whose coordinator holds the request. The simulator places the volatile
//! file on the MDT `llapi_hsm_action_begin` names (or where its random name hashes, for -1) and
//! routes progress and end by the volatile file's FID, answering -ENOENT from the wrong MDT.

use e2e::copytool_suite as harness;

use harness::{pattern, read_all, Env, BLOCK};
use testkit::sim::SimOptions;

#[test]
fn restores_on_every_mdt_create_the_volatile_file_on_the_file_s_mdt() {
    let env = Env::start_with(
        SimOptions {
            mdts: 2,
            ..Default::default()
        },
        "",
    );
    let ct = env.copytool(&[]);
    // Directories are spread over the MDTs by name; files live on their directory's MDT.
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..8u8)
        .map(|i| {
            let data = pattern(BLOCK + usize::from(i), i);
            (env.write(&format!("dne{i}/f.bin"), &data), data)
        })
        .collect();
    // The simulator's FID sequences: 0x200000400 + MDT index * 0x40000000.
    let mut mdts: Vec<u64> = files
        .iter()
        .map(|(p, _)| {
            let (ok, out) = env.lfs(&["path2fid", p.to_str().unwrap()]);
            assert!(ok, "{out}");
            let seq = out
                .trim()
                .trim_start_matches("[0x")
                .split(':')
                .next()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .unwrap_or_else(|| panic!("fid {out}"));
            (seq - 0x2_0000_0400) / 0x4000_0000
        })
        .collect();
    mdts.sort_unstable();
    mdts.dedup();
    assert_eq!(mdts, vec![0, 1], "files on both MDTs");
    for (p, _) in &files {
        env.hsm("hsm_archive", p, None);
    }
    for (p, _) in &files {
        env.wait_state(p, "exists archived", &[&ct]);
        env.hsm("hsm_release", p, None);
    }
    for (p, _) in &files {
        env.wait_state(p, "released exists archived", &[&ct]);
        env.hsm("hsm_restore", p, None);
    }
    for (p, data) in &files {
        env.wait_state(p, "exists archived", &[&ct]);
        assert_eq!(&read_all(p), data, "{}", p.display());
    }
    assert!(!ct.log().contains("action failed"), "{}", ct.log());
}
