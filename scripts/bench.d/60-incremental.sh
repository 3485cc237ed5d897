# Part "60-incremental" of scripts/bench (sourced): the cost of one incremental export after 100
# changes in a large tree: an auto-export iteration of `lustre-blob daemon` (changelog driven,
# timed with `lustre-blob flush --wait`) next to `rclone sync` of the same tree (which lists every
# blob and stats every file). Both start from an exported tree: rclone from a seeded container,
# ours from a simulator started on the written tree (its start-up scan gives the files FIDs;
# changelog records exist only once the user is registered, after that scan). Prints times, the
# ratio and peak RSS. Size: BENCH_TREE_FILES (20000); BENCH_CHANGES (100). BENCH_INCR_TOOLS
# ("ours rclone") picks the tools: "ours" alone needs no seeding, so it runs at 200,000 files.
# The default is 20,000, not the 200,000 of issue 7: Azurite's in-memory store looks at every
# blob of the account on each Put, so seeding N blobs costs O(N^2) (2,000 blobs at ~630/s,
# 20,000 at ~90/s here); 200,000 would take hours. See BENCHMARKS.md.

# shellcheck source=/dev/null
source scripts/lib/bench-stack.sh
bs_prev_exit=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//")
trap "bs_stop; $bs_prev_exit" EXIT
bs_build

tree_n="${BENCH_TREE_FILES:-20000}"
changes="${BENCH_CHANGES:-100}"
mnt="$BENCH_WORK/incr-mnt"
mkdir -p "$mnt/tree"
echo "bench: generating a tree of $tree_n tiny files" >&2
bs_tiny_tree "$mnt/tree" "$tree_n"

# change_files OFFSET: appends to BENCH_CHANGES files spread over the tree (OFFSET shifts them,
# so the second tool gets files of its own to find).
change_files() {
  python3 - "$mnt/tree" "$tree_n" "$changes" "$1" <<'PY'
import os, sys
d, n, c, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
step = max(1, n // c)
for k in range(c):
    i = (k * step + off) % n
    with open(os.path.join(d, f"d{i // 1000:04d}", f"f{i:07d}"), "ab") as f:
        f.write(b"changed\n")
PY
}

# Ours, on the part's fresh Azurite: the simulator starts on the written tree (its start-up scan
# gives the files FIDs; changelog records exist only once the user is registered), so the tree
# counts as exported; then the changes, and one timed iteration.
tools=" ${BENCH_INCR_TOOLS:-ours rclone} "
t_ours="" rss_d="" rss_ct="" t_rc="" rss_rc="" rc_moved=""
if [[ $tools == *" ours "* ]]; then
bs_container ours
bs_start "$mnt" ours true
"$bs_bin/lustre-blob" flush --wait --timeout 10m --config "$bs_policy" >/dev/null
change_files 0
bs_timed ours-incr "$bs_bin/lustre-blob" flush --wait --timeout 30m --config "$bs_policy"
t_ours=$bs_elapsed
rss_d=$(bs_hwm "$bs_pid_daemon")
rss_ct=$(bs_hwm "$bs_pid_copytool")
bs_stop
fi

# rclone, on an Azurite of its own (Azurite's in-memory store scans every blob of the account on
# each Put, so sharing one would charge each tool for the other's blobs), seeded with the tree as
# it is now by blob_bench seed-tree: the blobs `rclone copy` would leave (name, bytes and rclone's
# `mtime` metadata), written several times faster than rclone writes them. The count rclone
# reports copying shows the seed was right: BENCH_CHANGES, not the tree.
if [[ $tools == *" rclone "* ]]; then
bench_restart_azurite
bs_container rclone-sync
bs_rclone_conf
echo "bench: seeding az:rclone-sync with $tree_n blobs (not measured)" >&2
t0=$(bs_now)
rate=$("$BENCH_BLOB" seed-tree --endpoint "$BENCH_ENDPOINT" --container rclone-sync --dir "$mnt/tree" --concurrency 32)
echo "incremental: seeding $tree_n blobs took $(bs_secs "$t0" "$(bs_now)") s, $rate files/s (not a figure)"
change_files 7
bs_timed rclone-sync rclone --config "$BENCH_WORK/rclone.conf" sync "$mnt/tree" az:rclone-sync --transfers 16 -v
t_rc=$bs_elapsed
rss_rc=$bs_rss
rc_moved=$(grep -c ": Copied (replaced existing)\|: Copied (new)" "$BENCH_WORK/rclone-sync.out" || true)
fi

echo "incremental: $changes changes in $tree_n files"
[ -z "$t_ours" ] || echo "incremental:   lustre-blob iteration (flush --wait)  ${t_ours} s  peak RSS KiB: daemon $rss_d, lhsmtool_blob $rss_ct"
[ -z "$t_rc" ] || echo "incremental:   rclone sync                            ${t_rc} s  peak RSS KiB: $rss_rc  (it copied $rc_moved files)"
[ -z "$t_ours" ] || [ -z "$t_rc" ] || echo "incremental:   ratio rclone-sync/ours $(bs_ratio "$t_rc" "$t_ours")x"
mkdir -p "$bench_results"
printf '{"what": "incremental", "size": %d, "rss_kib": {"daemon": %s, "lhsmtool_blob": %s, "rclone sync": %s}}\n' \
  "$tree_n" "${rss_d:-0}" "${rss_ct:-0}" "${rss_rc:-0}" >"$bench_results/rss-incremental-$tree_n.json"
rm -rf "$mnt"
trap "$bs_prev_exit" EXIT
