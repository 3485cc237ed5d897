# Part "blob" of scripts/bench (sourced): upload throughput of our uploader next to rclone copy and
# a raw object_store ceiling, on the same Azurite, in the same run.
#   large: one 1 GiB file, 8 MiB blocks, 8 in flight (all three tools)
#   small: 2,000 files of 64 KiB, 16 in flight (all three tools)
# Each measurement runs BENCH_ROUNDS times (default 2) on fresh containers; the best is kept.

rounds="${BENCH_ROUNDS:-2}"
large="$BENCH_WORK/large.dat"
small="$BENCH_WORK/small"
"$BENCH_BLOB" gen-large --file "$large" --size $((1024 * 1024 * 1024))
"$BENCH_BLOB" gen-small --dir "$small" --count 2000 --size 65536

# rclone 1.60 against Azurite: use_emulator plus the path-style endpoint (see shared azurite notes).
rc() {
  cat >"$BENCH_WORK/rclone.conf" <<CONF
[az]
type = azureblob
use_emulator = true
endpoint = $BENCH_ENDPOINT
CONF
  rclone --config "$BENCH_WORK/rclone.conf" "$@"
}

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -a ours_l=() rclone_l=() raw_l=() ours_s=() rclone_s=() raw_s=()
for r in $(seq 1 "$rounds"); do
  bench_restart_azurite
  for c in ours-l-$r rclone-l-$r raw-l-$r; do bench_create_container "$c"; done
  ours_l+=("$("$BENCH_BLOB" ours-large --endpoint "$BENCH_ENDPOINT" --container "ours-l-$r" --file "$large" --block-size 8388608 --in-flight 8)")
  t0=$(now)
  rc copy "$large" "az:rclone-l-$r" --azureblob-chunk-size 8Mi --azureblob-upload-concurrency 8 --transfers 1 --retries 1 --low-level-retries 1
  t1=$(now)
  rclone_l+=("$(awk -v s=$((1024 * 1024 * 1024)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", s / 1e6 / (b - a) }')")
  raw_l+=("$("$BENCH_BLOB" raw-large --endpoint "$BENCH_ENDPOINT" --container "raw-l-$r" --size $((1024 * 1024 * 1024)) --block-size 8388608 --in-flight 8)")

  bench_restart_azurite
  for c in ours-s-$r rclone-s-$r raw-s-$r; do bench_create_container "$c"; done
  ours_s+=("$("$BENCH_BLOB" ours-small --endpoint "$BENCH_ENDPOINT" --container "ours-s-$r" --dir "$small" --concurrency 16)")
  t0=$(now)
  rc copy "$small" "az:rclone-s-$r" --transfers 16 --checkers 16 --retries 1 --low-level-retries 1
  t1=$(now)
  rclone_s+=("$(awk -v n=2000 -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')")
  raw_s+=("$("$BENCH_BLOB" raw-small --endpoint "$BENCH_ENDPOINT" --container "raw-s-$r" --count 2000 --size 65536 --concurrency 16)")
  echo "round $r: large MB/s ours=${ours_l[-1]} rclone=${rclone_l[-1]} raw=${raw_l[-1]}; small files/s ours=${ours_s[-1]} rclone=${rclone_s[-1]} raw=${raw_s[-1]}" >&2
done

ol=$(best "${ours_l[@]}"); rl=$(best "${rclone_l[@]}"); wl=$(best "${raw_l[@]}")
os=$(best "${ours_s[@]}"); rs=$(best "${rclone_s[@]}"); ws=$(best "${raw_s[@]}")
echo "blob: 1 GiB upload (MB/s, best of $rounds): ours $ol | rclone copy $rl | object_store raw $wl"
echo "blob:   ours/rclone $(ratio "$ol" "$rl")  ours/raw $(ratio "$ol" "$wl")"
echo "blob: 2,000 x 64 KiB upload (files/s, best of $rounds): ours $os | rclone copy $rs | object_store raw $ws"
echo "blob:   ours/rclone $(ratio "$os" "$rs")  ours/raw $(ratio "$os" "$ws")"
