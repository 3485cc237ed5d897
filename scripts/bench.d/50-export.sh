# Part "50-export" of scripts/bench (sourced): manual export (`lustre-blob export PATH --wait`,
# i.e. the daemon + one lhsmtool_blob on lustre-sim) of 4 x 1 GiB and of 10,000 x 64 KiB files,
# next to `rclone copy` of the same files (defaults, and --transfers 16) to the same Azurite in
# the same run, our uploader alone and the endpoint's raw ceiling. Prints
# throughput, ratios and peak RSS of each.
# Sizes: BENCH_LARGE_COUNT (4), BENCH_LARGE_MIB (1024), BENCH_SMALL_COUNT (10000), BENCH_SMALL_KIB (64).
# BENCH_EXPORT_SHAPES ("large small") picks the shapes to run, BENCH_EXPORT_TOOLS ("ours
# rclone_default rclone_16 uploader raw") the tools; a ratio needs ours and raw.

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

large_n="${BENCH_LARGE_COUNT:-4}"
large_mib="${BENCH_LARGE_MIB:-1024}"
small_n="${BENCH_SMALL_COUNT:-10000}"
small_kib="${BENCH_SMALL_KIB:-64}"
mnt="$BENCH_WORK/export-mnt"
mkdir -p "$mnt/large" "$mnt/small"
case " ${BENCH_EXPORT_SHAPES:-large small} " in *" large "*) ;; *) large_n=0 ;; esac
case " ${BENCH_EXPORT_SHAPES:-large small} " in *" small "*) ;; *) small_n=0 ;; esac
echo "bench: generating $large_n x $large_mib MiB and $small_n x $small_kib KiB" >&2
for i in $(seq 1 "$large_n"); do
  head -c $((large_mib * 1024 * 1024)) /dev/urandom >"$mnt/large/big-$i.dat"
done
python3 - "$mnt/small" "$small_n" "$small_kib" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(kib * 1024)
for i in range(n):
    sub = os.path.join(d, f"d{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:06d}.bin"), "wb") as f:
        f.write(i.to_bytes(8, "little") + block[8:])
PY
sync
bs_rclone_conf

# One measured run of each tool, each on a fresh Azurite (the in-memory store keeps deleted
# bytes; three copies of 4 GiB would not fit). Each keeps its best time and largest RSS.
# Undoes a previous run of ours on the mount: the simulator's state and the xattrs (FIDs, export
# records), so that every round exports the same new files.
reset_mount() {
  rm -rf "$mnt/.lustre"
  python3 - "$mnt" <<'PY'
import os, sys
for d, dirs, files in os.walk(sys.argv[1]):
    for p in [d] + [os.path.join(d, f) for f in files]:
        for x in os.listxattr(p, follow_symlinks=False):
            if x.startswith("trusted."):
                os.removexattr(p, x, follow_symlinks=False)
PY
}

run_ours() {
  local what=$1
  reset_mount
  bench_restart_azurite
  bs_container ours
  bs_start "$mnt" ours false
  # Where the CPU goes: seconds used by each process during the export, and with BENCH_PERF=1 a
  # perf profile of the copytool (perf report -i FILE; kept under BENCH_PERF_DIR, default
  # benchmarks/perf).
  local c0_ct c0_d c0_mds c0_az perf_pid=""
  c0_ct=$(bs_cpu "$bs_pid_copytool") c0_d=$(bs_cpu "$bs_pid_daemon") c0_mds=$(bs_cpu "$bs_pid_mds") c0_az=$(bs_cpu "$azurite_pid")
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    mkdir -p "${BENCH_PERF_DIR:-$bench_results/perf}"
    perf record -q -F 499 -g -p "$bs_pid_copytool" -o "${BENCH_PERF_DIR:-$bench_results/perf}/copytool-$what.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  bs_timed "ours-$what" "$bs_bin/lustre-blob" export "$mnt/$what" --wait --config "$bs_policy"
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null || true; fi
  echo "bench: export-$what ours: $bs_elapsed s; CPU s used meanwhile: lhsmtool_blob $(bs_secs "$c0_ct" "$(bs_cpu "$bs_pid_copytool")"), daemon $(bs_secs "$c0_d" "$(bs_cpu "$bs_pid_daemon")"), lustre-sim $(bs_secs "$c0_mds" "$(bs_cpu "$bs_pid_mds")"), azurite $(bs_secs "$c0_az" "$(bs_cpu "$azurite_pid")")" >&2
  t_ours=$(bs_min "$t_ours" "$bs_elapsed")
  rss_cli=$(bs_max "$rss_cli" "$bs_rss")
  rss_ct=$(bs_max "$rss_ct" "$(bs_hwm "$bs_pid_copytool")")
  rss_d=$(bs_max "$rss_d" "$(bs_hwm "$bs_pid_daemon")")
  bs_stop
}
run_rclone_default() {
  local what=$1
  bench_restart_azurite
  bs_container rclone-default
  bs_rclone_conf
  bs_timed "rclone-default-$what" rclone --config "$BENCH_WORK/rclone.conf" copy "$mnt/$what" az:rclone-default
  t_rd=$(bs_min "$t_rd" "$bs_elapsed")
  rss_rd=$(bs_max "$rss_rd" "$bs_rss")
}
run_rclone_16() {
  local what=$1
  bench_restart_azurite
  bs_container rclone-16
  bs_rclone_conf
  bs_timed "rclone-16-$what" rclone --config "$BENCH_WORK/rclone.conf" copy "$mnt/$what" az:rclone-16 --transfers 16
  t_r16=$(bs_min "$t_r16" "$bs_elapsed")
  rss_r16=$(bs_max "$rss_r16" "$bs_rss")
}

