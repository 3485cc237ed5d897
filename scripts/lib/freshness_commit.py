#!/usr/bin/env python3
"""close() -> commit of each trickle file, from the copytool's side (scripts/bench 80-freshness).

The external poller (freshness.py) sees a blob only when a HEAD gets through the store, and a
store busy with a bulk export answers HEADs late (Azurite's one JavaScript thread: 0.4 s a HEAD
at p50 beside 4 x 1 GiB + 10,000 files), so its figure is the product's latency plus the
store's queue. This reads the wall-clock close() times freshness.py recorded and the copytool's
`done action=archive` log lines (written when the store acknowledged the commit: Put Blob or Put
Block List) and prints the distribution of the difference: the product's own latency, with the
store's answer to the commit included.

  freshness_commit.py FRESHNESS.json COPYTOOL.log [--label L] [--json OUT]
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
    a = ap.parse_args()
    try:
        closed = json.load(open(a.freshness_json))["closed_wall"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"freshness_commit: {a.freshness_json}: no close() times ({e})")
    done = {}
    with open(a.copytool_log, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            m = DONE.search(line)
            if not m or m.group(1) not in closed:
                continue
            try:
                t = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
            except ValueError:
                continue
            # The last commit counts (a file changed during its copy is archived again).
            done[m.group(1)] = t.timestamp()
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
    if a.json:
        json.dump({"label": f"{a.label} (copytool log)", "latencies": lat, "p50": pick(0.5),
                   "p90": pick(0.9), "p99": pick(0.99), "files": len(closed)}, open(a.json, "w"))


if __name__ == "__main__":
    main()
