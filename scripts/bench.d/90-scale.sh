# Part "90-scale" of scripts/bench (sourced): a daemon started behind a changelog backlog
# (issue 17 item 2). The simulator's changelog of MDT0 is filled with BENCH_SCALE_RECORDS records
# (default 1,000,000: CREATE + CLOSE of BENCH_SCALE_RECORDS / 2 files; BENCH_QUICK=1: 100,000)
# before the daemon starts, untimed. Then `lustre-blob daemon` starts and reads them through
# liblustreapi_sim.so (framing and decoding included), and the part times it until its changelog
# user has cleared every record (`mdd.*.changelog_users`), with the daemon's peak RSS (VmHWM) and
# the MDS calls it made (`sim.stats`). Disk: the files and the simulator's journal take about
# 3 KB per record (~3 GB for 1,000,000) under BENCH_WORK. Two runs on the same backlog (one
# changelog user each):
#   out-of-scope: `autoexport.path` names a directory the files are not in: reading, decoding,
#                 deduplication and the scope filter alone;
#   disabled:     auto-export off (`lustre-blob autoexport disable` semantics): the records are
#                 read and cleared, nothing is queued.

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

if [ "${BENCH_QUICK:-0}" = 1 ]; then sc_records="${BENCH_SCALE_RECORDS:-100000}"; else sc_records="${BENCH_SCALE_RECORDS:-1000000}"; fi
sc_files=$((sc_records / 2))
sc_mnt="$BENCH_WORK/scale-mnt"
rm -rf "$sc_mnt"
mkdir -p "$sc_mnt"
export LUSTREAPI_LIB="$bs_bin/liblustreapi_sim.so"
export LUSTRE_SIM_MOUNTTAB="$BENCH_WORK/mounttab"
export LUSTRE_SIM_MOUNT="$sc_mnt"
sc_fs="c$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
bs_spawn mds "$bs_bin/lustre-sim" mds --mount "$sc_mnt" --fsname "$sc_fs"
bs_watch=$bs_pid_mds
bs_wait "lustre-sim mds" 600 "$bs_bin/lustre-sim" lfs path2fid "$sc_mnt"
bs_watch=""
sc_lctl() { "$bs_bin/lustre-sim" lctl "$@"; }
# current_index, and the index USER cleared to, of MDT0.
sc_current() { sc_lctl get_param -n "mdd.$sc_fs-MDT0000.changelog_users" | awk '/^current_index:/ { print $2 }'; }
sc_cleared() { sc_lctl get_param -n "mdd.$sc_fs-MDT0000.changelog_users" | awk -v u="$1" '$1 == u { print $2 }'; }
# The calls a Lustre client would send to the MDS (the simulator's sent_to split, mds/stats.rs).
sc_calls() { sc_lctl get_param -n sim.stats | awk '$1 == "sent_to.mds" { n += $2 } END { print n + 0 }'; }

# The backlog: one user per run registered first (records exist only for registered users, and
# stay until every user cleared them), then the files.
sc_user_a=$(sc_lctl --device "$sc_fs-MDT0000" changelog_register -n)
sc_user_b=$(sc_lctl --device "$sc_fs-MDT0000" changelog_register -n)
bs_container scale
bs_container bench-logs
echo "bench: scale: writing $sc_files files ($sc_records records) into the simulator (not timed)" >&2
t0=$(bs_now)
bs_tiny_tree "$sc_mnt/tree" "$sc_files"
sc_dirs=$(( (sc_files + 999) / 1000 + 1 ))
until [ "$(sc_current)" -ge $((sc_files * 2 + sc_dirs)) ] 2>/dev/null; do
  kill -0 "$bs_pid_mds" 2>/dev/null || { echo "bench: scale: lustre-sim mds exited:" >&2; tail -n 3 "$BENCH_WORK/mds.log" >&2; exit 1; }
  sleep 1
done
sc_total=$(sc_current)
echo "scale: backlog of $sc_total records ($sc_files files) made in $(bs_secs "$t0" "$(bs_now)") s (not a figure)"

# sc_drain NAME USER AUTOEXPORT PATH: a daemon behind the whole backlog, timed until USER cleared
# it all.
sc_drain() {
  local name=$1 user=$2 auto=$3 path=$4 policy calls0 calls1 t_start t_end hwm=0 h
  policy="$BENCH_WORK/policy-scale-$name.toml"
  cat >"$policy" <<EOF
[lustre]
mount = "$sc_mnt"
changelog_user = "$user"
[blob]
url = "$BENCH_ENDPOINT/scale"
use_emulator = true
[autoexport]
enabled = $auto
path = "$path"
[logging]
container = "bench-logs"
[control]
socket = "$BENCH_WORK/lustre-blob-scale-$name.sock"
state_dir = "$BENCH_WORK/state-scale-$name"
EOF
  calls0=$(sc_calls)
  t_start=$(bs_now)
  bs_spawn "daemon_$name" "$bs_bin/lustre-blob" daemon --config "$policy"
  local pid_var="bs_pid_daemon_${name//-/_}"
  local pid=${!pid_var}
  until [ "$(sc_cleared "$user")" -ge "$sc_total" ] 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: scale: the daemon exited:" >&2; tail -n 5 "$BENCH_WORK/daemon_$name.log" >&2; return 1; }
    h=$(bs_hwm "$pid")
    hwm=$(bs_max "$hwm" "$h")
    sleep 0.2
  done
  t_end=$(bs_now)
  hwm=$(bs_max "$hwm" "$(bs_hwm "$pid")")
  calls1=$(sc_calls)
  local secs
  secs=$(bs_secs "$t_start" "$t_end")
  echo "scale: $name: $sc_total records drained in $secs s = $(awk -v n="$sc_total" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') records/s (from the daemon's start, its start-up included); peak RSS $(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') MiB; MDS calls $((calls1 - calls0)) ($(awk -v c="$((calls1 - calls0))" -v n="$sc_total" 'BEGIN { printf "%.4f", c / n }') per record)"
  mkdir -p "$bench_results"
  printf '{"what": "backlog, %s", "size": %d, "seconds": %s, "rss_kib": {"daemon": %d}}\n' \
    "$name" "$sc_total" "$secs" "$hwm" >"$bench_results/rss-backlog-$name-$sc_total.json"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

sc_drain out-of-scope "$sc_user_a" true "elsewhere"
sc_drain disabled "$sc_user_b" false ""
bs_stop
bs_trash "$sc_mnt"
trap "$bs_prev_exit" EXIT
