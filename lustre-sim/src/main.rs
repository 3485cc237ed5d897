//! `lustre-sim`: the simulated MDS daemon and `lfs` / `lctl` subsets (work in progress, see issue 3).
fn main() {
    eprintln!("lustre-sim: not built yet");
    std::process::exit(2);
}
