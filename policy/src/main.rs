//! `lustre-blob`: the policy engine and admin CLI (work in progress, see issue 6).
fn main() {
    eprintln!("lustre-blob: not built yet");
    std::process::exit(2);
}
