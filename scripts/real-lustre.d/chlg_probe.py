#!/usr/bin/env python3
"""chlg_probe.py MDT COUNT: the policy daemon's "auto" probe, COUNT times, through liblustreapi.

What `policy/src/readers.rs` `few_kept` does (through `lustre::ChangelogReader`): a non-follow
reader at record 0 (`llapi_changelog_start` with CHANGELOG_FLAG_JOBID | EXTRA_FLAGS | NID_BE,
then `llapi_changelog_set_xflags` with all four extra flags), one `llapi_changelog_recv`, then
`llapi_changelog_fini`. Scenario `changelog_passes` counts the MDS RPCs of COUNT probes with no
other reader open. Prints one line per probe: "probe N: first record INDEX, MS ms" (INDEX "-"
when the changelog keeps no record).
"""
import ctypes
import sys
import time

FLAG_JOBID, FLAG_EXTRA_FLAGS, FLAG_NID_BE = 0x04, 0x08, 0x10
XFLAGS_ALL = 0x1 | 0x2 | 0x4 | 0x8  # UIDGID | NID | OMODE | XATTR


def main():
    mdt, count = sys.argv[1], int(sys.argv[2])
    api = ctypes.CDLL("/usr/lib/liblustreapi.so.1", use_errno=True)
    vp = ctypes.c_void_p
    api.llapi_changelog_start.argtypes = [ctypes.POINTER(vp), ctypes.c_int, ctypes.c_char_p, ctypes.c_longlong]
    api.llapi_changelog_set_xflags.argtypes = [vp, ctypes.c_int]
    api.llapi_changelog_recv.argtypes = [vp, ctypes.POINTER(vp)]
    api.llapi_changelog_free.argtypes = [ctypes.POINTER(vp)]
    api.llapi_changelog_fini.argtypes = [ctypes.POINTER(vp)]
    for n in range(1, count + 1):
        t0 = time.monotonic()
        h = vp()
        rc = api.llapi_changelog_start(ctypes.byref(h), FLAG_JOBID | FLAG_EXTRA_FLAGS | FLAG_NID_BE, mdt.encode(), 0)
        if rc != 0:
            sys.exit(f"llapi_changelog_start({mdt}): {rc}")
        rc = api.llapi_changelog_set_xflags(h, XFLAGS_ALL)
        if rc != 0:
            sys.exit(f"llapi_changelog_set_xflags: {rc}")
        rec = vp()
        rc = api.llapi_changelog_recv(h, ctypes.byref(rec))
        if rc == 0 and rec.value:
            # struct changelog_rec: __u16 cr_namelen, __u16 cr_flags, __u32 cr_type, __u64 cr_index
            first = str(ctypes.c_uint64.from_address(rec.value + 8).value)
            api.llapi_changelog_free(ctypes.byref(rec))
        elif rc == 1:
            first = "-"
        else:
            sys.exit(f"llapi_changelog_recv({mdt}): {rc}")
        api.llapi_changelog_fini(ctypes.byref(h))
        print(f"probe {n}: first record {first}, {(time.monotonic() - t0) * 1000:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
