#!/usr/bin/env python3
"""Freshness probe for scripts/bench.d/80-freshness.sh (stdlib only).

Writes a steady trickle of small files into DIR (RATE files/s for SECONDS) and, from a second
thread with its own connection, polls the store for each written file's blob with a signed
HEAD until it exists (a pool of --pollers threads, each with its own connection). A file's latency is from the return of its close() to the HEAD answer
that first found its blob: what a reader of the container sees, including the changelog, the
daemon, the coordinator, the copytool and the store. The poller asks only for files written and
not yet seen, every POLL seconds, so the figure is an upper bound off by the gap between a
file's last missing HEAD and the one that found it (printed as "measurement gap").

  freshness.py --endpoint URL --container C --mount MNT --subdir trickle \\
               --rate 10 --seconds 120 --json OUT.json
Prints p50/p90/p99/max and a text histogram; OUT.json holds every latency (for the charts).
"""
import argparse, http.client, json, os, sys, threading, time, urllib.parse
from email.utils import formatdate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import azblob  # noqa: E402  (sign(): the emulator's shared-key signature)


def head_exists(conn, base_path, name):
    url_path = f"{base_path}/{urllib.parse.quote(name)}"
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": azblob.VERSION,
               "Content-Length": "0"}
    azblob.sign("HEAD", "http://h" + url_path, headers)
    conn.request("HEAD", url_path, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status not in (200, 404):
        raise RuntimeError(f"HEAD {name}: HTTP {r.status}")
    return r.status == 200


def percentile(sorted_xs, q):
    if not sorted_xs:
        return float("nan")
    k = min(len(sorted_xs) - 1, max(0, int(round(q * (len(sorted_xs) - 1)))))
    return sorted_xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--container", required=True)
    ap.add_argument("--mount", required=True)
    ap.add_argument("--subdir", default="trickle")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--poll", type=float, default=0.02)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--pollers", type=int, default=16, help="parallel HEAD pollers")
    ap.add_argument("--give-up", type=float, default=300.0,
                    help="seconds after the last write to wait for the last blobs")
    ap.add_argument("--json", required=True)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    if a.rate <= 0 or a.seconds <= 0 or a.poll <= 0 or a.pollers <= 0:
        sys.exit("freshness: --rate, --seconds, --poll and --pollers must be positive")

    u = urllib.parse.urlsplit(a.endpoint.rstrip("/"))
    base_path = f"{u.path}/{a.container}"
    os.makedirs(os.path.join(a.mount, a.subdir), exist_ok=True)
    n = int(a.rate * a.seconds)
    closed = {}  # name -> monotonic time close() returned
    closed_wall = {}  # name -> the same instant, wall clock (for freshness_commit.py)
    seen = {}  # name -> monotonic time the HEAD that found it answered
    lock = threading.Lock()
    done_writing = threading.Event()
    head_rtts = []

    def writer():
        t0 = time.monotonic()
        body = os.urandom(a.size)
        for i in range(n):
            due = t0 + i / a.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rel = f"{a.subdir}/f{i:06d}.bin"
            with open(os.path.join(a.mount, rel), "wb") as f:
                f.write(i.to_bytes(8, "little") + body[8:])
            t = time.monotonic()
            with lock:
                closed[rel] = t
                closed_wall[rel] = time.time()
        done_writing.set()

    # A pool of pollers, each with its own connection, each asking for its share of the files
    # (by index modulo POLLERS): one sequential poller fell behind when the store was busy (a
    # pass over 400 outstanding files at 100 ms a HEAD is 40 s, and that was measured as
    # latency). For each file the time since its previous HEAD (that found nothing) is kept:
    # the measurement's own uncertainty, printed as "gap".
    gaps = {}  # name -> seconds between the last HEAD that missed the blob and the one that found it

    def poller(k):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        last_write_done = None
        last_miss = {}
        while True:
            tick = time.monotonic()
            with lock:
                todo = [name for name in closed
                        if name not in seen and int(name[-10:-4]) % a.pollers == k]
            for name in todo:
                s = time.monotonic()
                try:
                    ok = head_exists(conn, base_path, name)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                    continue
                e = time.monotonic()
                with lock:
                    head_rtts.append(e - s)
                    if ok:
                        seen[name] = e
                        gaps[name] = e - last_miss.get(name, closed[name])
                if not ok:
                    last_miss[name] = s
            if done_writing.is_set():
                with lock:
                    mine = [x for x in closed if int(x[-10:-4]) % a.pollers == k]
                    if all(x in seen for x in mine):
                        return
                last_write_done = last_write_done or time.monotonic()
                if time.monotonic() - last_write_done > a.give_up:
                    return
            left = a.poll - (time.monotonic() - tick)
            if left > 0:
                time.sleep(left)

    tw = threading.Thread(target=writer)
    tps = [threading.Thread(target=poller, args=(k,)) for k in range(a.pollers)]
    tw.start()
    for t in tps:
        t.start()
    tw.join()
    for t in tps:
        t.join()

    lat = sorted(seen[k] - closed[k] for k in seen)
    missing = len(closed) - len(seen)
    rtts = sorted(head_rtts)
    p = {q: percentile(lat, q) for q in (0.5, 0.9, 0.99)}
    label = f"{a.label}: " if a.label else ""
    print(f"freshness: {label}{len(closed)} files at {a.rate:g}/s for {a.seconds:g} s; "
          f"{len(lat)} seen, {missing} never seen within {a.give_up:g} s")
    print(f"freshness: {label}close() -> blob: p50 {p[0.5]:.3f} s, p90 {p[0.9]:.3f} s, "
          f"p99 {p[0.99]:.3f} s, max {lat[-1] if lat else float('nan'):.3f} s "
          f"(poll every {a.poll:g} s, HEAD round trip p50 {percentile(rtts, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(rtts, 0.99) * 1000:.1f} ms)")
    g = sorted(gaps.values())
    print(f"freshness: {label}measurement gap (last HEAD that missed -> the one that found the "
          f"blob; the figure's own uncertainty): p50 {percentile(g, 0.5):.3f} s, "
          f"p99 {percentile(g, 0.99):.3f} s, {a.pollers} pollers")
    edges = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, float("inf")]
    lo = 0.0
    width = max(1, len(lat))
    for hi in edges:
        c = sum(1 for x in lat if lo <= x < hi)
        bar = "#" * int(round(60 * c / width))
        name = f"{lo:>5.2f}-{hi:<5.2f} s" if hi != float("inf") else f"{lo:>5.2f}+      s"
        print(f"freshness: {label}  {name} {c:>6}  {bar}")
        lo = hi
    with open(a.json, "w") as f:
        json.dump({"label": a.label, "rate": a.rate, "seconds": a.seconds, "poll": a.poll,
                   "latencies": lat, "missing": missing,
                   "p50": p[0.5], "p90": p[0.9], "p99": p[0.99],
                   "head_rtt_p50": percentile(rtts, 0.5),
                   "gap_p99": percentile(g, 0.99), "pollers": a.pollers,
                   "closed_wall": closed_wall}, f)
    if missing:
        sys.exit(f"freshness: {missing} files never reached the store")


if __name__ == "__main__":
    main()
