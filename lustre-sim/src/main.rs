//! `lustre-sim mds|lfs|lctl ...`: the simulated MDS daemon and the `lfs` / `lctl` subsets.
//! Installed (or symlinked) under the name `lfs` or `lctl`, it acts as that tool, so
//! documented commands run verbatim.

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: lustre-sim mds --mount DIR [--fsname NAME] [--mdts N] | lustre-sim test-agent MOUNT [--archive N] [--end] | lustre-sim lfs CMD ... | lustre-sim lctl CMD ...");
    std::process::exit(2);
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let argv0 = std::path::Path::new(args.first().map(String::as_str).unwrap_or(""))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    if argv0 == "lfs" || argv0 == "lctl" {
        args[0] = argv0;
    } else {
        args.remove(0);
    }
    let Some(cmd) = args.first() else { usage() };
    match cmd.as_str() {
        "mds" => {
            let mut mount = None;
            let mut fsname = "lustre".to_string();
            let mut mdts = 1u32;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--mount" => mount = it.next().map(PathBuf::from),
                    "--fsname" => fsname = it.next().cloned().unwrap_or_default(),
                    "--mdts" => match it.next().and_then(|v| v.parse::<u32>().ok()) {
                        Some(n) if (1..=16).contains(&n) => mdts = n,
                        _ => {
                            eprintln!("lustre-sim mds: --mdts takes a number from 1 to 16");
                            std::process::exit(2);
                        }
                    },
                    _ => usage(),
                }
            }
            let Some(mount) = mount else { usage() };
            if let Err(e) = lustreapi_sim::mds::run(lustreapi_sim::mds::Options {
                mount,
                fsname,
                mdts,
            }) {
                eprintln!("lustre-sim mds: {e}");
                std::process::exit(1);
            }
        }
        "test-agent" => {
            let Some(mount) = args.get(1) else { usage() };
            let mut archive = None;
            let mut end = false;
            let mut rest = args[2..].iter();
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--archive" => match rest.next().and_then(|v| v.parse().ok()) {
                        Some(n) => archive = Some(n),
                        None => usage(),
                    },
                    "--end" => end = true,
                    _ => usage(),
                }
            }
            if let Err(e) = lustreapi_sim::agent::run(std::path::Path::new(mount), archive, end) {
                eprintln!("lustre-sim test-agent: {e}");
                std::process::exit(1);
            }
        }
        "lfs" | "lctl" => {
            let r = if cmd == "lfs" {
                lustreapi_sim::cli::lfs(&args[1..])
            } else {
                lustreapi_sim::cli::lctl(&args[1..])
            };
            if let Err(lustreapi_sim::cli::Fail(msg)) = r {
                eprintln!("{msg}");
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}
