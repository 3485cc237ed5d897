#!/usr/bin/env bash
# End-to-end check of lustre-blob on REAL Lustre (the Vagrant cluster's client1, or any Lustre client
# set up the same way): what the tests do on the simulator, plus what only real Lustre can show.
#
#   vagrant ssh client1 -c /vagrant/vagrant/e2e.sh
#
# It starts its own lhsmtool_blob and `lustre-blob daemon` with a per-run policy (export prefix
# <mount>/e2e-<time>-<pid>/, state and socket under /var/tmp/lustre-blob-e2e/<run>/), writes a tree
# under the prefix, waits with `lustre-blob flush --wait`, then checks through an independent client
# (vagrant/azurite-tool.js, Microsoft's SDK) that every file's blob has the file's exact bytes and
# Azure's metadata, that excluded and outside files were not exported, that `lfs hsm_state` says
# "exists archived", that a change is exported again, and that `lfs hsm_release` followed by a plain
# read (an implicit restore served by the copytool: the kernel blocks the reader) gives identical bytes.
# Stops what it started; exits non-zero when any check fails. Prints "N passed, N failed".
#
# Environment (defaults match the Vagrant cluster): MOUNT, CHANGELOG_USER, E2E_CONTAINER,
# E2E_LOG_CONTAINER, AZURITE_BLOB_URL, FLUSH_TIMEOUT (seconds), KEEP (1 = leave the run's files).
# shellcheck disable=SC2016  # jq filters and bash -c scripts take their $variables as arguments
set -euo pipefail
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"

MOUNT=${MOUNT:-/mnt/lustre}
CHANGELOG_USER=${CHANGELOG_USER:-cl1}
CONTAINER=${E2E_CONTAINER:-lustre-e2e}
LOG_CONTAINER=${E2E_LOG_CONTAINER:-lustre-e2e-logs}
export AZURITE_BLOB_URL=${AZURITE_BLOB_URL:-http://127.0.0.1:10000/devstoreaccount1}
export NODE_PATH=${NODE_PATH:-/opt/lustre-blob-e2e/node_modules}
FLUSH_TIMEOUT=${FLUSH_TIMEOUT:-900}
KEEP=${KEEP:-0}
TOOL="$(dirname "$(readlink -f "$0")")/azurite-tool.js"
RUN="e2e-$(date -u +%Y%m%dt%H%M%S)-$$"
DIR="$MOUNT/$RUN"
WORK="/var/tmp/lustre-blob-e2e/$RUN"
POLICY="$WORK/policy.toml"
MiB=$((1024 * 1024))
# Real liblustreapi.so.1, never the simulator.
unset LUSTREAPI_LIB

say() { printf '== %s\n' "$*"; }
die() { printf 'e2e: %s\n' "$*" >&2; exit 1; }
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
# check DESCRIPTION COMMAND...: one counted check.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
blobs() { node "$TOOL" "$@"; }
# jq_true FILTER FILE [JQ ARGS...]: FILTER, over all JSON values of FILE as one array, gives true.
jq_true() {
  local filter=$1 file=$2
  shift 2
  jq -e -s "$@" "$filter" "$file" >/dev/null
}
# no_match FILTER FILE [JQ ARGS...]: true when jq runs cleanly and FILTER selects nothing.
no_match() {
  local filter=$1 file=$2 out
  shift 2
  out=$(jq -c "$@" "$filter" "$file") || return 1
  [ -z "$out" ]
}

# --- preconditions --------------------------------------------------------------------------
findmnt -t lustre -n "$MOUNT" >/dev/null || die "$MOUNT is not a Lustre mount"
for cmd in lhsmtool_blob lustre-blob lfs node jq sha256sum; do
  command -v "$cmd" >/dev/null || die "$cmd not found (provision client1 first)"
done
[ -f "$TOOL" ] || die "$TOOL missing"
blobs create "$CONTAINER" "$LOG_CONTAINER" || die "Azurite not reachable at $AZURITE_BLOB_URL"
mkdir -p "$WORK/state"
chmod 0700 "$WORK"

cat > "$POLICY" <<EOF
[lustre]
mount = "$MOUNT"
archive_id = 1
changelog_user = "$CHANGELOG_USER"

[blob]
url = "$AZURITE_BLOB_URL/$CONTAINER"
use_emulator = true

[autoexport]
enabled = true
path = "$RUN/"
exclude = ["*.tmp"]
# Files are written in one go below; the delay keeps a file from being archived between its
# creation (lfs setstripe) and its data, which would count a legitimate EBUSY failure.
min_age = "10s"

[logging]
container = "$LOG_CONTAINER"

[copytool]
update_interval = "5s"

[control]
socket = "$WORK/lustre-blob.sock"
state_dir = "$WORK/state"
EOF

# --- start the copytool and the daemon --------------------------------------------------------
pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 130); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
cleanup() {
  stop_all
  if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then
    say "logs kept in $WORK"
    tail -n 30 "$WORK/copytool.log" "$WORK/daemon.log" 2>/dev/null || true
  fi
  if [ "$KEEP" != 1 ]; then rm -rf "$DIR" "$MOUNT/$RUN-outside"; fi
}
trap cleanup EXIT

