#!/usr/bin/python3
"""SVG charts of the benchmark results (scripts/bench part 99-charts), with matplotlib (Debian's
python3-matplotlib, which the part installs). Reads the JSON the parts leave in DIR and writes
next to it, for BENCHMARKS.md to embed:

  freshness.svg    close() -> blob latency histograms, idle and beside a bulk export (80-freshness)
  throughput.svg   export throughput against file size: ours, rclone and the raw ceiling (50-export)
  rss.svg          peak RSS against tree size or backlog: daemon, copytool, rclone (60-incremental,
                   90-scale, 91-scan)
  import-rss.svg   the daemon's RSS over an import of many blobs (92-import)

  charts.py DIR
A chart whose data is missing is skipped with a note (a part not run yet).
"""
import glob, json, os, sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams["svg.hashsalt"] = "lustre-blob"  # stable ids: a re-run with the same data diffs clean
plt.rcParams["font.size"] = 9


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def freshness(d):
    # The poller's figures (what a reader of the container sees) and, when the part could read
    # the copytool's log, close() -> commit from the copytool's side (freshness_commit.py).
    names = ("idle", "bulk", "bulk-inflight64", "commit-idle", "commit-bulk",
             "commit-bulk-inflight64")
    runs = [r for r in (load(os.path.join(d, f"freshness-{n}.json")) for n in names) if r]
    if not runs:
        return "no freshness-*.json"
    fig, ax = plt.subplots(figsize=(7, 3.4))
    top = max(max(r["latencies"] or [0]) for r in runs)
    edges = [i * 0.05 for i in range(int(min(top, 10) / 0.05) + 2)]
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for r, colour in zip(runs, colours):
        lat = r["latencies"]
        ax.hist([min(x, edges[-1]) for x in lat], bins=edges, alpha=0.6, color=colour,
                label=f"{r['label']}: p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s ({len(lat)} files)")
        ax.axvline(r["p99"], color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("close() to committed blob (s); dashed: p99; last bin holds anything longer")
    ax.set_ylabel("files")
    first = next((r for r in runs if "rate" in r), runs[0])
    ax.set_title(f"Freshness: {first.get('rate', 0):g} files/s for {first.get('seconds', 0):g} s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(d, "freshness.svg"))
    plt.close(fig)
    return None


def throughput(d):
    rows = [r for r in (load(p) for p in sorted(glob.glob(os.path.join(d, "export-*.json")))) if r]
    if not rows:
        return "no export-*.json"
    rows.sort(key=lambda r: r["file_bytes"])
    tools = [("ours", "lustre-blob export"), ("rclone_default", "rclone copy"),
             ("rclone_16", "rclone copy --transfers 16"), ("raw", "raw object_store ceiling")]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(tools)
    for k, (key, name) in enumerate(tools):
        xs = [i + (k - (len(tools) - 1) / 2) * width for i in range(len(rows))]
        ys = [r.get(key, {}).get("mb_s") or 0 for r in rows]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['count']:,} x {r['file_label']}" for r in rows])
    ax.set_yscale("log")  # 64 KiB files run at a few MB/s, 1 GiB files at 100+
    ax.set_ylabel("MB/s (best round, log scale)")
    ax.set_title("Export throughput against file size (one Azurite, same run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "throughput.svg"))
    plt.close(fig)
    return None


def rss(d):
    pts = [r for r in (load(p) for p in sorted(glob.glob(os.path.join(d, "rss-*.json")))) if r]
    if not pts:
        return "no rss-*.json"
    series = {}
    for p in pts:
        for proc, kib in p["rss_kib"].items():
            if kib:
                series.setdefault((p["what"], proc), []).append((p["size"], kib / 1024))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for (what, proc), xy in sorted(series.items()):
        xy.sort()
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=f"{proc} ({what})")
    ax.set_xscale("log")
    ax.set_xlabel("files in the tree, or changelog records behind")
    ax.set_ylabel("peak RSS (MiB)")
    ax.axhline(256, color="grey", linestyle=":", linewidth=1)
    ax.set_title("Peak RSS against scale (dotted: the 256 MiB target)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "rss.svg"))
    plt.close(fig)
    return None


def import_rss(d):
    runs = [r for r in (load(p) for p in sorted(glob.glob(os.path.join(d, "import-rss-*.json")))) if r]
    if not runs:
        return "no import-rss-*.json"
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for r in runs:
        s = r["samples"]
        ax.plot([x["walked"] for x in s], [x["rss_kib"] / 1024 for x in s], marker=".",
                label=f"daemon, {r['blobs']:,} blobs in {r['seconds']:.0f} s "
                      f"(peak {r['peak_rss_kib'] / 1024:.1f} MiB)")
    ax.set_xlabel("blobs walked by the import so far (one sample a second)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("import: daemon RSS over the import (the listing is read one page at a time)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "import-rss.svg"))
    plt.close(fig)
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    for name, f in (("freshness", freshness), ("throughput", throughput), ("rss", rss),
                    ("import-rss", import_rss)):
        why = f(d)
        print(f"charts: {name}.svg: " + (f"skipped ({why})" if why else "written"))


if __name__ == "__main__":
    main()
