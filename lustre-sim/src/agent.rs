//! `lustre-sim test-agent MOUNT [--archive N] [--end]`: a minimal copytool for tests, debugging
//! and benchmarks. It registers through this library's own `llapi_*` exports, prints one line
//! per received item (`ACTION FID cookie=0x..`), begins every ARCHIVE / RESTORE / REMOVE and
//! then holds it forever (never ends it), so a test can kill it mid-action. With `--end` it
//! ends every ARCHIVE and REMOVE at once with success, copying nothing: a copytool with an
//! infinitely fast archive, to measure the MDS and a policy engine without a store (RESTOREs
//! are still held: ending one without its data would empty the file).

use crate::api::copytool::*;
use crate::consts::*;
use crate::hal::decode_hal_items;
use lustre_sys::hsm_extent;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn run(mount: &Path, archive: Option<u32>, end: bool) -> Result<(), String> {
    let cm =
        CString::new(mount.as_os_str().as_bytes()).map_err(|_| "bad mount path".to_string())?;
    let mut ids: Vec<i32> = archive.map(|a| vec![a as i32]).unwrap_or_default();
    let mut ct = std::ptr::null_mut();
    // SAFETY: valid out-pointer, C string and id array of the given length.
    let rc = unsafe {
        llapi_hsm_copytool_register(&mut ct, cm.as_ptr(), ids.len() as i32, ids.as_mut_ptr(), 0)
    };
    if rc != 0 {
        return Err(format!(
            "llapi_hsm_copytool_register: {}",
            std::io::Error::from_raw_os_error(-rc)
        ));
    }
    println!("registered");
    let _ = std::io::stdout().flush();
    let mut held = Vec::new();
    loop {
        let mut hal = std::ptr::null_mut();
        let mut size = 0;
        // SAFETY: ct is the registered handle; out-pointers are valid.
        let rc = unsafe { llapi_hsm_copytool_recv(ct, &mut hal, &mut size) };
        if rc != 0 {
            return Err(format!(
                "llapi_hsm_copytool_recv: {}",
                std::io::Error::from_raw_os_error(-rc)
            ));
        }
        // SAFETY: recv returned `size` valid bytes at `hal`.
        let bytes = unsafe { std::slice::from_raw_parts(hal as *const u8, size as usize) };
        let Some((_, _, _, items)) = decode_hal_items(bytes) else {
            return Err("bad action list".into());
        };
        let mut o = 32 + ((bytes[32..].iter().position(|&c| c == 0).unwrap_or(0) + 1 + 7) & !7);
        for it in items {
            println!(
                "{} {} cookie={:#x}",
                hsm_action_name(it.action),
                it.fid,
                it.cookie
            );
            let _ = std::io::stdout().flush();
            if it.action != HSMA_CANCEL {
                let mut hcp = std::ptr::null_mut();
                // SAFETY: the item lies at offset o inside the received hal.
                let rc = unsafe {
                    llapi_hsm_action_begin(
                        &mut hcp,
                        ct,
                        bytes.as_ptr().add(o) as *const _,
                        -1,
                        0,
                        false,
                    )
                };
                if rc == 0 && end && it.action != HSMA_RESTORE {
                    let he = hsm_extent {
                        offset: it.offset,
                        length: it.length,
                    };
                    // SAFETY: hcp came from a successful begin and is ended once; he is live.
                    let rc = unsafe { llapi_hsm_action_end(&mut hcp, &he, 0, 0) };
                    if rc != 0 {
                        return Err(format!(
                            "llapi_hsm_action_end: {}",
                            std::io::Error::from_raw_os_error(-rc)
                        ));
                    }
                } else if rc == 0 {
                    held.push(hcp as usize);
                }
            }
            o += it.wire_len();
        }
    }
}
