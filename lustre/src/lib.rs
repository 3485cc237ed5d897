//! Safe Lustre API: FIDs, typed changelog records, copytool sessions, HSM requests.
//! Nothing here knows about blobs.
//!
//! * [`Fid`] — parse/print exactly like `DFID`.
//! * [`wire`] — pure byte codecs (changelog records, action lists, user requests, KUC framing);
//!   no FFI, usable by the simulator.
//! * [`ChangelogRecord`], [`ActionList`], [`UserRequest`], [`HsmState`], ... — typed values.

mod changelog;
mod fid;
mod hsm;
pub mod wire;

pub use changelog::{ChangelogRecord, HsmEvent, HsmEventInfo, Nid, RecordType, RenameExt};
pub use fid::{Fid, NoBrace, ParseFidError, FID_BYTES};
pub use hsm::{
    ActionItem, ActionList, CopytoolAction, CurrentAction, Extent, HsmState, ProgressState,
    UserAction, UserRequest,
};
