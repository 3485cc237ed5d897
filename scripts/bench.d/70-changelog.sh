# Part "70-changelog" of scripts/bench (sourced): changelog processing speed of the policy
# engine on one core (DESIGN §7: at least 100,000 records/s), with `bench-changelog`
# (a synthetic changelog through the real engine: scope filter, directory cache, dedup by FID;
# the namespace is in memory, so Lustre's own cost is not in the figure). Prints records/s,
# the ratio to the target and peak RSS. Size: BENCH_CL_RECORDS (2,000,000), BENCH_CL_FILES (100,000).

echo "bench: building bench-changelog (release)" >&2
cargo build --release -q -p policy --features testing --bin bench-changelog
records="${BENCH_CL_RECORDS:-2000000}"
files="${BENCH_CL_FILES:-100000}"
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0)
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%M")
out=$("${timer[@]}" "${pin[@]}" "$BENCH_TARGET/bench-changelog" \
  --records "$records" --files "$files" 2>"$BENCH_WORK/cl-rss")
rate=$(printf '%s' "$out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records_per_second"]))')
rss=$(tail -n 1 "$BENCH_WORK/cl-rss" 2>/dev/null || true)
echo "changelog: $records records over $files files on one core: $rate records/s" \
  "($(python3 -c "print(round($rate/100000, 2))")x the 100,000/s target)${rss:+, peak RSS ${rss} KiB}"
