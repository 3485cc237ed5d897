#!/usr/bin/env python3
"""Where each trickle file's close() -> commit went, stage by stage (scripts/bench 80-freshness).

Reads the close() times freshness.py recorded, the daemon's log at trace level for
policy::engine (`change read`, `joined the running iteration`, `archive requested`) and the
copytool's at debug level (`started`, `done`), and prints the distribution of each stage:

  read      close() -> the daemon reads the file's last record before its request
  join      read -> joined the running iteration (the settle time and the look every 50 ms)
  request   joined (or read) -> its archive request is sent (waiting for a free slot)
  queue     request -> the copytool starts it (the coordinator's queue and the copytool's)
  copy      start -> the store acknowledged the commit

  freshness_stages.py FRESHNESS.json DAEMON.log COPYTOOL.log

Run the part with RUST_LOG="info,policy::engine=trace,copytool::actions=debug" to get those
lines (BENCH_LOGS keeps the logs).
"""
import datetime, json, re, sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FID = r"(\[0x[0-9a-f]+:0x[0-9a-f]+:0x[0-9a-f]+\])"


def when(line):
    try:
        return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lines(path):
    with open(path, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line).rstrip("\n")
            t = when(line)
            if t is not None:
                yield t, line


def by_fid(path, before):
    """(time, FID, line) of each line of the log at `path` naming a FID right after `before`."""
    for t, line in lines(path):
        m = re.search(before + FID, line)
        if m:
            yield t, m.group(1), line


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    closed = json.load(open(sys.argv[1]))["closed_wall"]
    reads, joined, requested, path_of = {}, {}, {}, {}
    for t, fid, line in by_fid(sys.argv[2], r"fid="):
        if "change read" in line:
            if fid not in requested:  # the last read before its request
                reads[fid] = t
        elif "joined the running iteration" in line:
            joined.setdefault(fid, t)
        elif "archive requested" in line:
            p = re.search(r'path=("?)([^" ]+)\1', line)
            if p and p.group(2) in closed and fid not in requested:
                requested[fid] = t
                path_of[fid] = p.group(2)
    started, done = {}, {}
    for t, fid, line in by_fid(sys.argv[3], r"archive "):
        if " started" in line:
            started.setdefault(fid, t)
        elif "done action=archive" in line:
            done[fid] = t
    stages = {k: [] for k in ("read", "join", "request", "queue", "copy", "total")}
    for fid, path in path_of.items():
        c = closed[path]
        if fid not in reads or fid not in started or fid not in done:
            continue
        r, q = reads[fid], requested[fid]
        j = joined.get(fid, r)
        stages["read"].append(r - c)
        stages["join"].append(j - r)
        stages["request"].append(q - j)
        stages["queue"].append(started[fid] - q)
        stages["copy"].append(done[fid] - started[fid])
        stages["total"].append(done[fid] - c)
    n = len(stages["total"])
    if n == 0:
        sys.exit("freshness_stages: no trickle file with every stage in the logs (log levels?)")
    print(f"freshness stages: {n} of {len(closed)} trickle files (s)")
    print(f"  {'stage':8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'mean':>7}")
    for k, v in stages.items():
        v.sort()
        pick = lambda q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
        print(f"  {k:8} {pick(.5):7.3f} {pick(.9):7.3f} {pick(.99):7.3f} {v[-1]:7.3f} "
              f"{sum(v) / len(v):7.3f}")


if __name__ == "__main__":
    main()
