# Helpers for the export benchmarks (scripts/bench.d/5x-*, 6x-*; sourced by them, which the
# scripts/bench driver sources in turn). They start the product on lustre-sim against the part's
# Azurite (BENCH_ENDPOINT), time commands and read peak RSS. Everything started here is stopped
# by bs_stop (and by the part's EXIT handling through bs_stop_all).

bs_bin="${BENCH_TARGET:-target/release}"
# Where parts leave their results as JSON, and the charts go (next to BENCHMARKS.md).
bench_results="${BENCH_RESULTS:-$PWD/benchmarks}"

# Release builds of the three product binaries and the simulator library.
# BENCH_NO_BUILD=1 uses what BENCH_TARGET already holds (e.g. a debug build, for trying a part).
bs_build() {
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    echo "bench: building release lustre-blob, lhsmtool_blob, lustre-sim" >&2
    cargo build --release -q -p policy -p copytool -p lustre-sim --bins --lib
  fi
  for f in lustre-blob lhsmtool_blob lustre-sim liblustreapi_sim.so; do
    [ -e "$bs_bin/$f" ] || { echo "bench: $bs_bin/$f missing after the build" >&2; return 1; }
  done
}

bs_now() { date +%s.%N; }
bs_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
bs_min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 < a + 0) print b; else print a }'; }
bs_max() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > a + 0) print b; else print a }'; }
bs_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Peak RSS (KiB) of a running process: VmHWM.
bs_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

bs_container() {
  python3 scripts/lib/azblob.py "$BENCH_ENDPOINT" mkcontainer "$1"
}

bs_rclone_conf() {
  cat >"$BENCH_WORK/rclone.conf" <<CONF
[az]
type = azureblob
use_emulator = true
endpoint = $BENCH_ENDPOINT
CONF
}

# bs_timed NAME CMD...: runs CMD under /usr/bin/time -v; sets bs_elapsed (s) and bs_rss (KiB).
bs_timed() {
  local name=$1
  shift
  local t0 t1
  t0=$(bs_now)
  /usr/bin/time -v -o "$BENCH_WORK/$name.time" "$@" >"$BENCH_WORK/$name.out" 2>&1 || {
    echo "bench: $name failed:" >&2
    tail -n 20 "$BENCH_WORK/$name.out" >&2
    return 1
  }
  t1=$(bs_now)
  bs_elapsed=$(bs_secs "$t0" "$t1")
  bs_rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$BENCH_WORK/$name.time")
}

bs_pids=()
bs_spawn() { # NAME CMD...
  local name=$1
  shift
  setsid "$@" </dev/null >"$BENCH_WORK/$name.log" 2>&1 &
  bs_pids+=("$!")
  eval "bs_pid_${name//-/_}=$!"
}

bs_wait() { # WHAT SECONDS CMD...   (gives up early when the process named by bs_watch died)
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -n "${bs_watch:-}" ] && ! kill -0 "$bs_watch" 2>/dev/null; then
      echo "bench: $what: the process exited" >&2
      return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || { echo "bench: $what not ready after ${secs}s" >&2; return 1; }
    sleep 0.2
  done
}

