//! Safe Lustre API over liblustreapi: FIDs, typed changelog records and a changelog reader,
//! HSM copytool sessions, HSM user requests, state, import, fid2path / path2fid / open by FID.
//! Nothing here knows about blobs.
//!
//! # Pure values and codecs (no FFI; the simulator uses these)
//! * [`Fid`]: `Display` = `DFID` (`[0x200000401:0x1:0x0]`, zero seq prints `0`),
//!   [`Fid::nobrace`], `FromStr` with or without brackets, [`Fid::is_zero`],
//!   `From`/`Into` [`lustre_sys::lu_fid`], [`Fid::to_bytes`]/[`Fid::from_bytes`].
//! * [`ChangelogRecord`] (+ [`RecordType`], [`RenameExt`], [`Nid`], [`HsmEventInfo`],
//!   [`HsmEvent`]); [`ActionList`]/[`ActionItem`]/[`CopytoolAction`];
//!   [`UserRequest`]/[`UserAction`]; [`Extent`]; [`HsmState`]; [`CurrentAction`].
//! * [`wire`]: `decode_changelog`/`encode_changelog` (2.15 and 2.16 shapes decode; 2.16 shape
//!   encoded), `changelog_layout`, `decode_hal`/`encode_hal`/`encode_hai`,
//!   `decode_hur`/`encode_hur`/`hur_len`/`split_requests`, KUC framing for the copytool pipe.
//!
//! # Library calls (liblustreapi loaded at run time from `$LUSTREAPI_LIB` or `liblustreapi.so.1`)
//! * [`Mount`]: `open`, `root`, `fsname`, `mdt_name`, `fid2path` (every link), `path2fid`,
//!   `fd2fid`, `open_by_fid`, `mdt_index`, `hsm_state`, `hsm_state_set`, `hsm_current_action`,
//!   `hsm_request` (batched under the 1706-byte limit), `hsm_import`, `data_version`.
//! * [`ChangelogReader`] (`start`, `recv`, `fd`, `in_buf`; `fini` on drop) and
//!   [`changelog_clear`].
//! * [`Copytool`] (`register`, `recv`, `fd`, `begin`, `begin_error`, `unregister`; `Send + Sync`)
//!   and [`CopyAction`] (`progress`, `fd`, `dfid`, `end`). Exactly-one-end rule: `end` consumes
//!   the action; dropping it without `end` ends it with `EIO` (and says so on stderr).
//! * [`Layout`] (owned `llapi_layout`: `new`, `of_file`, `of_path`, `from_striping`, getters
//!   and setters, `striping`, `apply_to` a volatile file) and the checked value [`Striping`]
//!   (stripe count, size, pool) kept in export records and blob metadata.
//! * [`set_log_level`], [`set_log_handler`], [`clear_log_handler`]: the library's messages.
//!
//! Every failure is an [`Error`] naming the call and keeping its errno ([`Error::errno`]);
//! a missing library is [`Error::LibraryNotFound`] naming every path tried.

#![warn(missing_docs)]

mod changelog;
mod changelog_reader;
mod copytool;
mod error;
mod ffi;
mod fid;
mod hsm;
mod layout;
mod log;
mod mount;
mod striping;
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
pub use layout::{layouts_supported, Layout};
pub use log::{clear_log_handler, set_log_handler, set_log_level, LogMessage};
pub use lustre_sys;
pub use mount::{mdt_name, ImportAttrs, Mount};
pub use striping::{Striping, StripingError, DEFAULT_STRIPE_SIZE};
