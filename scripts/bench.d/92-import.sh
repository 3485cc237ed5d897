# Part "92-import" of scripts/bench (sourced): the daemon's RSS over time while `import` brings in
# a large prefix (issue 17 item 2: the listing is streamed page by page, so RSS stays flat).
# BENCH_IMPORT_BLOBS blobs of 16 bytes (default 200,000; BENCH_QUICK=1: 20,000) are put into the
# container first by `blob_bench raw-small` (untimed; run with BENCH_AZURITE=indexed at 200,000:
# stock Azurite seeds N blobs in O(N^2), see 60-incremental). Then the daemon (auto-export off)
# imports them all as released files into an empty simulated mount; the part samples the
# daemon's RSS every second until the job ends and reports blobs/s and the RSS at 10 %, 50 % and
# 100 % of the import. The samples go to BENCH_RESULTS/import-rss-N.json (the chart).
# BENCH_IMPORT_MAX_SECONDS stops watching after that long (the figures are then for the blobs
# walked so far; the part says so).

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

if [ "${BENCH_QUICK:-0}" = 1 ]; then im_blobs="${BENCH_IMPORT_BLOBS:-20000}"; else im_blobs="${BENCH_IMPORT_BLOBS:-200000}"; fi
im_mnt="$BENCH_WORK/import-mnt"
rm -rf "$im_mnt"
mkdir -p "$im_mnt"
bs_container import
bs_container bench-logs
echo "bench: import: putting $im_blobs blobs (not timed)" >&2
t0=$(bs_now)
"$BENCH_BLOB" raw-small --endpoint "$BENCH_ENDPOINT" --container import --count "$im_blobs" --size 16 --concurrency 32 >/dev/null
echo "import: $im_blobs blobs put in $(bs_secs "$t0" "$(bs_now)") s (not a figure)"
export LUSTREAPI_LIB="$bs_bin/liblustreapi_sim.so"
export LUSTRE_SIM_MOUNTTAB="$BENCH_WORK/mounttab"
export LUSTRE_SIM_MOUNT="$im_mnt"
im_fs="i$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
bs_spawn mds "$bs_bin/lustre-sim" mds --mount "$im_mnt" --fsname "$im_fs"
bs_watch=$bs_pid_mds
bs_wait "lustre-sim mds" 600 "$bs_bin/lustre-sim" lfs path2fid "$im_mnt"
bs_watch=""
im_user=$("$bs_bin/lustre-sim" lctl --device "$im_fs-MDT0000" changelog_register -n)
bs_manual_daemon import "$im_mnt" "$im_user"
im_policy="$BENCH_WORK/policy-import.toml"
# imported COUNT STATE of the import job (the newest one).
im_progress() {
  "$bs_bin/lustre-blob" jobs --json --config "$im_policy" | python3 -c '
import json, sys
jobs = [j for j in json.load(sys.stdin) if j.get("kind") == "import"]
j = jobs[-1] if jobs else {}
print(j.get("totalBlobsWalked", 0), j.get("state", "none"))'
}
im_samples="$BENCH_WORK/import-rss.txt"
: >"$im_samples"
t0=$(bs_now)
"$bs_bin/lustre-blob" import --config "$im_policy" --prefix "" >/dev/null
while :; do
  kill -0 "$bs_pid_daemon" 2>/dev/null || { echo "bench: import: the daemon exited:" >&2; tail -n 5 "$BENCH_WORK/daemon.log" >&2; exit 1; }
  read -r im_walked im_state < <(im_progress)
  echo "$(bs_secs "$t0" "$(bs_now)") $im_walked $(bs_rss_now "$bs_pid_daemon")" >>"$im_samples"
  case $im_state in InProgress | Cancelling | none) ;; *) break ;; esac
  if [ -n "${BENCH_IMPORT_MAX_SECONDS:-}" ] && [ "$(bs_secs "$t0" "$(bs_now)" | cut -d. -f1)" -ge "$BENCH_IMPORT_MAX_SECONDS" ]; then
    echo "import: stopped after BENCH_IMPORT_MAX_SECONDS=$BENCH_IMPORT_MAX_SECONDS s with $im_walked of $im_blobs blobs walked (the figures below are for those)"
    im_blobs=$im_walked
    break
  fi
  sleep 1
done
im_secs=$(bs_secs "$t0" "$(bs_now)")
im_hwm=$(bs_hwm "$bs_pid_daemon")
"$bs_bin/lustre-blob" jobs --config "$im_policy" | tail -n 1
python3 - "$im_samples" "$im_blobs" "$im_secs" "$im_hwm" "$bench_results/import-rss-$im_blobs.json" <<'PY'
import json, sys
path, n, secs, hwm, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = [tuple(float(x) for x in l.split()) for l in open(path) if len(l.split()) == 3]
def rss_at(frac):
    for t, walked, rss in rows:
        if walked >= frac * n:
            return rss / 1024
    return rows[-1][2] / 1024
print(f"import: {n} blobs in {secs:.1f} s = {n / secs:.0f} blobs/s; daemon RSS at 10 % "
      f"{rss_at(0.1):.1f} MiB, 50 % {rss_at(0.5):.1f} MiB, 100 % {rss_at(1.0):.1f} MiB; "
      f"peak {hwm / 1024:.1f} MiB")
json.dump({"blobs": n, "seconds": secs, "peak_rss_kib": hwm,
           "samples": [{"t": t, "walked": int(w), "rss_kib": int(r)} for t, w, r in rows]},
          open(out, "w"))
PY
bs_stop
bs_trash "$im_mnt" "$BENCH_WORK/state-import"
trap "$bs_prev_exit" EXIT