# bs_start MOUNT CONTAINER [AUTOEXPORT=false]: simulator on MOUNT (existing files are found by
# its start-up scan), a changelog user, the policy file, one copytool and the daemon.
# BENCH_BLOCK_SIZE (8MiB), BENCH_BLOCKS_IN_FLIGHT (8) and BENCH_MAX_ACTIONS (32) set the copytool;
# BENCH_MAX_IN_FLIGHT, BENCH_QUEUE_TARGET and BENCH_MIN_IN_FLIGHT the daemon's
# autoexport.max_in_flight, queue_target ("0s": the fixed bound of before issue-17e) and
# min_in_flight (default: the product's); BENCH_CHANGELOG_INTERVAL its [lustre]
# changelog_interval (default: the product's, "auto"; "1s" is Lustre's follow mode).
bs_start() {
  local mnt=$1 container=$2 auto=${3:-false}
  export LUSTREAPI_LIB="$bs_bin/liblustreapi_sim.so"
  export LUSTRE_SIM_MOUNTTAB="$BENCH_WORK/mounttab"
  export LUSTRE_SIM_MOUNT="$mnt"
  local fs="b$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
  bs_fsname=$fs
  bs_spawn mds "$bs_bin/lustre-sim" mds --mount "$mnt" --fsname "$fs"
  bs_watch=$bs_pid_mds
  bs_wait "lustre-sim mds" 600 "$bs_bin/lustre-sim" lfs path2fid "$mnt"
  bs_user=$("$bs_bin/lustre-sim" lctl --device "$fs-MDT0000" changelog_register -n)
  "$bs_bin/lustre-sim" lctl set_param "mdt.$fs-MDT*.hsm.max_requests=64" >/dev/null
  bs_policy="$BENCH_WORK/policy-$container.toml"
  # A state directory per simulated file system: the daemon refuses a state kept for another one.
  cat >"$bs_policy" <<EOF
[lustre]
mount = "$mnt"
changelog_user = "$bs_user"
${BENCH_CHANGELOG_INTERVAL:+changelog_interval = \"$BENCH_CHANGELOG_INTERVAL\"}
[blob]
url = "$BENCH_ENDPOINT/$container"
use_emulator = true
request_timeout = "120s"
[autoexport]
enabled = $auto
${BENCH_MAX_IN_FLIGHT:+max_in_flight = $BENCH_MAX_IN_FLIGHT}
${BENCH_QUEUE_TARGET:+queue_target = \"$BENCH_QUEUE_TARGET\"}
${BENCH_MIN_IN_FLIGHT:+min_in_flight = $BENCH_MIN_IN_FLIGHT}
[logging]
container = "bench-logs"
[copytool]
max_actions = ${BENCH_MAX_ACTIONS:-32}
block_size = "${BENCH_BLOCK_SIZE:-8MiB}"
blocks_in_flight = ${BENCH_BLOCKS_IN_FLIGHT:-8}
update_interval = "5s"
[control]
socket = "$BENCH_WORK/lustre-blob-$container.sock"
state_dir = "$BENCH_WORK/state-$container-$fs"
EOF
  bs_container bench-logs
  bs_spawn copytool "$bs_bin/lhsmtool_blob" --archive 1 --config "$bs_policy" "$mnt"
  bs_spawn daemon "$bs_bin/lustre-blob" daemon --config "$bs_policy"
  bs_watch=$bs_pid_daemon
  bs_wait "lustre-blob daemon" 60 "$bs_bin/lustre-blob" status --config "$bs_policy" || {
    tail -n 5 "$BENCH_WORK/daemon.log" >&2
    return 1
  }
  bs_watch=""
}

# Stops what bs_start started (TERM, then KILL), leaving Azurite to the driver.
bs_stop() {
  local p
  for p in "${bs_pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${bs_pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  bs_pids=()
}

# Current RSS (KiB) of a running process: VmRSS.
bs_rss_now() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# bs_sample_rss PID OUT [PERIOD=0.5]: in the background, appends "seconds rss_kib" lines to OUT
# every PERIOD seconds while PID lives (RSS over time, for the charts). Sets bs_sampler (its pid).
bs_sample_rss() {
  local pid=$1 out=$2 period=${3:-0.5}
  : >"$out"
  (
    t0=$(bs_now)
    while kill -0 "$pid" 2>/dev/null; do
      echo "$(bs_secs "$t0" "$(bs_now)") $(bs_rss_now "$pid")" >>"$out"
      sleep "$period"
    done
  ) &
  bs_sampler=$!
}

# CPU seconds (user + system) used so far by the processes of session SID (every process the
# bench starts runs under setsid, so its session is its pid; threads are included, exited
# children are not).
bs_cpu() {
  local p tck
  tck=$(getconf CLK_TCK)
  for p in $(ps --no-headers -o pid -s "$1" 2>/dev/null); do
    sed 's/.*) //' "/proc/$p/stat" 2>/dev/null
  done | awk -v t="$tck" '{ s += $12 + $13 } END { printf "%.2f", s / t }'
}

# bs_trash DIR...: moves DIRs aside and deletes them in the background at idle I/O priority
# (hundreds of thousands of files take minutes to delete; the next part need not wait).
bs_trash() {
  local t
  t=$(mktemp -d "${TMPDIR:-/tmp}/lustre-blob-bench-trash.XXXXXX")
  mv "$@" "$t/" 2>/dev/null || true
  setsid ionice -c3 nice rm -rf "$t" </dev/null >/dev/null 2>&1 &
}

# bs_tiny_tree DIR N: N files of a few bytes under DIR, 1,000 per directory (d0000/f0000000 ...),
# each holding its number: the large trees of the scale parts, written before any timing.
bs_tiny_tree() {
  python3 - "$1" "$2" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:07d}"), "wb") as f:
        f.write(b"%d\n" % i)
PY
}

# bs_manual_daemon NAME MOUNT CHANGELOG_USER: a daemon with auto-export off exporting into
# container NAME (for manual jobs), its policy in $BENCH_WORK/policy-NAME.toml; waits until it
# answers `status`.
bs_manual_daemon() {
  local name=$1 policy="$BENCH_WORK/policy-$1.toml"
  cat >"$policy" <<TOML
[lustre]
mount = "$2"
changelog_user = "$3"
[blob]
url = "$BENCH_ENDPOINT/$name"
use_emulator = true
[autoexport]
enabled = false
[logging]
container = "bench-logs"
[control]
socket = "$BENCH_WORK/lustre-blob-$name.sock"
state_dir = "$BENCH_WORK/state-$name"
TOML
  bs_spawn daemon "$bs_bin/lustre-blob" daemon --config "$policy"
  bs_watch=$bs_pid_daemon
  bs_wait "lustre-blob daemon" 60 "$bs_bin/lustre-blob" status --config "$policy"
  bs_watch=""
}