say "run $RUN: copytool and daemon"
lhsmtool_blob --archive 1 --config "$POLICY" "$MOUNT" > "$WORK/copytool.log" 2>&1 &
copytool_pid=$!
pids+=("$copytool_pid")
lustre-blob daemon --config "$POLICY" > "$WORK/daemon.log" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")
for _ in $(seq 1 60); do
  lustre-blob status --config "$POLICY" >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 1
done
check "lustre-blob daemon answers status" lustre-blob status --config "$POLICY"
check "lhsmtool_blob is running" kill -0 "$copytool_pid"

# --- phase 1: a new tree ----------------------------------------------------------------------
say "writing the tree under $DIR"
mkdir -p "$DIR/sub/deeper" "$DIR/small" "$MOUNT/$RUN-outside"
: > "$DIR/empty.bin"
printf x > "$DIR/one.bin"
head -c $((8 * MiB - 1)) /dev/urandom > "$DIR/sub/block-minus-1.bin"
head -c $((8 * MiB + 1)) /dev/urandom > "$DIR/sub/block-plus-1.bin"
# Striped over every OST: the restore must reassemble data that lives on several OSTs.
lfs setstripe -c -1 -S 1M "$DIR/sub/deeper/striped.bin"
head -c $((64 * MiB)) /dev/urandom > "$DIR/sub/deeper/striped.bin"
for i in $(seq 1 40); do head -c 65536 /dev/urandom > "$DIR/small/f$i.bin"; done
printf 'a name with %% # ? and spaces\n' > "$DIR/a%b #1?.txt"
ln -s sub/deeper/striped.bin "$DIR/link"
printf 'excluded\n' > "$DIR/scratch.tmp"
printf 'outside the prefix\n' > "$MOUNT/$RUN-outside/file.bin"

mapfile -d '' files < <(find "$DIR" -type f ! -name '*.tmp' -print0 | sort -z)

