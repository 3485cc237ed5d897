# Part "80-freshness" of scripts/bench (sourced): how long a closed file waits before its blob
# exists (issue 17 item 1). A steady trickle (BENCH_TRICKLE_RATE files/s, default 10, for
# BENCH_TRICKLE_SECONDS, default 120) into a daemon with auto-export on, measured by
# scripts/lib/freshness.py: an independent client that HEADs each written file's blob until it
# exists (see there for why a poller and what its error is). Twice, each on a fresh stack and
# Azurite: idle, and while a bulk export runs (BENCH_FRESH_BULK_LARGE x BENCH_FRESH_BULK_MIB MiB
# plus BENCH_FRESH_BULK_SMALL x 64 KiB files, default 4 x 1024 MiB + 10,000, written into the
# file system first; the trickle starts once they are written, while auto-export works through
# them: one long iteration that the trickle's changes join).
# BENCH_FRESH_BULK_MODE: "backlog" (default) writes the bulk with the daemon stopped and starts
# it once every bulk file is closed; "live" (before issue-17e) writes it while the daemon runs.
# After the trickle, a bulk run waits for the bulk export to end (BENCH_FRESH_BULK_WAIT s, 900)
# and prints its files/s from the copytool's log, over the trickle and over the whole export.
# BENCH_FRESH_STAGES=1 logs the daemon at trace and the copytool at debug level and prints where
# each trickle file's time went, stage by stage (scripts/lib/freshness_stages.py).
# BENCH_QUICK=1: 20 s of trickle beside 1 x 256 MiB + 2,000 small files. BENCH_FRESH_RUNS picks
# the runs ("idle bulk"); BENCH_LOGS=DIR keeps the product's logs of each run there.
# BENCH_FRESH_POLLERS (16) and BENCH_FRESH_POLL (0.02 s) set the reader's HEAD pollers: each
# polls its share of the files not seen yet that often, so beside a bulk load, where files wait
# seconds, 16 pollers keep 16 HEADs at Azurite at all times, load the export competes with; the
# copytool-side figure (from its log) needs no poller and is fairest with few.
# Prints p50/p90/p99 and a histogram per run; the JSON of each run stays in
# BENCH_RESULTS (default benchmarks/, next to BENCHMARKS.md) for the charts.

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  fr_secs="${BENCH_TRICKLE_SECONDS:-20}"
  fr_large="${BENCH_FRESH_BULK_LARGE:-1}" fr_mib="${BENCH_FRESH_BULK_MIB:-256}"
  fr_small="${BENCH_FRESH_BULK_SMALL:-2000}"
else
  fr_secs="${BENCH_TRICKLE_SECONDS:-120}"
  fr_large="${BENCH_FRESH_BULK_LARGE:-4}" fr_mib="${BENCH_FRESH_BULK_MIB:-1024}"
  fr_small="${BENCH_FRESH_BULK_SMALL:-10000}"
fi
fr_rate="${BENCH_TRICKLE_RATE:-10}"
fr_mode="${BENCH_FRESH_BULK_MODE:-backlog}"
case $fr_mode in
  backlog | live) ;;
  *) echo "bench: BENCH_FRESH_BULK_MODE: unknown mode '$fr_mode' (backlog, live)" >&2; exit 2 ;;
esac
fr_out="$bench_results"
if [ "${BENCH_FRESH_STAGES:-0}" = 1 ]; then
  export RUST_LOG="info,policy::engine=trace,copytool::actions=debug"
fi
# The settings a run differs from the defaults in, for the labels of its results and charts.
fr_setting="${BENCH_CHANGELOG_INTERVAL:+, changelog_interval $BENCH_CHANGELOG_INTERVAL}"
fr_setting="$fr_setting${BENCH_QUEUE_TARGET:+, queue_target $BENCH_QUEUE_TARGET}"
mkdir -p "$fr_out"

# fr_status NAME WHEN: the daemon's counters (is the bulk export still running?).
fr_status() {
  local st
  st=$("$bs_bin/lustre-blob" status --json --config "$bs_policy")
  python3 - "$1" "$2" "$st" <<'PY'
import json, sys
name, when, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
left = s["pendingFiles"] + s["inFlightFiles"]
print(f"freshness: {name}: {when}: {s['totalFilesExported']} files exported, {left} pending or "
      f"in flight, iteration {s['currentIteration']} running: {s['currentIterationRunning']}")
PY
}

# fr_left: files pending or in flight (0: the daemon has exported everything it saw).
fr_left() {
  "$bs_bin/lustre-blob" status --json --config "$bs_policy" |
    python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["pendingFiles"] + s["inFlightFiles"])'
}

