# Part "60-incremental" of scripts/bench (sourced): the cost of one incremental export after 100
# changes in a 200,000-file tree: an auto-export iteration of `lustre-blob daemon` (changelog
# driven, timed with `lustre-blob flush --wait`) next to `rclone sync` of the same tree (which
# lists every blob and stats every file). Both start from an exported tree: rclone from a seeding
# copy, ours from a simulator started on the written tree (its start-up scan gives the files
# FIDs; changelog records exist only once the user is registered, after that scan). Prints times, the ratio and
# peak RSS. Size: BENCH_TREE_FILES (200000); BENCH_CHANGES (100).

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

tree_n="${BENCH_TREE_FILES:-200000}"
changes="${BENCH_CHANGES:-100}"
mnt="$BENCH_WORK/incr-mnt"
mkdir -p "$mnt/tree"
echo "bench: generating a tree of $tree_n tiny files" >&2
python3 - "$mnt/tree" "$tree_n" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:07d}"), "wb") as f:
        f.write(b"%d\n" % i)
PY

bs_container rclone-sync
bs_rclone_conf
echo "bench: seeding az:rclone-sync with rclone copy (not measured)" >&2
bs_timed rclone-seed rclone --config "$BENCH_WORK/rclone.conf" copy "$mnt/tree" az:rclone-sync \
  --transfers 32 --checkers 32 --no-check-dest
echo "incremental: seeding rclone copy of $tree_n files took ${bs_elapsed} s (not a figure)"

bs_container ours
bs_start "$mnt" ours true
"$bs_bin/lustre-blob" flush --wait --timeout 10m --config "$bs_policy" >/dev/null

python3 - "$mnt/tree" "$tree_n" "$changes" <<'PY'
import os, sys
d, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step = max(1, n // c)
for k in range(c):
    i = (k * step) % n
    with open(os.path.join(d, f"d{i // 1000:04d}", f"f{i:07d}"), "ab") as f:
        f.write(b"changed\n")
PY
bs_timed ours-incr "$bs_bin/lustre-blob" flush --wait --timeout 30m --config "$bs_policy"
t_ours=$bs_elapsed
rss_d=$(bs_hwm "$bs_pid_daemon")
rss_ct=$(bs_hwm "$bs_pid_copytool")
bs_stop

bs_timed rclone-sync rclone --config "$BENCH_WORK/rclone.conf" sync "$mnt/tree" az:rclone-sync --transfers 16
t_rc=$bs_elapsed
rss_rc=$bs_rss

echo "incremental: $changes changes in $tree_n files"
echo "incremental:   lustre-blob iteration (flush --wait)  ${t_ours} s"
echo "incremental:   rclone sync                            ${t_rc} s"
echo "incremental:   ratio rclone-sync/ours $(bs_ratio "$t_rc" "$t_ours")x"
echo "incremental:   peak RSS KiB: lustre-blob daemon $rss_d, lhsmtool_blob $rss_ct, rclone sync $rss_rc"
rm -rf "$mnt"
trap "$bs_prev_exit" EXIT
