//! `lhsmtool_blob`: the HSM copytool (work in progress, see issue 5).
fn main() {
    eprintln!("lhsmtool_blob: not built yet");
    std::process::exit(2);
}