# fr_run NAME BULK(0|1): a fresh stack, (the bulk,) then the trickle.
fr_run() {
  local name=$1 bulk=$2 mnt="$BENCH_WORK/fresh-$1"
  rm -rf "$mnt"
  mkdir -p "$mnt"
  bench_restart_azurite
  bs_container "fresh-$name"
  bs_start "$mnt" "fresh-$name" true
  if [ "$bulk" = 1 ]; then
    # The bulk is written first, then the trickle starts while its export runs. "backlog": the
    # daemon is stopped while the bulk is written and started again once it is closed, so the
    # export begins with every bulk file whole (4 x 1 GiB among them) and runs beside the
    # trickle. "live": auto-export takes the bulk up as it lands; a 1 GiB file requested
    # while still being written ends EBUSY and waits for the next iteration, which a trickle
    # joining the running one can put off until the trickle stops (so whether the large files
    # are exported beside the trickle at all is left to chance).
    if [ "$fr_mode" = backlog ]; then
      kill -TERM -- "-$bs_pid_daemon" 2>/dev/null || true
      while kill -0 "$bs_pid_daemon" 2>/dev/null; do sleep 0.1; done
    fi
    echo "bench: freshness: writing $fr_large x $fr_mib MiB and $fr_small x 64 KiB (the bulk, $fr_mode)" >&2
    mkdir -p "$mnt/bulk/large"
    local writers=() w
    for i in $(seq 1 "$fr_large"); do
      head -c $((fr_mib * 1024 * 1024)) /dev/urandom >"$mnt/bulk/large/big-$i.dat" &
      writers+=("$!")
    done
    python3 - "$mnt/bulk/small" "$fr_small" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
block = os.urandom(64 * 1024)
for i in range(n):
    sub = os.path.join(d, f"d{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:06d}.bin"), "wb") as f:
        f.write(i.to_bytes(8, "little") + block[8:])
PY
    for w in "${writers[@]}"; do wait "$w"; done
    if [ "$fr_mode" = backlog ]; then
      # On disk before the export starts: the simulator fsyncs its journal for every archive
      # it ends, and an fsync queued behind gigabytes of dirty bulk data stalled every copy
      # for seconds (not something a Lustre MDS shares with its clients' data).
      sync
      bs_spawn daemon "$bs_bin/lustre-blob" daemon --config "$bs_policy"
      bs_watch=$bs_pid_daemon
      bs_wait "lustre-blob daemon" 60 "$bs_bin/lustre-blob" status --config "$bs_policy"
      bs_watch=""
    fi
    fr_status "$name" "when the trickle started"
  fi
  # A file never seen fails the part, after the logs are kept (BENCH_LOGS) and the daemon's
  # view of it printed.
  local fr_failed=0
  python3 scripts/lib/freshness.py --endpoint "$BENCH_ENDPOINT" --container "fresh-$name" \
    --mount "$mnt" --subdir trickle --rate "$fr_rate" --seconds "$fr_secs" \
    --pollers "${BENCH_FRESH_POLLERS:-16}" --poll "${BENCH_FRESH_POLL:-0.02}" \
    --label "$name$fr_setting" --json "$fr_out/freshness-$name.json" || fr_failed=1
  if [ "$fr_failed" = 1 ]; then
    "$bs_bin/lustre-blob" status --config "$bs_policy" >&2 || true
  fi
  if [ "$bulk" = 1 ]; then
    fr_status "$name" "when the last trickle file was seen"
    # The bulk's own export to its end (up to BENCH_FRESH_BULK_WAIT s, default 900), so the
    # copytool log below holds its whole span: its files/s is the throughput a change to the
    # request window must not lower.
    local deadline=$((SECONDS + ${BENCH_FRESH_BULK_WAIT:-900}))
    until fr_left=$(fr_left) && [ "$fr_left" = 0 ]; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "freshness: $name: bulk not finished ($fr_left left)"; break; }
      sleep 1
    done
    fr_status "$name" "when the bulk export ended"
  fi
  # The same files from the copytool's side: close() -> the store's answer to the commit.
  python3 scripts/lib/freshness_commit.py "$fr_out/freshness-$name.json" "$BENCH_WORK/copytool.log" \
    --label "$name$fr_setting" --json "$fr_out/freshness-commit-$name.json" \
    $([ "$bulk" = 1 ] && echo --bulk bulk/) || true
  if [ "${BENCH_FRESH_STAGES:-0}" = 1 ]; then
    python3 scripts/lib/freshness_stages.py "$fr_out/freshness-$name.json" "$BENCH_WORK/daemon.log" \
      "$BENCH_WORK/copytool.log" || true
  fi
  echo "freshness: $name: peak RSS KiB: daemon $(bs_hwm "$bs_pid_daemon"), lhsmtool_blob $(bs_hwm "$bs_pid_copytool")"
  echo "freshness: $name: CPU seconds: daemon $(bs_cpu "$bs_pid_daemon"), lhsmtool_blob $(bs_cpu "$bs_pid_copytool"), lustre-sim $(bs_cpu "$bs_pid_mds"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  bs_stop
  if [ -n "${BENCH_LOGS:-}" ]; then
    mkdir -p "$BENCH_LOGS/$name" && cp "$BENCH_WORK"/*.log "$BENCH_LOGS/$name/" 2>/dev/null || true
  fi
  rm -rf "$mnt"
  if [ "$fr_failed" = 1 ]; then
    echo "bench: freshness: $name: a trickle file never reached the store" >&2
    return 1
  fi
}

for fr_which in ${BENCH_FRESH_RUNS:-idle bulk}; do
  case $fr_which in
    idle) fr_run idle 0 ;;
    bulk) fr_run bulk 1 ;;
    *) echo "bench: BENCH_FRESH_RUNS: unknown run '$fr_which' (idle, bulk)" >&2; exit 2 ;;
  esac
done
