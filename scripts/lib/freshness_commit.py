#!/usr/bin/env python3
"""close() -> commit of each trickle file, from the copytool's side (scripts/bench 80-freshness).

The external poller (freshness.py) sees a blob only when a HEAD gets through the store, and a
store busy with a bulk export answers HEADs late (Azurite's one JavaScript thread: 0.4 s a HEAD
at p50 beside 4 x 1 GiB + 10,000 files), so its figure is the product's latency plus the
store's queue. This reads the wall-clock close() times freshness.py recorded and the copytool's
`done action=archive` log lines (written when the store acknowledged the commit: Put Blob or Put
Block List) and prints the distribution of the difference: the product's own latency, with the
store's answer to the commit included.

  freshness_commit.py FRESHNESS.json COPYTOOL.log [--label L] [--json OUT] [--bulk PREFIX]

--bulk PREFIX also prints the export rate of the files under PREFIX (the bulk load the trickle
runs beside): files committed per second over the trickle (first close() to last commit of a
trickle file) and over the whole bulk export, so a change that helps the trickle can be seen
not to slow the bulk down.
"""
import argparse, datetime, json, re, sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
DONE = re.compile(r"done action=archive .*path=\"?([^\" ]+)\"?")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("freshness_json")
    ap.add_argument("copytool_log")
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    ap.add_argument("--bulk")
    a = ap.parse_args()
    try:
        closed = json.load(open(a.freshness_json))["closed_wall"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"freshness_commit: {a.freshness_json}: no close() times ({e})")
    done = {}
    bulk = {}  # bulk file -> its last commit
    with open(a.copytool_log, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            m = DONE.search(line)
            if not m:
                continue
            path = m.group(1)
            is_bulk = a.bulk is not None and path.startswith(a.bulk)
            if path not in closed and not is_bulk:
                continue
            try:
                t = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
            except ValueError:
                continue
            # The last commit counts (a file changed during its copy is archived again).
            (bulk if is_bulk else done)[path] = t.timestamp()
    lat = sorted(done[k] - closed[k] for k in done)
    if not lat:
        sys.exit("freshness_commit: no trickle file in the copytool log")
    pick = lambda q: lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]
    label = f"{a.label}: " if a.label else ""
    print(f"freshness: {label}close() -> commit (copytool log): {len(lat)} of {len(closed)} files; "
          f"p50 {pick(0.5):.3f} s, p90 {pick(0.9):.3f} s, p99 {pick(0.99):.3f} s, max {lat[-1]:.3f} s")
    lo = 0.0
    for hi in (0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, float("inf")):
        c = sum(1 for x in lat if lo <= x < hi)
        name = f"{lo:>5.2f}-{hi:<5.2f} s" if hi != float("inf") else f"{lo:>5.2f}+      s"
        print(f"freshness: {label}  {name} {c:>6}  {'#' * int(round(60 * c / len(lat)))}")
        lo = hi
    extra = {}
    if bulk:
        ts = sorted(bulk.values())
        lo_t, hi_t = min(closed.values()), max(done.values())
        during = sum(1 for t in ts if lo_t <= t <= hi_t)
        whole = ts[-1] - ts[0]
        print(f"freshness: {label}bulk ({a.bulk}): {len(ts)} files committed in {whole:.1f} s "
              f"({len(ts) / whole if whole > 0 else 0:.1f} files/s); during the trickle "
              f"({hi_t - lo_t:.1f} s): {during} files, {during / (hi_t - lo_t):.1f} files/s")
        extra = {"bulk_files": len(ts), "bulk_seconds": whole,
                 "bulk_files_during_trickle": during, "trickle_seconds": hi_t - lo_t}
    if a.json:
        json.dump({"label": f"{a.label} (copytool log)", "latencies": lat, "p50": pick(0.5),
                   "p90": pick(0.9), "p99": pick(0.99), "files": len(closed), **extra},
                  open(a.json, "w"))


if __name__ == "__main__":
    main()
