//! [`Striping`]: a plain file layout (stripe count, stripe size, OST pool) as a value, checked
//! with the rules liblustreapi applies before it sets a layout (`llapi_layout_stripe_count_set`,
//! `llapi_layout_stripe_size_set`, `llapi_layout_pool_name_set` in `liblustreapi_layout.c`,
//! limits from `lustre_user.h`). Kept in export records and blob metadata so a restore or an
//! import gives the file the layout it had; the FFI handle is [`crate::Layout`].

use lustre_sys::{LOV_MAXPOOLNAME, LOV_MAX_STRIPE_COUNT, LOV_MIN_STRIPE_SIZE};
use serde::{Deserialize, Serialize};

/// Lustre's default stripe size (`LOV_DESC_STRIPE_SIZE_DEFAULT`, 1 MiB).
pub const DEFAULT_STRIPE_SIZE: u64 = 1 << 20;

/// A plain (non-composite) RAID0 layout. Fields are private so every value passed the checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StripingFields", into = "StripingFields")]
pub struct Striping {
    stripe_count: u32,
    stripe_size: u64,
    pool: Option<String>,
}

/// Why a stripe count, size or pool name cannot be a layout (one line, names the value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripingError {
    /// A stripe count out of range.
    #[error("stripe count {0} is not between 1 and {LOV_MAX_STRIPE_COUNT}")]
    StripeCount(u64),
    /// A stripe size that is no layout's.
    #[error("stripe size {0} is not a multiple of {LOV_MIN_STRIPE_SIZE} bytes below 4 GiB")]
    StripeSize(u64),
    /// A pool name Lustre does not take.
    #[error("pool name {0:?} is not 1 to {LOV_MAXPOOLNAME} printable ASCII characters without '.', '/' or '\\'")]
    Pool(String),
}

/// The serialised form (`{"stripe_count":4,"stripe_size":4194304,"pool":"flash"}`).
#[derive(Serialize, Deserialize)]
struct StripingFields {
    stripe_count: u64,
    stripe_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
}

impl TryFrom<StripingFields> for Striping {
    type Error = StripingError;
    fn try_from(f: StripingFields) -> Result<Striping, StripingError> {
        Striping::new(f.stripe_count, f.stripe_size, f.pool.as_deref())
    }
}

impl From<Striping> for StripingFields {
    fn from(s: Striping) -> StripingFields {
        StripingFields {
            stripe_count: s.stripe_count.into(),
            stripe_size: s.stripe_size,
            pool: s.pool,
        }
    }
}

impl Striping {
    /// A checked layout. `pool` `None` or `""` means no pool.
    pub fn new(
        stripe_count: u64,
        stripe_size: u64,
        pool: Option<&str>,
    ) -> Result<Striping, StripingError> {
        if !(1..=LOV_MAX_STRIPE_COUNT).contains(&stripe_count) {
            return Err(StripingError::StripeCount(stripe_count));
        }
        // `llapi_stripe_size_is_aligned` and `llapi_stripe_size_is_too_big`.
        if stripe_size == 0 || stripe_size % LOV_MIN_STRIPE_SIZE != 0 || stripe_size >= 1 << 32 {
            return Err(StripingError::StripeSize(stripe_size));
        }
        let pool = match pool {
            None | Some("") => None,
            Some(p) if pool_name_ok(p) => Some(p.to_string()),
            Some(p) => return Err(StripingError::Pool(p.to_string())),
        };
        Ok(Striping {
            // In range 1..=2000 (checked above).
            stripe_count: stripe_count as u32,
            stripe_size,
            pool,
        })
    }

    /// What a file gets when nobody chose: one stripe of 1 MiB, no pool (Lustre's defaults).
    pub fn lustre_default() -> Striping {
        Striping {
            stripe_count: 1,
            stripe_size: DEFAULT_STRIPE_SIZE,
            pool: None,
        }
    }

    /// Number of OSTs the file is striped over.
    pub fn stripe_count(&self) -> u32 {
        self.stripe_count
    }

    /// Bytes per stripe.
    pub fn stripe_size(&self) -> u64 {
        self.stripe_size
    }

    /// The OST pool, if any.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }
}

impl std::fmt::Display for Striping {
    /// `stripe_count=4 stripe_size=4194304 pool=flash` (the pool only when set).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stripe_count={} stripe_size={}",
            self.stripe_count, self.stripe_size
        )?;
        if let Some(p) = &self.pool {
            write!(f, " pool={p}")?;
        }
        Ok(())
    }
}

/// A pool name liblustreapi accepts (at most `LOV_MAXPOOLNAME` bytes; the `fsname.` prefix it
/// strips is not part of a stored name) that is also safe to pass on: the name becomes a
/// `/proc` path component (`lov.*.pools.NAME`), so no separators and no control characters.
fn pool_name_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= LOV_MAXPOOLNAME
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'/' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_lustre_accepts() {
        let s = Striping::new(4, 4 << 20, Some("flash")).unwrap();
        assert_eq!(
            (s.stripe_count(), s.stripe_size(), s.pool()),
            (4, 4 << 20, Some("flash"))
        );
        assert_eq!(
            s.to_string(),
            "stripe_count=4 stripe_size=4194304 pool=flash"
        );
        assert_eq!(Striping::new(2000, 65536, Some("")).unwrap().pool(), None);
        assert_eq!(
            Striping::new(1, (1 << 32) - 65536, Some("p_1-x")).map(|s| s.stripe_size()),
            Ok((1 << 32) - 65536)
        );
    }

    #[test]
    fn refuses_what_lustre_refuses() {
        assert_eq!(
            Striping::new(0, 1 << 20, None),
            Err(StripingError::StripeCount(0))
        );
        assert_eq!(
            Striping::new(2001, 1 << 20, None),
            Err(StripingError::StripeCount(2001))
        );
        for size in [0, 1000, 65536 + 4096, 1 << 32] {
            assert_eq!(
                Striping::new(1, size, None),
                Err(StripingError::StripeSize(size))
            );
        }
        for pool in ["a.b", "sixteen-chars-xx", "a b", "a/b", "x\n"] {
            assert_eq!(
                Striping::new(1, 1 << 20, Some(pool)),
                Err(StripingError::Pool(pool.into()))
            );
        }
    }

    #[test]
    fn json_form_is_checked_on_the_way_in() {
        let s = Striping::new(4, 4 << 20, Some("flash")).unwrap();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"stripe_count":4,"stripe_size":4194304,"pool":"flash"}"#
        );
        assert_eq!(serde_json::from_str::<Striping>(&j).unwrap(), s);
        let plain = Striping::lustre_default();
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"stripe_count":1,"stripe_size":1048576}"#
        );
        let bad = serde_json::from_str::<Striping>(r#"{"stripe_count":0,"stripe_size":1048576}"#)
            .unwrap_err();
        assert!(bad.to_string().contains("stripe count 0"), "{bad}");
    }
}
