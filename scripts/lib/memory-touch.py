#!/usr/bin/env python3
"""Times the first write to each page of N GiB of fresh anonymous memory, one GiB at a time.

Why: on a microVM whose kernel reports free pages to the host (free page reporting), memory
freed some seconds ago has gone back to the host, and touching it again costs several times
what reusing memory freed a moment ago costs. An in-memory Azurite fills gigabytes during
`scripts/bench 50-export`, so this decides how fast the store is in a given run (BENCHMARKS.md,
"an in-flight cap, and memory the host takes back"). Run it twice in a row, then again after
30 s of idling, and compare the seconds per GiB.

Usage: scripts/lib/memory-touch.py GIB
"""
import mmap
import sys
import time


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        print("usage: memory-touch.py GIB (a whole number of GiB, at least 1)", file=sys.stderr)
        return 2
    gib = int(sys.argv[1])
    m = mmap.mmap(-1, gib << 30)
    for g in range(gib):
        t0 = time.monotonic()
        for off in range(g << 30, (g + 1) << 30, mmap.PAGESIZE):
            m[off] = 1
        print(f"GiB {g}: {time.monotonic() - t0:.2f} s", flush=True)
    m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
