//! `lfs getstripe` and `lfs setstripe` for plain layouts (mds/layout.rs), printing what lfs
//! prints for them (`lfs_getstripe` / `lfs_setstripe` in lfs.c; `lfs setstripe` on a new file
//! creates it with the layout, on a file that has one answers EEXIST).

use crate::cli::{strerror, Fail};
use crate::client;
use crate::mds::layout::LayoutAttrs;
use crate::proto::{call_as, Request};
use lustre_sys::LLAPI_LAYOUT_DEFAULT;
use std::path::Path;

type Out = Result<(), Fail>;

fn layout_of(p: &Path) -> Result<LayoutAttrs, i32> {
    let (mount, _) = client::rel_in_mount(p)?;
    let fid = client::path2fid(p)?;
    call_as(&mount, &Request::LayoutGet { fid })
}

/// `lfs getstripe [-c|-S|-p] FILE...`.
pub fn getstripe(rest: &[String]) -> Out {
    let (only, files): (Option<&str>, &[String]) = match rest {
        [o, files @ ..] if matches!(o.as_str(), "-c" | "-S" | "-p") => (Some(o.as_str()), files),
        files => (None, files),
    };
    if files.is_empty() {
        return Err(Fail("lfs getstripe: no file given".into()));
    }
    for f in files {
        let l = layout_of(Path::new(f))
            .map_err(|e| Fail(format!("lfs getstripe: '{f}': {}", strerror(e))))?;
        match only {
            Some("-c") => println!("{}", l.stripe_count),
            Some("-S") => println!("{}", l.stripe_size),
            Some(_) => println!("{}", l.pool),
            None => {
                println!("{f}");
                println!("lmm_stripe_count:  {}", l.stripe_count);
                println!("lmm_stripe_size:   {}", l.stripe_size);
                println!("lmm_pattern:       raid0");
                println!("lmm_layout_gen:    0");
                println!("lmm_stripe_offset: 0");
                if !l.pool.is_empty() {
                    println!("lmm_pool:          {}", l.pool);
                }
            }
        }
    }
    Ok(())
}

/// A size as lfs takes it: bytes, or a number with a k, M or G suffix (binary units).
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `lfs setstripe [-c COUNT] [-S SIZE] [-p POOL] FILE`: creates FILE with that layout.
pub fn setstripe(rest: &[String]) -> Out {
    const USAGE: &str = "lfs setstripe: usage: setstripe [-c COUNT] [-S SIZE] [-p POOL] FILE";
    let mut attrs = LayoutAttrs::default();
    let mut it = rest.iter();
    let mut file = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| Fail(USAGE.into()));
        match a.as_str() {
            "-c" => {
                let v = value()?;
                let c: i64 = v
                    .parse()
                    .map_err(|_| Fail(format!("lfs setstripe: invalid stripe count '{v}'")))?;
                // -1: every OST (`LLAPI_LAYOUT_WIDE`); 0: the default.
                attrs.stripe_count = match c {
                    0 => LLAPI_LAYOUT_DEFAULT,
                    c if c < 0 => LLAPI_LAYOUT_DEFAULT.wrapping_sub(c as u64),
                    c => c as u64,
                };
            }
            "-S" => {
                let v = value()?;
                attrs.stripe_size = parse_size(v)
                    .ok_or_else(|| Fail(format!("lfs setstripe: invalid stripe size '{v}'")))?;
            }
            "-p" => attrs.pool = value()?.clone(),
            f if file.is_none() && !f.starts_with('-') => file = Some(f.to_string()),
            _ => return Err(Fail(USAGE.into())),
        }
    }
    let Some(file) = file else {
        return Err(Fail(USAGE.into()));
    };
    create_with(Path::new(&file), &attrs)
        .map_err(|e| Fail(format!("lfs setstripe: '{file}': {}", strerror(e))))
}

/// Through the library's own `llapi_layout_file_open` (O_CREAT|O_EXCL, as
/// `llapi_layout_file_create`), so the CLI and the library check values the same way.
fn create_with(p: &Path, attrs: &LayoutAttrs) -> Result<(), i32> {
    use crate::api::layout::*;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    let pool = std::ffi::CString::new(attrs.pool.as_bytes()).map_err(|_| libc::EINVAL)?;
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: the handle comes from llapi_layout_alloc and is freed once below; the strings are
    // NUL-terminated and outlive the calls.
    unsafe {
        let l = llapi_layout_alloc();
        let set = llapi_layout_stripe_count_set(l, attrs.stripe_count) == 0
            && llapi_layout_stripe_size_set(l, attrs.stripe_size) == 0
            && (attrs.pool.is_empty() || llapi_layout_pool_name_set(l, pool.as_ptr()) == 0);
        let rc = if set {
            let fd = llapi_layout_file_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
                l,
            );
            if fd >= 0 {
                libc::close(fd);
                Ok(())
            } else {
                Err(errno())
            }
        } else {
            Err(errno())
        };
        llapi_layout_free(l);
        rc
    }
}
