//! Progress of long work for a person (`export --wait`, `import --wait`, `verify`): files, MiB,
//! rate and ETA. On a terminal a bar redrawn in place; otherwise (a log, a pipe, cron) a plain
//! line now and then, and always one at the end, so a log shows that the work moved.

use std::time::Duration;

/// How often a plain line is written when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the bar is redrawn on a terminal.
const TTY_EVERY: Duration = Duration::from_millis(200);

const MIB: f64 = 1_048_576.0;

fn n(j: &serde_json::Value, k: &str) -> u64 {
    j.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// `1m05s`-style duration.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Done, total (when known), the percentage and the one-line text of a job after `elapsed`.
pub fn job_line(j: &serde_json::Value, elapsed: Duration) -> (Option<u64>, String) {
    let id = j.get("id").and_then(|v| v.as_str()).unwrap_or("job");
    let state = j.get("state").and_then(|v| v.as_str()).unwrap_or("");
    let secs = elapsed.as_secs_f64().max(0.001);
    if j.get("kind").and_then(|v| v.as_str()) == Some("import") {
        let walked = n(j, "totalBlobsWalked");
        let imported = n(j, "totalBlobsImported");
        let text = format!(
            "{id} {state}: {walked} blobs walked, {imported} imported, {} errors, {:.1} blobs/s",
            n(j, "totalErrors"),
            walked as f64 / secs
        );
        return (None, text);
    }
    let total = n(j, "filesDiscovered");
    let done = n(j, "filesExported") + n(j, "filesAlreadyExported") + n(j, "filesFailed");
    let (mib, mib_total) = (
        n(j, "bytesExported") as f64 / MIB,
        n(j, "bytesDiscovered") as f64 / MIB,
    );
    let files_rate = done as f64 / secs;
    let mib_rate = mib / secs;
    // The scan may still find files: an ETA only once it is over.
    let eta = if state == "InProgress" && files_rate > 0.0 && total > done {
        format!(
            ", ETA {}",
            short(Duration::from_secs_f64((total - done) as f64 / files_rate))
        )
    } else {
        String::new()
    };
    let pct = j.get("percentComplete").and_then(|v| v.as_u64());
    (
        pct,
        format!(
            "{id} {state}: {done}/{total} files, {mib:.1}/{mib_total:.1} MiB, {files_rate:.1} files/s, {mib_rate:.1} MiB/s{eta}"
        ),
    )
}

/// A 20-character bar for a percentage.
pub fn bar(pct: u64) -> String {
    let filled = (pct.min(100) / 5) as usize;
    format!(
        "[{}{}] {pct:>3}%",
        "#".repeat(filled),
        ".".repeat(20 - filled)
    )
}

/// Decides when to write: on a terminal every call (redrawn), otherwise every [`PLAIN_EVERY`]
/// and at the end.
pub struct Reporter {
    tty: bool,
    last: Option<std::time::Instant>,
}

impl Reporter {
    /// A reporter that draws in place on a terminal (`tty`) or prints lines otherwise.
    pub fn new(tty: bool) -> Reporter {
        Reporter { tty, last: None }
    }

    /// The text to write to stderr now (with its line ending), or `None`.
    pub fn update(&mut self, pct: Option<u64>, line: &str, last: bool) -> Option<String> {
        if self.tty {
            // Redrawn in place, at most five times a second.
            let due = self.last.is_none_or(|t| t.elapsed() >= TTY_EVERY);
            if !due && !last {
                return None;
            }
            self.last = Some(std::time::Instant::now());
            let b = pct.map(|p| format!("{} ", bar(p))).unwrap_or_default();
            return Some(format!("\r{b}{line}   {}", if last { "\n" } else { "" }));
        }
        let due = self.last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
        if due || last {
            self.last = Some(std::time::Instant::now());
            return Some(format!("{line}\n"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_export_line_has_files_mib_rates_and_an_eta_once_scanned() {
        let j = json!({"id": "export-2", "kind": "export", "state": "InProgress", "percentComplete": 50,
            "filesDiscovered": 100, "filesExported": 40, "filesAlreadyExported": 10, "filesFailed": 0,
            "bytesDiscovered": 200u64 << 20, "bytesExported": 100u64 << 20});
        let (pct, line) = job_line(&j, Duration::from_secs(10));
        assert_eq!(pct, Some(50));
        assert_eq!(
            line,
            "export-2 InProgress: 50/100 files, 100.0/200.0 MiB, 5.0 files/s, 10.0 MiB/s, ETA 10s"
        );
        let scanning = json!({"id": "export-2", "state": "FSScanInProgress", "filesDiscovered": 9, "filesExported": 1});
        assert!(!job_line(&scanning, Duration::from_secs(1))
            .1
            .contains("ETA"));
    }

    #[test]
    fn an_import_line_counts_blobs() {
        let j = json!({"id": "import-3", "kind": "import", "state": "InProgress",
            "totalBlobsWalked": 30, "totalBlobsImported": 20, "totalErrors": 1});
        assert_eq!(
            job_line(&j, Duration::from_secs(3)).1,
            "import-3 InProgress: 30 blobs walked, 20 imported, 1 errors, 10.0 blobs/s"
        );
    }

    #[test]
    fn plain_output_is_periodic_and_always_ends_with_a_line() {
        let mut r = Reporter::new(false);
        assert_eq!(
            r.update(None, "a", false).as_deref(),
            Some("a\n"),
            "the first at once"
        );
        assert_eq!(
            r.update(None, "b", false),
            None,
            "not again before PLAIN_EVERY"
        );
        assert_eq!(
            r.update(None, "c", true).as_deref(),
            Some("c\n"),
            "the last always"
        );
        let mut t = Reporter::new(true);
        assert_eq!(
            t.update(Some(50), "x", false).as_deref(),
            Some("\r[##########..........]  50% x   ")
        );
        assert!(t.update(Some(100), "y", true).unwrap().ends_with('\n'));
        assert_eq!(short(Duration::from_secs(65)), "1m05s");
        assert_eq!(short(Duration::from_secs(7300)), "2h01m");
    }
}
