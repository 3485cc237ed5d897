//! Safe Lustre API over liblustreapi: FIDs, typed changelog records and a changelog reader,
//! HSM copytool sessions, HSM user requests, state, import, fid2path / path2fid / open by FID.
//! Nothing here knows about blobs.
//!
//! * [`Fid`] prints and parses exactly like C's `DFID`.
//! * [`wire`] holds the pure byte codecs (changelog records, action lists, user requests, KUC
//!   framing) and has no FFI: the simulator uses it to produce what Lustre would.
//! * [`Mount`], [`ChangelogReader`], [`changelog_clear`], [`Copytool`], [`CopyAction`] call the
//!   library, loaded at run time from `$LUSTREAPI_LIB` or `liblustreapi.so.1`
//!   (see [`lustre_sys::lib`]). Every failure is an [`Error`] naming the call and its errno.
//!
//! Exactly-one-end rule: a [`CopyAction`] is consumed by [`CopyAction::end`]; dropping it
//! without `end` ends it with `EIO`.

mod changelog;
mod changelog_reader;
mod copytool;
mod error;
mod ffi;
mod fid;
mod hsm;
mod log;
mod mount;
pub mod wire;

pub use changelog::{ChangelogRecord, HsmEvent, HsmEventInfo, Nid, RecordType, RenameExt};
pub use changelog_reader::{changelog_clear, start_flags, ChangelogReader, EXTRA_FLAGS};
pub use copytool::{CopyAction, Copytool};
pub use error::{Error, Result};
pub use fid::{Fid, NoBrace, ParseFidError, FID_BYTES};
pub use hsm::{
    ActionItem, ActionList, CopytoolAction, CurrentAction, Extent, HsmState, ProgressState,
    UserAction, UserRequest,
};
pub use log::{clear_log_handler, set_log_handler, set_log_level, LogMessage};
pub use lustre_sys;
pub use mount::{mdt_name, ImportAttrs, Mount};
