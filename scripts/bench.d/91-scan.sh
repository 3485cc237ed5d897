# Part "91-scan" of scripts/bench (sourced): the daemon's peak RSS while a manual export scans
# and exports a large tree (issue 17 item 2: a 1,000,000-file tree within 256 MiB).
# BENCH_SCAN_FILES files of one byte (default 1,000,000; BENCH_QUICK=1: 100,000), 1,000 per
# directory, are written into the simulated mount before the simulator starts (its start-up
# scan gives them FIDs; not timed). Then the daemon (auto-export off), the simulator's test
# copytool with `--end` (it ends every ARCHIVE at once with success and copies nothing: the
# store is out of this figure, so it measures the scan, the job's bookkeeping and the MDS), and
# `lustre-blob export tree --wait` until the job ends. The part samples the daemon's RSS over
# time and reports its peak (VmHWM), the job's files/s and its MDS calls.
# BENCH_SCAN_COPYTOOL=none runs without a copytool instead: no archive ever ends, so the job
# stops at its in-flight bound (`max_in_flight`) and the part waits for the scan to reach it.
# Disk: about 4 KiB per file (1,000,000 files: ~4-5 GB) under BENCH_WORK. BENCH_SCAN_MAX_SECONDS
# stops waiting after that long (the figures are then for the files done so far).

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

if [ "${BENCH_QUICK:-0}" = 1 ]; then sn_files="${BENCH_SCAN_FILES:-100000}"; else sn_files="${BENCH_SCAN_FILES:-1000000}"; fi
sn_mnt="$BENCH_WORK/scan-mnt"
rm -rf "$sn_mnt"
mkdir -p "$sn_mnt"
echo "bench: scan: writing $sn_files files (not timed)" >&2
t0=$(bs_now)
bs_tiny_tree "$sn_mnt/tree" "$sn_files"
echo "scan: $sn_files files written in $(bs_secs "$t0" "$(bs_now)") s (not a figure)"
export LUSTREAPI_LIB="$bs_bin/liblustreapi_sim.so"
export LUSTRE_SIM_MOUNTTAB="$BENCH_WORK/mounttab"
export LUSTRE_SIM_MOUNT="$sn_mnt"
sn_fs="s$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
t0=$(bs_now)
bs_spawn mds "$bs_bin/lustre-sim" mds --mount "$sn_mnt" --fsname "$sn_fs"
bs_watch=$bs_pid_mds
bs_wait "lustre-sim mds" 3600 "$bs_bin/lustre-sim" lfs path2fid "$sn_mnt/tree"
bs_watch=""
echo "scan: the simulator's start-up scan took $(bs_secs "$t0" "$(bs_now)") s (not a figure)"
sn_stat() { "$bs_bin/lustre-sim" lctl get_param -n sim.stats | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }  # 0 for a counter not created yet
sn_user=$("$bs_bin/lustre-sim" lctl --device "$sn_fs-MDT0000" changelog_register -n)
bs_container scan
bs_container bench-logs
bs_manual_daemon scan "$sn_mnt" "$sn_user"
sn_policy="$BENCH_WORK/policy-scan.toml"
# The job's own path2fid calls: every by-path HSM call of the simulator's library looks its path
# up with a path2fid first (lustre-sim/src/api/hsm.rs), so those are taken off.
sn_job_p2f() { echo $(( $(sn_stat call.Path2Fid) - $(sn_stat call.HsmStateGet) - $(sn_stat call.CurrentAction) )); }
sn_p2f0=$(sn_job_p2f)
sn_req0=$(sn_stat call.HsmRequest)
bs_sample_rss "$bs_pid_daemon" "$BENCH_WORK/scan-rss.txt" 1
sn_agent=none
if [ "${BENCH_SCAN_COPYTOOL:-end}" != none ]; then
  bs_spawn agent "$bs_bin/lustre-sim" test-agent "$sn_mnt" --archive 1 --end
  sn_agent=end
fi
t0=$(bs_now)
"$bs_bin/lustre-blob" export --config "$sn_policy" "$sn_mnt/tree" >/dev/null
sn_done=$sn_files
if [ "$sn_agent" = none ]; then
  # path2fid is the last per-file call of the scan (jobs.rs: stat, HSM state, path2fid); the job
  # stops requesting at its bound, so this waits for the scan, not for archives.
  sn_progress() { echo $(( $(sn_job_p2f) - sn_p2f0 )); }
else
  # Files the export job has settled (archived, found archived already, or failed).
  sn_progress() { "$bs_bin/lustre-blob" jobs --config "$sn_policy" --json 2>/dev/null | python3 -c '
import json, sys
try:
    jobs = json.load(sys.stdin)
except ValueError:
    jobs = []
ex = [j for j in jobs if j.get("kind") == "export"]
n = sum(int(j.get(k) or 0) for j in ex for k in ("files_exported", "files_already_exported", "files_failed"))
# Directories count as exported too: the job is done when it has ended, not at a count.
print(n if any(j.get("completionTimeUTC") is None for j in ex) or not ex else 10**15)'; }
fi
until [ "$(sn_progress)" -ge "$sn_files" ]; do
  kill -0 "$bs_pid_daemon" 2>/dev/null || { echo "bench: scan: the daemon exited:" >&2; tail -n 5 "$BENCH_WORK/daemon.log" >&2; exit 1; }
  if [ -n "${BENCH_SCAN_MAX_SECONDS:-}" ] && [ "$(bs_secs "$t0" "$(bs_now)" | cut -d. -f1)" -ge "$BENCH_SCAN_MAX_SECONDS" ]; then
    sn_done=$(( $(sn_job_p2f) - sn_p2f0 ))
    echo "scan: stopped after BENCH_SCAN_MAX_SECONDS=$BENCH_SCAN_MAX_SECONDS s with $sn_done of $sn_files files scanned (the figures below are for those)"
    break
  fi
  sleep 1
done
# The job's own per-file calls to the MDS while it ran (its stale in-flight check asks
# current_action, which Lustre answers by reading the action catalog from its start).
echo "scan: MDS calls meanwhile: current_action $(sn_stat call.CurrentAction), catalog records read $(sn_stat current_action.records_read), hsm_state_get $(sn_stat call.HsmStateGet), HSM requests $(( $(sn_stat call.HsmRequest) - sn_req0 ))"
t1=$(bs_now)
sleep 5 # the last batch of archive requests, and what the job holds once every file is requested
sn_hwm=$(bs_hwm "$bs_pid_daemon")
sn_secs=$(bs_secs "$t0" "$t1")
echo "scan: $sn_done files $( [ "$sn_agent" = none ] && echo scanned || echo 'scanned and archived (test copytool --end)') in $sn_secs s = $(awk -v n="$sn_done" -v s="$sn_secs" 'BEGIN { printf "%.0f", n / s }') files/s; $(( $(sn_stat call.HsmRequest) - sn_req0 )) archive requests; daemon peak RSS $(awk -v k="$sn_hwm" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
mkdir -p "$bench_results"
printf '{"what": "manual export scan, copytool: %s", "size": %d, "seconds": %s, "rss_kib": {"daemon": %d}}\n' \
  "$sn_agent" "$sn_done" "$sn_secs" "$sn_hwm" >"$bench_results/rss-scan-$sn_done.json"
cp "$BENCH_WORK/scan-rss.txt" "$bench_results/rss-over-time-scan-$sn_files.txt"
bs_stop
bs_trash "$sn_mnt" "$BENCH_WORK/state-scan"
trap "$bs_prev_exit" EXIT