# Two more peers in the same run, with our copytool's parallelism. Large files: our uploader alone
# (`blob_bench ours-large`, one process per file, all at once, 8 MiB blocks x 8 in flight each:
# pread, CRC-32, Put Block, Put Block List, no HSM) and the endpoint's ceiling (`blob_bench
# raw-large`: object_store WriteMultipart from memory, no file reads, no checksum). Small files:
# our uploader alone (`blob_bench ours-small --as copytool`: each file read and put create-only
# with the copytool's metadata, 32 at once, no HSM) and the ceiling (`blob_bench raw-small`, one
# Put Blob each from memory, 32 in flight).
# Runs under /usr/bin/time, i.e. in a child bash: exported, with the mount passed as BENCH_MNT.
parallel_uploads() {
  local mode=$1 container=$2 f pids=() rc=0
  for f in "$BENCH_MNT/large"/*; do
    if [ "$mode" = ours-large ]; then
      "$BENCH_BLOB" ours-large --endpoint "$BENCH_ENDPOINT" --container "$container" --file "$f" \
        --name "$(basename "$f")" --block-size 8388608 --in-flight 8 &
    else
      "$BENCH_BLOB" raw-large --endpoint "$BENCH_ENDPOINT" --container "$container" \
        --size "$(stat -c %s "$f")" --name "$(basename "$f")" --block-size 8388608 --in-flight 8 &
    fi
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
export -f parallel_uploads
run_uploader() {
  bench_restart_azurite
  bs_container uploader
  if [ "$1" = large ]; then
    BENCH_MNT=$mnt bs_timed "uploader-$1" bash -c 'parallel_uploads "$@"' _ ours-large uploader
  else
    # Small files: our uploader alone, 32 at once, each blob as the copytool writes a new one
    # (create-only, its metadata): what the store costs for our blobs, without HSM.
    bs_timed "uploader-$1" "$BENCH_BLOB" ours-small --endpoint "$BENCH_ENDPOINT" --container uploader \
      --dir "$mnt/small" --concurrency 32 --as copytool
  fi
  echo "bench: export-$1 uploader: $bs_elapsed s; CPU s: blob_bench $(awk '/User time/ { u = $NF } /System time/ { s = $NF } END { print u + s }' "$BENCH_WORK/uploader-$1.time"), azurite $(bs_cpu "$azurite_pid") (since its start)" >&2
  t_up=$(bs_min "$t_up" "$bs_elapsed")
}
run_raw() {
  bench_restart_azurite
  bs_container raw
  if [ "$1" = large ]; then
    BENCH_MNT=$mnt bs_timed "raw-$1" bash -c 'parallel_uploads "$@"' _ raw-large raw
  else
    # Small files: one Put Blob each from memory, 32 in flight (our copytool's max_actions).
    bs_timed "raw-$1" "$BENCH_BLOB" raw-small --endpoint "$BENCH_ENDPOINT" --container raw \
      --count "$small_n" --size $((small_kib * 1024)) --concurrency 32
  fi
  echo "bench: export-$1 raw: $bs_elapsed s; CPU s: blob_bench $(awk '/User time/ { u = $NF } /System time/ { s = $NF } END { print u + s }' "$BENCH_WORK/raw-$1.time"), azurite $(bs_cpu "$azurite_pid") (since its start)" >&2
  t_raw=$(bs_min "$t_raw" "$bs_elapsed")
}

# export_one WHAT: BENCH_ROUNDS rounds (default 2) of the tools, the order rotated each
# round so that no tool always runs first or last on this shared machine; best time kept.
# Rounds also average out the memory Azurite fills: on a microVM that reports free pages to
# the host, a run whose Azurite finds memory the host took back is slower (memory-touch.py).
export_one() {
  local what=$1 bytes files round tool
  bytes=$(du -sb "$mnt/$what" | awk '{ print $1 }')
  files=$(find "$mnt/$what" -type f | wc -l)
  t_ours="" t_rd="" t_r16="" t_up="" t_raw="" rss_cli=0 rss_ct=0 rss_d=0 rss_rd=0 rss_r16=0
  local order=() t
  for t in ${BENCH_EXPORT_TOOLS:-ours rclone_default rclone_16 uploader raw}; do
    case $t in
      ours | rclone_default | rclone_16 | uploader | raw) order+=("run_$t") ;;
      *) echo "bench: BENCH_EXPORT_TOOLS: unknown tool '$t' (ours, rclone_default, rclone_16, uploader, raw)" >&2; exit 2 ;;
    esac
  done
  for round in $(seq 1 "${BENCH_ROUNDS:-2}"); do
    for tool in "${order[@]}"; do
      "$tool" "$what"
    done
    order=("${order[@]:1}" "${order[0]}")
    echo "bench: export-$what round $round: ours $t_ours s, rclone defaults $t_rd s, rclone --transfers 16 $t_r16 s, uploader alone ${t_up:-n/a} s, raw ceiling ${t_raw:-n/a} s (best so far)" >&2
  done

  echo "export-$what: $files files, $bytes bytes"
  # One line per tool: time, MB/s, files/s ("not run" for a tool BENCH_EXPORT_TOOLS left out).
  tool_line() {
    awk -v w="$what" -v n="$1" -v t="$2" -v b="$bytes" -v f="$files" 'BEGIN {
      if (t > 0) printf "export-%s:   %-26s %7.2f s  %8.1f MB/s  %8.1f files/s\n", w, n, t, b/1e6/t, f/t
      else printf "export-%s:   %-26s not run\n", w, n }'
  }
  tool_line "lustre-blob export" "$t_ours"
  tool_line "rclone copy (defaults)" "$t_rd"
  tool_line "rclone copy --transfers 16" "$t_r16"
  echo "export-$what:   ratio ours/rclone-defaults $(bs_ratio "$t_rd" "$t_ours")x  ours/rclone-16 $(bs_ratio "$t_r16" "$t_ours")x"
  tool_line "uploader alone (no HSM)" "$t_up"
  tool_line "raw ceiling (memory)" "$t_raw"
  echo "export-$what:   share of the raw ceiling: lustre-blob export $(bs_ratio "$t_raw" "$t_ours"), uploader alone $(bs_ratio "$t_raw" "${t_up:-0}"), rclone defaults $(bs_ratio "$t_raw" "$t_rd"), rclone --transfers 16 $(bs_ratio "$t_raw" "$t_r16")"
  echo "export-$what:   peak RSS KiB: lhsmtool_blob $rss_ct, lustre-blob daemon $rss_d, lustre-blob export (CLI) $rss_cli, rclone defaults $rss_rd, rclone --transfers 16 $rss_r16"
  # For the charts (scripts/lib/charts.py): best time per tool as MB/s.
  local label
  if [ "$what" = large ]; then label="${large_mib} MiB"; else label="${small_kib} KiB"; fi
  mkdir -p "$bench_results"
  awk -v b="$bytes" -v f="$files" -v w="$what" -v l="$label" -v o="$t_ours" -v d="$t_rd" \
    -v s="$t_r16" -v u="${t_up:-0}" -v r="$t_raw" 'function t(x) {
      return x > 0 ? sprintf("{\"seconds\": %s, \"mb_s\": %.1f}", x, b / 1e6 / x) : "null" }
    BEGIN { printf "{\"shape\": \"%s\", \"count\": %d, \"file_bytes\": %d, \"file_label\": \"%s\", \"ours\": %s, \"rclone_default\": %s, \"rclone_16\": %s, \"uploader\": %s, \"raw\": %s}\n",
      w, f, b / f, l, t(o), t(d), t(s), t(u), t(r) }' >"$bench_results/export-$what.json"
}

for shape in ${BENCH_EXPORT_SHAPES:-large small}; do
  case $shape in
    large | small) export_one "$shape" ;;
    *) echo "bench: BENCH_EXPORT_SHAPES: unknown shape '$shape' (large, small)" >&2; exit 2 ;;
  esac
done
rm -rf "$mnt"
trap "$bs_prev_exit" EXIT
