//! File layouts (stripe count, stripe size, OST pool), as the MDT keeps them in the `lov` EA.
//!
//! * A regular file gets a layout when it is created: the one the creator gave
//!   (`llapi_layout_file_open` with O_CREAT, `llapi_hsm_import`'s striping arguments) or the
//!   file system default (one 1 MiB stripe, no pool: `LOV_DESC_STRIPE_SIZE_DEFAULT`,
//!   `lov_desc.ld_default_stripe_count` = 1). `Node::layout` `None` is that default.
//! * A file opened with `O_LOV_DELAY_CREATE` has none until one is set (`ll_lov_setstripe_ea_info`
//!   through `fsetxattr("lustre.lov")`); a file that has one refuses another with EEXIST
//!   (`ll_lov_setstripe_ea_info` -> `lov_layout_change` is refused on an existing layout).
//!   Writing to a file without a layout fails (`lov_io_init_empty`: EBADF for writes), so a
//!   RESTORE whose volatile file never got its layout but carries data fails at its end.
//! * At the end of a RESTORE the MDT swaps the volatile file's layout into the file
//!   (`hsm_swap_layouts` in `mdt_coordinator.c`).
//!
//! Values use liblustreapi's conventions: `LLAPI_LAYOUT_DEFAULT` for "not chosen".

use super::state::{Req, State};
use crate::fid::Fid;
use lustre_sys::LLAPI_LAYOUT_DEFAULT;
use serde::{Deserialize, Serialize};

type Res<T> = Result<T, i32>;

/// The file system default stripe size (1 MiB).
pub const DEFAULT_STRIPE_SIZE: u64 = 1 << 20;
/// The file system default stripe count.
pub const DEFAULT_STRIPE_COUNT: u64 = 1;

/// A plain layout; `LLAPI_LAYOUT_DEFAULT` in a field means "the file system default".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LayoutAttrs {
    pub stripe_count: u64,
    pub stripe_size: u64,
    /// Empty for none.
    #[serde(default)]
    pub pool: String,
}

impl Default for LayoutAttrs {
    /// Every attribute left to the file system (`llapi_layout_alloc`).
    fn default() -> Self {
        LayoutAttrs {
            stripe_count: LLAPI_LAYOUT_DEFAULT,
            stripe_size: LLAPI_LAYOUT_DEFAULT,
            pool: String::new(),
        }
    }
}

impl LayoutAttrs {
    /// The layout an object instantiated with these attributes has: the defaults filled in
    /// (`lod_qos_prep_create` / `lod_fix_desc_*`).
    pub fn instantiated(&self) -> LayoutAttrs {
        let pick = |v: u64, dflt: u64| if v == LLAPI_LAYOUT_DEFAULT { dflt } else { v };
        LayoutAttrs {
            stripe_count: pick(self.stripe_count, DEFAULT_STRIPE_COUNT),
            stripe_size: pick(self.stripe_size, DEFAULT_STRIPE_SIZE),
            pool: self.pool.clone(),
        }
    }

    /// `llapi_hsm_import`'s striping arguments (0 = default, as `llapi_file_open_pool` takes
    /// them; NULL or "" pool = none).
    pub fn from_import(stripe_count: i32, stripe_size: u64, pool: &str) -> LayoutAttrs {
        LayoutAttrs {
            stripe_count: if stripe_count <= 0 {
                LLAPI_LAYOUT_DEFAULT
            } else {
                stripe_count as u64
            },
            stripe_size: if stripe_size == 0 {
                LLAPI_LAYOUT_DEFAULT
            } else {
                stripe_size
            },
            pool: pool.to_string(),
        }
        .instantiated()
    }
}

/// Where a layout of a RESTORE's volatile file stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub enum VolatileLayout {
    /// Created without O_LOV_DELAY_CREATE: the default layout, instantiated at once.
    #[default]
    Instantiated,
    /// Created with O_LOV_DELAY_CREATE, nothing set yet.
    Delayed,
    /// Set after a delayed create.
    Set(LayoutAttrs),
}

impl VolatileLayout {
    fn current(&self) -> Option<LayoutAttrs> {
        match self {
            VolatileLayout::Instantiated => Some(LayoutAttrs::default().instantiated()),
            VolatileLayout::Delayed => None,
            VolatileLayout::Set(l) => Some(l.clone()),
        }
    }
}

impl State {
    /// The active RESTORE whose volatile file is `dfid`.
    fn volatile_req(&mut self, dfid: &Fid) -> Option<u64> {
        self.reqs
            .iter()
            .find(|(_, r)| r.volatile.is_some() && r.dfid == *dfid && r.active())
            .map(|(c, _)| *c)
    }

    /// The layout of a file or of a RESTORE's volatile file. A volatile file created with
    /// O_LOV_DELAY_CREATE and no layout yet reads as all-default (what `llapi_layout_get_by_fd`
    /// builds when the `lov` EA is absent).
    pub fn layout_get(&mut self, fid: &Fid) -> Res<LayoutAttrs> {
        if let Some(n) = self.nodes.get(fid) {
            return Ok(n
                .layout
                .clone()
                .unwrap_or_else(|| LayoutAttrs::default().instantiated()));
        }
        let c = self.volatile_req(fid).ok_or(libc::ENOENT)?;
        Ok(self.reqs[&c].volatile_layout.current().unwrap_or_default())
    }

    /// Sets the layout of a file that has none: a volatile file created with
    /// O_LOV_DELAY_CREATE, or a file the caller has just created (`created`, the
    /// `llapi_layout_file_open(O_CREAT)` path, where Lustre passes the layout with the create).
    pub fn layout_set(&mut self, fid: &Fid, attrs: &LayoutAttrs, created: bool) -> Res<()> {
        let attrs = attrs.instantiated();
        if let Some(n) = self.nodes.get_mut(fid) {
            if !created || n.layout.is_some() {
                return Err(libc::EEXIST);
            }
            n.layout = Some(attrs);
            self.touch_node(*fid);
            return Ok(());
        }
        let c = self.volatile_req(fid).ok_or(libc::ENOENT)?;
        let Some(r) = self.reqs.get_mut(&c) else {
            return Err(libc::ENOENT);
        };
        if r.volatile_layout != VolatileLayout::Delayed {
            return Err(libc::EEXIST);
        }
        r.volatile_layout = VolatileLayout::Set(attrs);
        self.touch_req(c);
        Ok(())
    }

    /// The layout a RESTORE gives its file (`hsm_swap_layouts` takes the volatile file's). A
    /// delayed volatile file that never got one but holds data was written without a layout,
    /// which Lustre refuses (`lov_io_init_empty`): EBADF.
    pub fn restored_layout(r: &Req, volatile_size: u64) -> Res<LayoutAttrs> {
        match r.volatile_layout.current() {
            Some(l) => Ok(l),
            None if volatile_size == 0 => Ok(LayoutAttrs::default().instantiated()),
            None => Err(libc::EBADF),
        }
    }
}