# verify_files: list the blobs under the run and compare every exported file with its blob.
verify_files() {
  local f rel mode want got
  if ! blobs list "$CONTAINER" "$RUN" > "$WORK/blobs.jsonl"; then
    not_ok "listing the blobs of $RUN"
    return
  fi
  for f in "${files[@]}"; do
    rel=${f#"$MOUNT"/}
    mode=$(stat -c %a "$f")
    want=$(jq -cn --arg sha "$(sha256sum < "$f" | cut -d' ' -f1)" --arg size "$(stat -c %s "$f")" \
      --arg owner "$(stat -c %u "$f")" --arg group "$(stat -c %g "$f")" \
      --arg perm "$(printf '%04o' "$((8#$mode))")" \
      --arg modtime "$(date -u -d "@$(stat -c %Y "$f")" '+%Y-%m-%d %H:%M:%S +0000')" \
      '{sha256: $sha, size: ($size | tonumber), owner: $owner, group: $group, permissions: $perm, modtime: $modtime}')
    got=$(jq -c --arg n "$rel" 'select(.name == $n) | {sha256, size, owner: .metadata.owner,
      group: .metadata.group, permissions: .metadata.permissions, modtime: .metadata.modtime}' "$WORK/blobs.jsonl")
    check "blob $rel: same bytes, owner, group, permissions, modtime" test "$got" = "$want"
  done
}

# hsm_exported FILE: "exists archived", neither dirty nor released.
hsm_exported() {
  local s
  s=$(lfs hsm_state "$1")
  [[ $s == *"exists archived"* && $s != *dirty* && $s != *released* ]]
}

say "lustre-blob flush --wait"
check "flush --wait returns success" timeout "$FLUSH_TIMEOUT" lustre-blob flush --wait --config "$POLICY"
verify_files
for d in sub sub/deeper small; do
  check "directory blob $RUN/$d has hdi_isfolder=true" \
    jq_true 'map(select(.name == $n)) | length == 1 and .[0].metadata.hdi_isfolder == "true"' \
    "$WORK/blobs.jsonl" --arg n "$RUN/$d"
done
check "symlink blob $RUN/link is marked lustre_type=symlink" \
  jq_true 'map(select(.name == $n)) | length == 1 and .[0].metadata.lustre_type == "symlink"' \
  "$WORK/blobs.jsonl" --arg n "$RUN/link"
check "symlink blob $RUN/link holds the link target" \
  test "$(blobs get "$CONTAINER" "$RUN/link")" = "sub/deeper/striped.bin"
check "excluded file $RUN/scratch.tmp has no blob" \
  no_match 'select(.name == $n)' "$WORK/blobs.jsonl" --arg n "$RUN/scratch.tmp"
check "nothing outside the prefix was exported" \
  no_match 'select(.name | startswith($p))' "$WORK/blobs.jsonl" --arg p "$RUN-outside/"
for f in "${files[@]}"; do
  check "lfs hsm_state ${f#"$MOUNT"/}: exists archived" hsm_exported "$f"
done

# --- phase 2: changes are exported again (latest content wins) ---------------------------------
say "changing two files"
printf 'appended\n' >> "$DIR/one.bin"
head -c $((3 * MiB)) /dev/urandom > "$DIR/small/f1.bin"
# The MDT marks an archived file dirty when it is modified; min_age keeps the re-export from
# starting before this check.
check "lfs hsm_state one.bin: dirty right after the change" \
  bash -c 'lfs hsm_state "$1" | grep -q "exists dirty archived"' _ "$DIR/one.bin"
check "flush --wait after the change returns success" timeout "$FLUSH_TIMEOUT" lustre-blob flush --wait --config "$POLICY"
verify_files
check "lfs hsm_state one.bin: exists archived after re-export" hsm_exported "$DIR/one.bin"
check "lfs hsm_state small/f1.bin: exists archived after re-export" hsm_exported "$DIR/small/f1.bin"

# --- phase 3: release, then an implicit restore by reading ------------------------------------
for f in "$DIR/sub/deeper/striped.bin" "$DIR/sub/block-plus-1.bin" "$DIR/a%b #1?.txt" "$DIR/small/f2.bin"; do
  rel=${f#"$MOUNT"/}
  before=$(sha256sum < "$f")
  check "lfs hsm_release $rel" lfs hsm_release "$f"
  check "lfs hsm_state $rel: released exists archived" \
    bash -c 'lfs hsm_state "$1" | grep -q "released exists archived"' _ "$f"
  sync
  { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
  # A plain read: the client blocks on the layout lock while the coordinator sends RESTORE to a copytool.
  after=$(timeout 600 sha256sum < "$f" || echo "read failed")
  check "reading released $rel restores identical bytes" test "$after" = "$before"
  check "lfs hsm_state $rel: exists archived after the restore" hsm_exported "$f"
done

# --- status, failure log, clean stop -----------------------------------------------------------
lustre-blob status --json --config "$POLICY" > "$WORK/status.json" || true
check "status --json: state InProgress, totalFilesFailed 0, totalFilesExported >= ${#files[@]}" \
  jq_true '.[0] | .state == "InProgress" and .totalFilesFailed == 0 and .totalFilesExported >= $n' \
  "$WORK/status.json" --argjson n "${#files[@]}"
# Releases and restores are the copytool's own HSM bookkeeping and create no export work.
check "status --json: everythingExported, no pending or in-flight file" \
  jq_true '.[0] | .everythingExported == true and .pendingFiles == 0 and .inFlightFiles == 0' \
  "$WORK/status.json"
if blobs cat "$LOG_CONTAINER" > "$WORK/failure-log.jsonl"; then
  check "no failure entry for this run in the logging container" \
    no_match 'select(.kind == "failure") | select((.path // "") | contains($p))' "$WORK/failure-log.jsonl" --arg p "$RUN/"
else
  not_ok "reading the logging container $LOG_CONTAINER"
fi

say "stopping (SIGTERM)"
kill -TERM "$daemon_pid" "$copytool_pid"
check "lustre-blob daemon exits 0 on SIGTERM" wait "$daemon_pid"
check "lhsmtool_blob exits 0 on SIGTERM" wait "$copytool_pid"
pids=()

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
