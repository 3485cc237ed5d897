//! The closed vocabularies of jobs, with Azure's names on the wire (`jobs --json`, `jobs.json`,
//! `status --json`): a job's kind and state, and import's conflict resolution mode.

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// The changelog-driven export (`autoexport`, `autoexport-N` when ended).
    AutoExport,
    /// A manual export of a path.
    Export,
    /// An import of blobs into the file system.
    Import,
}

impl JobKind {
    /// The name on the wire, which also starts the job's id (`export-3`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::AutoExport => "autoexport",
            JobKind::Export => "export",
            JobKind::Import => "import",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job (or auto-export) is. The names are Azure's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Created, not started.
    Idle,
    /// A manual export is still walking its tree.
    FSScanInProgress,
    /// Running.
    InProgress,
    /// Asked to stop; in-flight work is settling.
    Cancelling,
    /// Stopped on request.
    Canceled,
    /// Ended with everything done.
    Completed,
    /// Ended by an error.
    Failed,
    /// Auto-export disabled with work still in flight.
    Disabling,
    /// Auto-export off.
    Disabled,
}

impl JobState {
    /// Azure's name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Idle => "Idle",
            JobState::FSScanInProgress => "FSScanInProgress",
            JobState::InProgress => "InProgress",
            JobState::Cancelling => "Cancelling",
            JobState::Canceled => "Canceled",
            JobState::Completed => "Completed",
            JobState::Failed => "Failed",
            JobState::Disabling => "Disabling",
            JobState::Disabled => "Disabled",
        }
    }

    /// Still running (a manual job in these states blocks another).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            JobState::Idle
                | JobState::FSScanInProgress
                | JobState::InProgress
                | JobState::Cancelling
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Azure's import conflict resolution modes: what import does with a file that already exists.
/// (Not `lustre_blob_config::ConflictMode`, which says what auto-export does with a blob that
/// changed behind its back.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportConflictMode {
    /// The job fails when any file exists.
    Fail,
    /// Existing files are left alone.
    Skip,
    /// Existing files are replaced unless they hold data not exported yet.
    OverwriteIfDirty,
    /// Existing files are replaced.
    OverwriteAlways,
}

impl std::str::FromStr for ImportConflictMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fail" => Ok(ImportConflictMode::Fail),
            "skip" => Ok(ImportConflictMode::Skip),
            "overwriteifdirty" | "overwrite-if-dirty" => Ok(ImportConflictMode::OverwriteIfDirty),
            "overwritealways" | "overwrite-always" => Ok(ImportConflictMode::OverwriteAlways),
            _ => Err(format!(
                "unknown conflict mode \"{s}\" (Fail, Skip, OverwriteIfDirty, OverwriteAlways)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_carry_azures_names() {
        assert_eq!(
            serde_json::to_string(&JobKind::AutoExport).unwrap(),
            "\"autoexport\""
        );
        for s in [
            JobState::FSScanInProgress,
            JobState::Canceled,
            JobState::Cancelling,
            JobState::Disabling,
        ] {
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<JobState>(&j).unwrap(), s);
        }
        assert!(JobState::Cancelling.is_running() && !JobState::Canceled.is_running());
    }

    #[test]
    fn conflict_modes_parse_both_spellings() {
        assert_eq!(
            "overwrite-if-dirty".parse::<ImportConflictMode>(),
            Ok(ImportConflictMode::OverwriteIfDirty)
        );
        assert_eq!("Skip".parse(), Ok(ImportConflictMode::Skip));
        let e = "replace".parse::<ImportConflictMode>().unwrap_err();
        assert!(e.contains("\"replace\""), "{e}");
    }
}
