# Scenarios of scripts/real-lustre, sourced by guest.sh inside the guest (real Lustre mounted at
# $MNT, HSM enabled, changelog users cl1 (product) and cl2 (kept for the comparison) on each MDT,
# Azurite at $AZ_URL). Each scenario is a function sc_NAME that prints its evidence and returns 0
# or 1; run_scenarios writes one line per scenario to /results/results.txt:
#   PASS|FAIL  NAME  SECONDS  summary
# shellcheck shell=bash disable=SC2154
SCENARIOS="export_tree change_reexport release_restore import rename_delete flush_wait kill9_copytool dne_restore striped_restore changelog_compare hsm_changelog_compare mds_rpcs changelog_passes"

P=projects            # export prefix (relative to the mount)
CT="export"           # export container
POLICY=$W/policy.toml
BLOB="python3 $RL_REPO/scripts/real-lustre.d/blob.py $AZ_URL"
CT_PID=""
DM_PID=""

note() { printf '  %s\n' "$*"; }
lb() { "$BIN/lustre-blob" "$@" --config "$POLICY"; }

write_policy() {
  cat >"$POLICY" <<EOF
[lustre]
mount = "$MNT"
archive_id = 1
changelog_user = "cl1"

[blob]
url = "$AZ_URL/$CT"
use_emulator = true
request_timeout = "60s"

[autoexport]
enabled = true
path = "$P/"
min_age = "0s"
on_delete = "delete"
on_rename = "move"

[logging]
container = "logs"

[copytool]
max_actions = 8
block_size = "256KiB"
blocks_in_flight = 4
update_interval = "2s"

[control]
socket = "$W/lustre-blob.sock"
state_dir = "$W/state"
EOF
}

start_copytool() {
  # LUSTRE_JOBID: the MDT's job_stats name this process (scenario mds_rpcs sets jobid_var to it).
  LUSTRE_JOBID=lhsmtool_blob "$BIN/lhsmtool_blob" --archive 1 --config "$POLICY" "$MNT" >>/results/copytool.log 2>&1 &
  CT_PID=$!
  for _ in $(seq 1 60); do
    lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.agents" 2>/dev/null | grep -q uuid && return 0
    kill -0 "$CT_PID" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

product_start() {
  write_policy
  cat "$POLICY"
  mkdir -p "$MNT/$P"
  start_copytool || { echo "copytool did not register"; tail -n 20 /results/copytool.log; return 1; }
  lctl get_param "mdt.*.hsm.agents"
  start_daemon && lb status
}

start_daemon() { # the daemon on $POLICY; returns once it answers
  LUSTRE_JOBID=lustre-blob-daemon "$BIN/lustre-blob" daemon --config "$POLICY" >>/results/daemon.log 2>&1 &
  DM_PID=$!
  for _ in $(seq 1 120); do
    lb status >/dev/null 2>&1 && return 0
    kill -0 "$DM_PID" 2>/dev/null || break
    sleep 1
  done
  echo "daemon did not answer"
  tail -n 20 /results/daemon.log
  return 1
}

product_stop() {
  local p
  for p in $DM_PID $CT_PID; do kill -TERM "$p" 2>/dev/null; done
  for p in $DM_PID $CT_PID; do
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    kill -KILL "$p" 2>/dev/null
  done
  return 0
}

flush() { # flush [TIMEOUT]: the export barrier
  local t0=$SECONDS rc
  lb flush --wait --timeout "${1:-15m}"
  rc=$?
  note "flush --wait: exit $rc after $((SECONDS - t0)) s"
  return $rc
}

hsm_state() { lfs hsm_state "$1" | sed 's/^[^:]*: //'; }

# blob_matches FILE: the blob named after FILE's path below the mount holds FILE's bytes.
blob_matches() {
  local f=$1 name want got
  name=${f#"$MNT"/}
  want="$(stat -c %s "$f") $(sha256sum <"$f" | cut -d' ' -f1)"
  got=$($BLOB sha $CT "$name")
  if [ "$want" = "$got" ]; then
    note "blob ok: '$name' ($got)"
  else
    note "blob MISMATCH: '$name': file '$want', blob '$got'"
    return 1
  fi
}

blob_absent() {
  local got
  got=$($BLOB sha $CT "$1")
  if [ "$got" = absent ]; then note "no blob '$1' (as expected)"; else note "blob '$1' still there ($got)"; return 1; fi
}

state_is() { # state_is FILE WORDS...: lfs hsm_state shows exactly these flags
  local f=$1 s
  shift
  s=$(hsm_state "$f")
  note "hsm_state '${f#"$MNT"/}': $s"
  local want=" $* " have
  have=" $(sed -E 's/^\(0x[0-9a-f]+\)//; s/, archive_id:.*//' <<<"$s" | xargs) "
  [ "$have" = "$want" ]
}

# --- scenarios --------------------------------------------------------------------------------
long_name=$(printf 'L%.0s' $(seq 1 251)).dat   # 255 bytes
uni_name='ünïcødé 名前 ✓.txt'

sc_export_tree() {
  local d="$MNT/$P/tree" f rc=0
  mkdir -p "$d/sub dir/deeper"
  printf 'space\n' >"$d/with space.txt"
  printf 'hash\n' >"$d/hash#1.txt"
  printf 'percent\n' >"$d/pct%20x%.txt"
  printf 'unicode\n' >"$d/$uni_name"
  printf 'long\n' >"$d/$long_name"
  : >"$d/empty.dat"
  head -c $((1024 * 1024 + 12345)) /dev/urandom >"$d/multi-block.bin"   # 5 blocks of 256 KiB
  head -c 3000000 /dev/urandom >"$d/sub dir/deeper/three-mb.bin"
  printf 'deep\n' >"$d/sub dir/deeper/x#y%z.txt"
  flush || rc=1
  while IFS= read -r -d '' f; do
    blob_matches "$f" || rc=1
    state_is "$f" exists archived || rc=1
  done < <(find "$d" -type f -print0)
  lb status
  return $rc
}

sc_change_reexport() {
  local f="$MNT/$P/tree/multi-block.bin" rc=0
  head -c 300000 /dev/urandom >>"$f"
  state_is "$f" exists dirty archived || rc=1
  flush || rc=1
  blob_matches "$f" || rc=1
  state_is "$f" exists archived || rc=1
  return $rc
}

sc_release_restore() {
  local rc=0 f want got
  for f in "$MNT/$P/tree/multi-block.bin" "$MNT/$P/tree/sub dir/deeper/three-mb.bin" "$MNT/$P/tree/$uni_name"; do
    want=$(sha256sum <"$f" | cut -d' ' -f1)
    lfs hsm_release "$f" || { note "hsm_release failed"; rc=1; }
    state_is "$f" released exists archived || rc=1
    note "blocks on the OST after release: $(stat -c %b "$f")"
    echo 3 >/proc/sys/vm/drop_caches
    got=$(timeout 600 cat "$f" | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then note "plain cat after release: same bytes ($got)"; else note "cat gave $got, want $want"; rc=1; fi
    state_is "$f" exists archived || rc=1
  done
  note "coordinator's view of the agent: $(lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.agents")"
  return $rc
}

sc_import() {
  local rc=0 src=/tmp/import-src f want got
  mkdir -p $src
  printf 'imported small\n' >$src/small.txt
  head -c 700000 /dev/urandom >$src/big.bin
  $BLOB put $CT "imported/small.txt" $src/small.txt || rc=1
  $BLOB put $CT "imported/sub/big.bin" $src/big.bin || rc=1
  # One blob-integration job at a time: auto-export is paused for the import (as on Azure).
  lb autoexport disable || rc=1
  lb import --prefix imported/ --wait || { note "lustre-blob import failed"; rc=1; }
  lb autoexport enable || rc=1
  for f in small.txt sub/big.bin; do
    state_is "$MNT/imported/$f" released exists archived || rc=1
    want=$(sha256sum <"$src/$(basename $f)" | cut -d' ' -f1)
    got=$(timeout 600 cat "$MNT/imported/$f" | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then note "read of imported $f: same bytes"; else note "imported $f: got $got want $want"; rc=1; fi
  done
  return $rc
}

sc_rename_delete() {
  local d="$MNT/$P/tree" rc=0
  mv "$d/with space.txt" "$d/renamed space.txt"
  mv "$d/sub dir" "$d/moved dir"
  rm "$d/hash#1.txt"
  flush || rc=1
  blob_absent "$P/tree/with space.txt" || rc=1
  blob_matches "$d/renamed space.txt" || rc=1
  blob_absent "$P/tree/sub dir/deeper/x#y%z.txt" || rc=1
  blob_matches "$d/moved dir/deeper/x#y%z.txt" || rc=1
  blob_absent "$P/tree/hash#1.txt" || rc=1
  return $rc
}

sc_flush_wait() {
  local d="$MNT/$P/many" i rc=0 n
  mkdir -p "$d"
  for i in $(seq 1 30); do head -c $((i * 1000)) /dev/urandom >"$d/f$i"; done
  flush || rc=1
  # Straight after the barrier: the HSM state of all 30 (one lfs call), before anything else runs.
  n=$(lfs hsm_state "$d"/f* | grep -c ': (0x00000009) exists archived')
  note "right after flush --wait: $n of 30 files 'exists archived' (lfs hsm_state)"
  [ "$n" = 30 ] || { rc=1; lfs hsm_state "$d"/f* | grep -v ': (0x00000009) exists archived' | sed 's/^/    /'; }
  # One listing of what the files hold and one of what the blobs hold (one python process).
  for i in $(seq 1 30); do echo "$(stat -c %s "$d/f$i") $(sha256sum <"$d/f$i" | cut -d' ' -f1) $P/many/f$i"; done >/tmp/many.files
  for i in $(seq 1 30); do echo "$P/many/f$i"; done | $BLOB sha-many $CT >/tmp/many.blobs
  n=$(grep -cxFf /tmp/many.files /tmp/many.blobs)
  note "$n of 30 files exported when flush --wait returned"
  [ "$n" = 30 ] || rc=1
  return $rc
}

sc_kill9_copytool() {
  local f="$MNT/$P/kill9.bin" rc=0 i
  lctl set_param "mdt.*.hsm.active_request_timeout=60" >/dev/null
  head -c $((48 * 1024 * 1024)) /dev/urandom >"$f"
  lb flush >/dev/null 2>&1   # start an iteration now
  for i in $(seq 1 240); do
    lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.actions" 2>/dev/null | grep -q 'action=ARCHIVE.*status=STARTED' && break
    sleep 0.5
  done
  note "active before the kill: $(lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.actions" | grep -c STARTED) started action(s)"
  lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.actions" | grep STARTED | sed 's/^/    /'
  kill -9 "$CT_PID"
  note "copytool (pid $CT_PID) killed with SIGKILL at $(date -u +%T)"
  wait "$CT_PID" 2>/dev/null
  sleep 2
  note "agents after the kill: $(lctl get_param -n "mdt.*.hsm.agents" | wc -l)"
  start_copytool || { note "copytool did not restart"; rc=1; }
  note "new copytool pid $CT_PID"
  flush 20m || rc=1
  blob_matches "$f" || rc=1
  state_is "$f" exists archived || rc=1
  lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.actions" | tail -n 3 | sed 's/^/    /'
  lctl set_param "mdt.*.hsm.active_request_timeout=300" >/dev/null
  return $rc
}

sc_dne_restore() {
  local d="$MNT/$P/dne" f rc=0 want got
  lfs mkdir -i 1 "$d" || return 1
  f="$d/on-mdt1.bin"
  head -c 900000 /dev/urandom >"$f"
  note "lfs getstripe -m: dir on MDT $(lfs getstripe -m "$d"), file on MDT $(lfs getstripe -m "$f"); fid $(lfs path2fid "$f")"
  [ "$(lfs getstripe -m "$f")" = 1 ] || rc=1
  want=$(sha256sum <"$f" | cut -d' ' -f1)
  flush || rc=1
  blob_matches "$f" || rc=1
  state_is "$f" exists archived || rc=1
  lfs hsm_release "$f" || rc=1
  state_is "$f" released exists archived || rc=1
  echo 3 >/proc/sys/vm/drop_caches
  got=$(timeout 600 cat "$f" | sha256sum | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then note "restore on MDT1: same bytes"; else note "restore on MDT1: got $got want $want"; rc=1; fi
  return $rc
}

# Striping survives release + restore (issue 12 item 6): a file in 4 MiB stripes in pool `flash`
# (the guest has one OST, so one stripe); after the implicit restore `lfs getstripe` shows the same.
sc_striped_restore() {
  local f="$MNT/$P/striped.bin" rc=0 want got layout
  lctl pool_new "$FSNAME.flash" >/dev/null 2>&1
  lctl pool_add "$FSNAME.flash" "$FSNAME-OST0000" >/dev/null 2>&1
  lfs setstripe -c 1 -S 4M -p flash "$f" || { note "lfs setstripe failed"; return 1; }
  head -c 9000000 /dev/urandom >"$f"
  want=$(sha256sum <"$f" | cut -d' ' -f1)
  flush || rc=1
  blob_matches "$f" || rc=1
  note "export record: $(python3 -c "import os,sys; print(os.getxattr(sys.argv[1], 'trusted.lustre_blob').decode())" "$f" 2>&1)"
  lfs hsm_release "$f" || rc=1
  state_is "$f" released exists archived || rc=1
  echo 3 >/proc/sys/vm/drop_caches
  got=$(timeout 600 cat "$f" | sha256sum | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then note "restore: same bytes"; else note "restore: got $got want $want"; rc=1; fi
  layout="$(lfs getstripe -c "$f") $(lfs getstripe -S "$f") $(lfs getstripe -p "$f")"
  note "layout after restore (count size pool): $layout"
  [ "$layout" = "1 4194304 flash" ] || rc=1
  return $rc
}

# The same operations on real Lustre and on lustre-sim; both changelogs are written to /results,
# normalised to "TYPE FLAGS NAME [SNAME]" and compared. Differences are evidence for REAL_LUSTRE.md,
# not failures: the scenario fails only when a changelog cannot be read.
cl_ops() { # cl_ops DIR: the operation sequence
  local d=$1
  mkdir "$d/dir"
  touch "$d/dir/a"                      # CREAT (+ CLOSE)
  printf 'hello\n' >"$d/dir/a"          # (OPEN) TRUNC? + CLOSE
  printf 'more\n' >>"$d/dir/a"          # CLOSE
  chmod 600 "$d/dir/a"                  # SATTR
  touch -d '2020-01-01' "$d/dir/a"      # SATTR/MTIME
  truncate -s 3 "$d/dir/a"              # TRUNC
  python3 -c "import os,sys; os.setxattr(sys.argv[1], 'trusted.rl', b'v')" "$d/dir/a"   # XATTR
  ln "$d/dir/a" "$d/dir/hard"           # HLINK
  ln -s a "$d/dir/sym"                  # SLINK
  mkfifo "$d/dir/fifo"                  # MKNOD
  mv "$d/dir/a" "$d/dir/b"              # RENME
  printf 'x\n' >"$d/dir/c"
  mv "$d/dir/c" "$d/dir/b"              # RENME over an existing target
  rm "$d/dir/hard"                      # UNLNK
  rm "$d/dir/b" "$d/dir/sym" "$d/dir/fifo"
  rmdir "$d/dir"                        # RMDIR
}

cl_normalise() { # lfs changelog lines -> "TYPE FLAGS name=N [sname=S] [m=..] [x=..]"
  awk '{
    type = $2; sub(/^[0-9]+/, "", type); out = type " " $5; name = ""; sname = ""; extra = ""
    for (i = 6; i <= NF; i++) {
      if ($i ~ /^p=\[/) { name = $(i + 1); i++ }
      else if ($i ~ /^sp=\[/) { sname = $(i + 1); i++ }
      else if ($i ~ /^(m|x)=/) extra = extra " " $i
    }
    if (name != "") out = out " name=" name
    if (sname != "") out = out " sname=" sname
    print out extra
  }'
}

sc_changelog_compare() {
  local rc=0 real="$MNT/clcmp" start sim=/tmp/sim simfs=simfs simlib
  # On MDT0000 (2.16 spreads new top-level directories over the MDTs round-robin).
  lfs mkdir -i 0 "$real" || rc=1
  start=$(lfs changelog "$FSNAME-MDT0000" 2>/dev/null | tail -n 1 | awk '{print $1}')
  cl_ops "$real"
  sync
  lfs changelog "$FSNAME-MDT0000" "$((start + 1))" >/results/changelog-real.txt || rc=1
  # The same on the simulator (its own daemon over a tmpfs directory, its own library).
  simlib="$BIN/liblustreapi_sim.so"
  mkdir -p "$sim/mnt"
  LUSTRE_SIM_MOUNTTAB=$sim/mounttab "$BIN/lustre-sim" mds --mount "$sim/mnt" --fsname $simfs >"$sim/mds.log" 2>&1 &
  local sim_pid=$!
  for _ in $(seq 1 60); do
    LUSTRE_SIM_MOUNTTAB=$sim/mounttab "$BIN/lustre-sim" lfs path2fid "$sim/mnt" >/dev/null 2>&1 && break
    sleep 0.5
  done
  LUSTRE_SIM_MOUNTTAB=$sim/mounttab "$BIN/lustre-sim" lctl --device $simfs-MDT0000 changelog_register -n
  mkdir -p "$sim/mnt/clcmp"
  sleep 1
  local sstart
  sstart=$(LUSTRE_SIM_MOUNTTAB=$sim/mounttab "$BIN/lustre-sim" lfs changelog $simfs-MDT0000 | tail -n 1 | awk '{print $1}')
  cl_ops "$sim/mnt/clcmp"
  sleep 2
  LUSTRE_SIM_MOUNTTAB=$sim/mounttab LUSTREAPI_LIB=$simlib "$BIN/lustre-sim" lfs changelog $simfs-MDT0000 "$((${sstart:-0} + 1))" >/results/changelog-sim.txt || rc=1
  kill -TERM $sim_pid
  cl_normalise </results/changelog-real.txt >/results/changelog-real.norm
  cl_normalise </results/changelog-sim.txt >/results/changelog-sim.norm
  note "real Lustre: $(wc -l </results/changelog-real.txt) records; lustre-sim: $(wc -l </results/changelog-sim.txt) records"
  echo "--- real (lfs changelog $FSNAME-MDT0000)"
  cat /results/changelog-real.txt
  echo "--- lustre-sim"
  cat /results/changelog-sim.txt
  diff -u /results/changelog-sim.norm /results/changelog-real.norm >/results/changelog-diff.txt
  note "normalised differences (sim -> real): $(grep -c '^[-+][^-+]' /results/changelog-diff.txt) lines, /results/changelog-diff.txt"
  cat /results/changelog-diff.txt
  [ -s /results/changelog-real.txt ] && [ -s /results/changelog-sim.txt ] || rc=1
  # Every record of the run on both MDTs (cl2 never clears): the HSM records of the other scenarios.
  lfs changelog "$FSNAME-MDT0000" >/results/changelog-all-MDT0000.txt
  lfs changelog "$FSNAME-MDT0001" >/results/changelog-all-MDT0001.txt
  note "whole run: $(wc -l </results/changelog-all-MDT0000.txt) records on MDT0000, $(wc -l </results/changelog-all-MDT0001.txt) on MDT0001; HSM records: $(cat /results/changelog-all-MDT000[01].txt | grep -c ' 16HSM ')"
  return $rc
}

# HSM life of one file, on real Lustre and on lustre-sim driven by the same product binaries:
# write, export (flush), append (dirty), export again, hsm_release, explicit hsm_restore (the
# simulator has no implicit restore). Records of that file only, normalised to TYPE FLAGS plus the
# decoded HSM event; differences are evidence, not failures.
hsm_life() { # hsm_life LFS FILE DAEMON_POLICY
  local lfs=$1 f=$2 pol=$3 i
  head -c 600000 /dev/urandom >"$f"
  "$BIN/lustre-blob" flush --wait --timeout 5m --config "$pol" >/dev/null || return 1
  head -c 1000 /dev/urandom >>"$f"
  "$BIN/lustre-blob" flush --wait --timeout 5m --config "$pol" >/dev/null || return 1
  $lfs hsm_release "$f" || return 1
  $lfs hsm_restore "$f" || return 1
  for i in $(seq 1 240); do
    $lfs hsm_state "$f" | grep -q released || return 0
    sleep 0.5
  done
  return 1
}

hsm_normalise() { # FID < lfs changelog -> "TYPE FLAGS [event=.. err=.. dirty]" for that FID
  awk -v fid="t=$1" 'function hex(s,  i, v) { v = 0; s = tolower(substr(s, 3))
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v }
    $6 == fid {
    type = $2; sub(/^[0-9]+/, "", type); f = hex($5); out = type " " $5
    if (type == "HSM") {
      ev = int(f / 128) % 8; split("ARCHIVE RESTORE CANCEL RELEASE REMOVE STATE SPARE SPARE", names, " ")
      out = out " event=" names[ev + 1] " err=" (f % 64) ((int(f / 1024) % 2) ? " dirty" : "")
    }
    for (i = 7; i <= NF; i++) if ($i ~ /^x=/) out = out " " $i
    print out
  }'
}

sc_hsm_changelog_compare() {
  local rc=0 d="$MNT/$P/clhsm" f start fid sim=/tmp/simhsm sf sfid ss simfs=simhsm spol=/tmp/simhsm/policy.toml
  local simenv="LUSTRE_SIM_MOUNTTAB=$sim/mounttab"
  lfs mkdir -i 0 "$d" || return 1
  start=$(lfs changelog "$FSNAME-MDT0000" | tail -n 1 | awk '{print $1}')
  f="$d/life.bin"
  hsm_life lfs "$f" "$POLICY" || { note "real: HSM life did not complete"; rc=1; }
  fid=$(lfs path2fid "$f")
  lfs changelog "$FSNAME-MDT0000" "$((start + 1))" >/results/hsm-changelog-real.txt
  hsm_normalise "$fid" </results/hsm-changelog-real.txt >/results/hsm-changelog-real.norm
  # lustre-sim: its own MDS, copytool and daemon (same binaries, the simulator's library).
  mkdir -p "$sim/mnt" "$sim/state"
  env $simenv "$BIN/lustre-sim" mds --mount "$sim/mnt" --fsname $simfs >"$sim/mds.log" 2>&1 &
  local mds=$!
  for _ in $(seq 1 60); do env $simenv "$BIN/lustre-sim" lfs path2fid "$sim/mnt" >/dev/null 2>&1 && break; sleep 0.5; done
  env $simenv "$BIN/lustre-sim" lctl --device $simfs-MDT0000 changelog_register -n >/dev/null
  env $simenv "$BIN/lustre-sim" lctl --device $simfs-MDT0000 changelog_register -n >/dev/null
  env $simenv "$BIN/lustre-sim" lctl set_param "mdt.$simfs-MDT0000.hsm.max_requests=64" >/dev/null
  python3 "$RL_REPO/scripts/lib/azblob.py" "$AZ_URL" mkcontainer simexport
  sed -e "s#^mount = .*#mount = \"$sim/mnt\"#" -e "s#/export\"#/simexport\"#" \
    -e "s#^socket = .*#socket = \"$sim/lb.sock\"#" -e "s#^state_dir = .*#state_dir = \"$sim/state\"#" \
    "$POLICY" >"$spol"
  env $simenv LUSTREAPI_LIB="$BIN/liblustreapi_sim.so" "$BIN/lhsmtool_blob" --archive 1 --config "$spol" "$sim/mnt" >"$sim/copytool.log" 2>&1 &
  local sct=$!
  env $simenv LUSTREAPI_LIB="$BIN/liblustreapi_sim.so" "$BIN/lustre-blob" daemon --config "$spol" >"$sim/daemon.log" 2>&1 &
  local sdm=$!
  for _ in $(seq 1 60); do "$BIN/lustre-blob" status --config "$spol" >/dev/null 2>&1 && break; sleep 1; done
  mkdir -p "$sim/mnt/$P/clhsm"
  sleep 2
  ss=$(env $simenv "$BIN/lustre-sim" lfs changelog $simfs-MDT0000 | tail -n 1 | awk '{print $1}')
  sf="$sim/mnt/$P/clhsm/life.bin"
  export LUSTRE_SIM_MOUNTTAB=$sim/mounttab
  hsm_life "$BIN/lustre-sim lfs" "$sf" "$spol" || { note "sim: HSM life did not complete"; rc=1; }
  sfid=$("$BIN/lustre-sim" lfs path2fid "$sf")
  sleep 2
  "$BIN/lustre-sim" lfs changelog $simfs-MDT0000 "$((${ss:-0} + 1))" >/results/hsm-changelog-sim.txt
  unset LUSTRE_SIM_MOUNTTAB
  kill -TERM $sdm $sct $mds 2>/dev/null
  hsm_normalise "$sfid" </results/hsm-changelog-sim.txt >/results/hsm-changelog-sim.norm
  echo "--- real: records of $fid"; cat /results/hsm-changelog-real.norm
  echo "--- sim: records of $sfid"; cat /results/hsm-changelog-sim.norm
  diff -u /results/hsm-changelog-sim.norm /results/hsm-changelog-real.norm >/results/hsm-changelog-diff.txt
  note "normalised differences (sim -> real): $(grep -c '^[-+][^-+]' /results/hsm-changelog-diff.txt) lines, /results/hsm-changelog-diff.txt"
  cat /results/hsm-changelog-diff.txt
  [ -s /results/hsm-changelog-real.norm ] && [ -s /results/hsm-changelog-sim.norm ] || rc=1
  return $rc
}

# --- mds_rpcs: what a real MDT serves per exported file (issue 17 item 2) ---------------------
# Three windows, each opened by zeroing the counters and closed by reading them: idle (daemon and
# copytool running, nothing to do: the background), ours (auto-export of MR_N new files of 4 KiB)
# and the peer (the same files archived by `lfs hsm_archive` + lhsmtool_posix). The files are written
# before a window opens, and the scenario's own checks (lfs hsm_state) run after it closed: a
# window holds the export only. Counters: every ptlrpc service of the MDS node (mds.MDS.*.stats,
# in debugfs) and ldlm_canceld (which also serves the OST here), the client's RPCs per MDT
# (mdc.*.stats), the MDTs' md_stats, and their job_stats (jobid_var=LUSTRE_JOBID, set in our
# daemon's and copytool's environment; any other process falls back to jobid_name "%e.%u").
MR_N=200              # files a side
MR_IDLE=30            # seconds of the idle window

mr_now() { date +%s.%N; }
mr_since() { awk -v a="$1" -v b="$(mr_now)" 'BEGIN { printf "%.1f", b - a }'; }

mr_clear() {
  lctl set_param -n "mds.MDS.*.stats=clear" "ldlm.services.ldlm_canceld.stats=clear" \
    "mdc.*.stats=clear" "mdt.*.md_stats=clear" "mdt.*.job_stats=clear" >/dev/null
}

# mr_counters PARAM...: "source counter count service_usec" for every non-zero counter of these
# stats parameters (service_usec 0 where the counter has no time unit). Sources: svc:SERVICE,
# cli:MDTxxxx (mdc.lustre-MDT0000-mdc-ffff....stats), md:MDTxxxx (mdt.lustre-MDT0000.md_stats).
mr_counters() {
  local p src t
  for p in "$@"; do
    case $p in
      mds.MDS.*) src=svc:$(cut -d. -f3 <<<"$p") ;;
      ldlm.*) src=svc:ldlm_canceld ;;
      mdc.*) t=${p#mdc."$FSNAME"-} && src=cli:${t%%-*} ;;
      *) t=${p#mdt."$FSNAME"-} && src=md:${t%%.*} ;;
    esac
    # "NAME COUNT samples [unit] MIN MAX SUM ..."; req_* and reqbuf_avail describe the queue,
    # not an opcode.
    lctl get_param -n "$p" | awk -v s="$src" '$3 == "samples" && $2 > 0 && $1 !~ /^req/ { print s, $1, $2, ($4 ~ /usec/ ? $7 : 0) }'
  done
}

mr_read() { # mr_read FILE: every non-zero counter, one "source counter count" line each
  local p t
  # shellcheck disable=SC2046 # one parameter name per word
  mr_counters $(lctl list_param "mds.MDS.*.stats" ldlm.services.ldlm_canceld.stats "mdc.*.stats" "mdt.*.md_stats") |
    cut -d' ' -f1-3
  for p in $(lctl list_param "mdt.*.job_stats"); do
    t=${p#mdt."$FSNAME"-}
    lctl get_param -n "$p" | awk -v m="${t%%.*}" '
      /^- job_id:/ { j = $3; gsub(/"/, "", j); sub(/\.[0-9]+$/, "", j) }   # "%e.%u" -> %e
      /^  [a-z_]+: +\{ samples:/ { n = $4; sub(/,$/, "", n); c = $1; sub(/:$/, "", c)
        if (n + 0 > 0) print "job:" m ":" j, c, n }'
  done
} >"$1"

# mr_report N IDLE_S OURS_S PEER_S: /results/mds-rpcs.txt from the windows' .raw files. "net" takes
# off the idle window's rate for the window's length (pings, the changelog follower's re-reads).
mr_report() {
  local n=$1 ti=$2 to=$3 tp=$4 r=/results/mds-rpcs
  {
    echo "# MDS RPCs per exported file on real Lustre 2.16.1 (scripts/real-lustre, scenario mds_rpcs)"
    echo "# $n new files of 4 KiB per side; windows: idle $ti s, ours $to s, peer $tp s"
    echo "# ours = lustre-blob daemon (auto-export) + lhsmtool_blob; peer = lfs hsm_archive (50 files a command) + lhsmtool_posix"
    echo "# sources: svc:SERVICE = RPCs the MDS node served (all its MDTs); cli:MDTnnnn = RPCs the client sent to that MDT;"
    echo "#          md:MDTnnnn = md_stats operations; job:MDTnnnn:JOBID = job_stats operations of one process"
    echo "# svc: mds_reint_* also count the reint an ldlm intent carries (open, setxattr: mdt_reint_rec), so"
    echo "#      svc:ALL exceeds the RPCs; cli: counts each RPC once (cli:ALL = every RPC the client sent to the MDTs)"
    echo "# columns: idle count, idle per s | ours count, per file, per file net of idle | peer likewise"
    awk -v n="$n" -v ti="$ti" -v to="$to" -v tp="$tp" '
      { w = (FILENAME == ARGV[1]) ? 1 : (FILENAME == ARGV[2]) ? 2 : 3   # (a window may be empty)
        k = $1 " " $2; keys[k] = 1; c[w, k] += $3
        if ($1 ~ /^(svc|cli|md):/) { g = $1; sub(/:.*/, ":ALL", g); keys[g " TOTAL"] = 1; c[w, g " TOTAL"] += $3 }
        keys[$1 " TOTAL"] = 1; c[w, $1 " TOTAL"] += $3 }
      END {
        for (k in keys) {
          rate = c[1, k] / ti
          printf "%-46s %6d %7.3f | %6d %7.3f %7.3f | %6d %7.3f %7.3f\n", k, c[1, k], rate,
            c[2, k], c[2, k] / n, (c[2, k] - rate * to) / n, c[3, k], c[3, k] / n, (c[3, k] - rate * tp) / n
        }
      }' "$r-idle.raw" "$r-ours.raw" "$r-peer.raw" | sort -k1,1 -k2,2
  } >"$r.txt"
  cat "$r.txt"
}

# The peer's requests are done when the coordinator lists the N files' actions (their FIDs in
# /tmp/mr-peer-fids) as SUCCEED or FAILED (hsm.actions is read on the MDS: no client RPC, unlike
# lfs hsm_state). Finished actions stay listed for grace_delay (60 s): each poll adds what it sees.
mr_peer_wait() {
  local n=$1 seen=/tmp/mr-peer-done
  : >$seen
  for _ in $(seq 1 1200); do
    lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.actions" |
      awk '/status=(SUCCEED|FAILED)/ { for (i = 1; i <= NF; i++) if ($i ~ /^fid=/) print $i }' |
      grep -xFf /tmp/mr-peer-fids >>$seen
    sort -u -o $seen $seen
    [ "$(wc -l <$seen)" -ge "$n" ] && return 0
    sleep 0.5
  done
  return 1
}

# The same auto-export on lustre-sim in the guest (its own MDS over tmpfs, the same daemon and
# copytool binaries through liblustreapi_sim.so): the simulator's own count of the calls it was
# asked (sim.stats, lustre-sim/src/mds/stats.rs; sent_to.mds = what it takes for MDS RPCs), taken
# the same way (daemon stopped while the files are written). Writes /results/mds-rpcs-sim.raw.
mr_sim() { # mr_sim N
  local n=$1 sim=/tmp/simrpc simfs=simrpc rc=0 i mds sct sdm got
  local spol=$sim/policy.toml sd=$sim/mnt/$P/mdsrpc
  export LUSTRE_SIM_MOUNTTAB=$sim/mounttab
  mkdir -p "$sim/mnt" "$sim/state"
  "$BIN/lustre-sim" mds --mount "$sim/mnt" --fsname $simfs >"$sim/mds.log" 2>&1 &
  mds=$!
  for _ in $(seq 1 60); do "$BIN/lustre-sim" lfs path2fid "$sim/mnt" >/dev/null 2>&1 && break; sleep 0.5; done
  "$BIN/lustre-sim" lctl --device $simfs-MDT0000 changelog_register -n >/dev/null
  "$BIN/lustre-sim" lctl set_param "mdt.$simfs-MDT0000.hsm.max_requests=64" >/dev/null
  python3 "$RL_REPO/scripts/lib/azblob.py" "$AZ_URL" mkcontainer simrpc
  sed -e "s#^mount = .*#mount = \"$sim/mnt\"#" -e "s#/export\"#/simrpc\"#" \
    -e "s#^socket = .*#socket = \"$sim/lb.sock\"#" -e "s#^state_dir = .*#state_dir = \"$sim/state\"#" \
    "$POLICY" >"$spol"
  LUSTREAPI_LIB="$BIN/liblustreapi_sim.so" "$BIN/lhsmtool_blob" --archive 1 --config "$spol" "$sim/mnt" >"$sim/copytool.log" 2>&1 &
  sct=$!
  LUSTREAPI_LIB="$BIN/liblustreapi_sim.so" "$BIN/lustre-blob" daemon --config "$spol" >"$sim/daemon.log" 2>&1 &
  sdm=$!
  for _ in $(seq 1 60); do "$BIN/lustre-blob" status --config "$spol" >/dev/null 2>&1 && break; sleep 1; done
  mkdir -p "$sd"
  "$BIN/lustre-blob" flush --wait --timeout 5m --config "$spol" >/dev/null || rc=1
  kill -STOP "$sdm"
  for i in $(seq 1 "$n"); do head -c 4096 /dev/urandom >"$sd/f$i"; done
  sleep 2   # the simulator's watcher turns the writes into records
  # (LUSTRE_SIM_MOUNT: "sim.stats" names no file system, so lctl asks this mount's MDS)
  LUSTRE_SIM_MOUNT=$sim/mnt "$BIN/lustre-sim" lctl get_param -n sim.stats >$sim/stats.before
  kill -CONT "$sdm"
  "$BIN/lustre-blob" flush --wait --timeout 30m --config "$spol" >/dev/null || rc=1
  LUSTRE_SIM_MOUNT=$sim/mnt "$BIN/lustre-sim" lctl get_param -n sim.stats >$sim/stats.after
  # (less the get_param calls themselves)
  awk 'NR == FNR { b[$1] = $2; next } $1 !~ /GetParam|admin/ && $2 - b[$1] > 0 { print "sim", $1, $2 - b[$1] }' \
    $sim/stats.before $sim/stats.after >/results/mds-rpcs-sim.raw
  got=$("$BIN/lustre-sim" lfs hsm_state "$sd"/f* | grep -cE ':[[:space:]]\(0x00000009\) exists archived, archive_id:1$')
  note "lustre-sim: $got of $n files 'exists archived, archive_id:1' after flush --wait"
  [ "$got" = "$n" ] || rc=1
  kill -TERM "$sdm" "$sct" "$mds" 2>/dev/null
  unset LUSTRE_SIM_MOUNTTAB
  return $rc
}

sc_mds_rpcs() {
  local rc=0 n=$MR_N d="$MNT/$P/mdsrpc" pd="$MNT/mdsrpc-peer" t0 ti to tp got ct2 i
  mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
  [ -n "$(lctl list_param mds.MDS.mdt.stats 2>/dev/null)" ] || { note "mds.MDS.mdt.stats not readable"; return 1; }
  lctl set_param jobid_var=LUSTRE_JOBID
  lfs mkdir -i 0 "$d" || return 1
  lfs mkdir -i 0 "$pd" || return 1
  flush || rc=1   # the daemon has read every record so far (and knows $d from its MKDIR record)
  sleep 5

  # 0. The background: nothing to export.
  mr_clear
  t0=$(mr_now)
  sleep $MR_IDLE
  mr_read /results/mds-rpcs-idle.raw
  ti=$(mr_since "$t0")

  # 1. Ours. The daemon is stopped while the files are written (auto-export disabled would not do:
  # a disabled daemon reads the records and drops them), so it meets their records inside the
  # window, as it would have at their close.
  kill -STOP "$DM_PID"
  for i in $(seq 1 "$n"); do head -c 4096 /dev/urandom >"$d/f$i"; done
  sync
  mr_clear
  t0=$(mr_now)
  kill -CONT "$DM_PID"
  flush 30m || rc=1
  mr_read /results/mds-rpcs-ours.raw
  to=$(mr_since "$t0")
  got=$(lfs hsm_state "$d"/f* | grep -c ': (0x00000009) exists archived, archive_id:1$')
  note "ours: $got of $n files 'exists archived, archive_id:1' after flush --wait ($to s)"
  [ "$got" = "$n" ] || rc=1

  # 2. The peer: lhsmtool_posix and lfs hsm_archive. The coordinator knows one agent per client
  # (by its UUID; a second registration is refused with EEXIST), so lhsmtool_posix serves archive 1
  # in our copytool's place for this window. One lfs hsm_archive takes at most ~50 files (the
  # request must stay under MDS_MAXREQSIZE / 3: E2BIG), so xargs gives it 50 at a time. Our daemon
  # is stopped during the window: its changelog clears of the peer's records would land in it.
  for i in $(seq 1 "$n"); do head -c 4096 /dev/urandom >"$pd/f$i"; done
  flush >/dev/null || rc=1   # out of scope for ours; the barrier says the daemon read their records
  lfs path2fid "$pd"/f* | awk '{ print "fid=" $2 }' >/tmp/mr-peer-fids
  kill -STOP "$DM_PID"
  kill -TERM "$CT_PID"
  wait "$CT_PID" 2>/dev/null
  rm -rf /tmp/arc && mkdir -p /tmp/arc
  lhsmtool_posix --hsm-root /tmp/arc --archive 1 "$MNT" >/results/lhsmtool_posix.log 2>&1 &
  ct2=$!
  for _ in $(seq 1 60); do
    lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.agents" | grep -q 'archive_id=1' && break
    sleep 1
  done
  note "agents with lhsmtool_posix: $(lctl get_param -n "mdt.$FSNAME-MDT0000.hsm.agents")"
  sync
  mr_clear
  t0=$(mr_now)
  printf '%s\0' "$pd"/f* | xargs -0 -n 50 lfs hsm_archive --archive 1 || { note "lfs hsm_archive failed"; rc=1; }
  mr_peer_wait "$n" || { note "the coordinator did not list $n finished actions of the peer's files"; rc=1; }
  mr_read /results/mds-rpcs-peer.raw
  tp=$(mr_since "$t0")
  kill -TERM "$ct2"
  wait "$ct2" 2>/dev/null
  start_copytool || { note "our copytool did not register again"; rc=1; }
  kill -CONT "$DM_PID"
  got=$(lfs hsm_state "$pd"/f* | grep -c ': (0x00000009) exists archived, archive_id:1$')
  note "peer: $got of $n files 'exists archived, archive_id:1' ($tp s)"
  [ "$got" = "$n" ] || rc=1
  lctl set_param jobid_var=disable >/dev/null

  if ! grep -q '^svc:mdt ' /results/mds-rpcs-ours.raw || ! grep -q '^svc:mdt ' /results/mds-rpcs-peer.raw; then
    note "no MDS service counters read"
    rc=1
  fi
  # 3. lustre-sim (evidence beside the MDT's figures; its failure does not fail the scenario).
  mr_sim "$n" || note "lustre-sim: the export of $n files did not complete (see /tmp/simrpc/*.log)"
  mr_report "$n" "$ti" "$to" "$tp"
  if [ -s /results/mds-rpcs-sim.raw ]; then
    {
      echo "# lustre-sim, the same auto-export of $n files: the simulator's calls (sim.stats), count and per file"
      awk -v n="$n" '{ printf "%-46s %6d %7.3f\n", $1 " " $2, $3, $3 / n }' /results/mds-rpcs-sim.raw
    } | tee -a /results/mds-rpcs.txt
  fi
  awk '$2 == "TOTAL" && ($1 == "svc:ALL" || $1 == "cli:ALL") { t[$1] = $0 }
    END { split(t["cli:ALL"], c); split(t["svc:ALL"], s)
      printf "mds_rpcs: RPCs the client sent to the MDTs per exported file: ours %s (net of idle %s), lfs hsm_archive + lhsmtool_posix %s (net %s); counted by the MDS services (reints inside intents twice): ours %s, peer %s\n", c[7], c[8], c[11], c[12], s[7], s[11] }' /results/mds-rpcs.txt
  awk -v n="$n" '$2 == "sent_to.mds" { printf "mds_rpcs: lustre-sim counts %.3f MDS calls per exported file (sent_to.mds) for the same export\n", $3 / n }' /results/mds-rpcs-sim.raw 2>/dev/null
  return $rc
}

# --- changelog_passes: what the daemon's changelog passes cost a real MDS (issue 17h) ---------
# For each [lustre] changelog_interval in CP_INTERVALS ("1s" = Lustre's follow mode, chlg_load in
# mdc_changelog.c: a pass, a sleep of one second, a pass resuming at the last index it saw; other
# values: a fresh non-follow reader from the daemon's position every interval, readers.rs
# `one_pass`), idle windows of CP_IDLE s between a zeroing and a reading of the MDS counters
# (mr_clear; cp_read keeps each opcode's count and service time):
#   cleared   every record cleared by both changelog users (cl1 = the daemon, cl2 = the harness's
#             second user, cleared to the end here: the MDT cancels a record only once every
#             user has cleared it, mdd_changelog_clear -> mdd_changelog_llog_cancel(min endrec))
#   held      CP_N files written outside the export scope after one file inside it that the daemon
#             keeps pending (min_age = "1h"): the daemon reads the records, drops the out-of-scope
#             ones, and cannot clear past the pending file's record (engine.rs `clear_points`:
#             below the lowest held record), so the current plain llog keeps ~2 x CP_N set records
#             below the daemon's position; cl2 is cleared to the daemon's point, so only the
#             daemon holds them
# then, at the last interval only: held-cl2 (the daemon's file exported and its records cleared by
# cl1, cl2 not: another user lagging) and cleared-after (cl2 cleared too: the same plain llog,
# all of it cancelled). Counters: mr_clear's; LNet's send_length (lnetctl stats; client and
# servers share this node, so it counts each RPC's request and reply once). Writes
# /results/changelog-passes.txt (+ .raw per window); guest.log has a summary line per window.
# "auto" (readers.rs: passes AUTO_PASS apart while few records are kept, the follower while
# many are, a probe at record 0 to tell) is measured like the others; besides, with the
# daemon stopped (no reader open), CP_PROBES probes of chlg_probe.py on each MDT in a window of
# their own, after held-cl2 (cl2 keeps the backlog) and after cleared-after: what one probe
# costs. The daemons of this scenario log readers.rs at debug level (its mode switches).
# RL_CP_INTERVALS (scripts/real-lustre: kernel command line rl_cp_intervals) overrides the list;
# the last one gets every window.
CP_INTERVALS="${RL_CP_INTERVALS:-1s 250ms 100ms}"
CP_PROBES=20          # probes per MDT in each probe window
CP_IDLE=20            # seconds of each idle window
CP_N=5000             # out-of-scope files of the backlog
CP_LAT=10             # close -> daemon latency samples per interval (cleared windows)
CP_RAW=/results/changelog-passes

cp_users() { # cp_users MDT: "CURRENT CL1 CL2" (mdd changelog_users)
  lctl get_param -n "mdd.$FSNAME-$1.changelog_users" |
    awk '/^current_index:/ { c = $2 } $1 == "cl1" { a = $2 } $1 == "cl2" { b = $2 } END { print c, a, b }'
}

cp_status() { # cp_status FIELD...: the sum of these numbers of one `lustre-blob status --json`
  lb status --json | awk -v k=" $* " '{ f = $1; gsub(/[":]/, "", f) }
    index(k, " " f " ") { gsub(/[ ,]/, "", $2); n += $2 } END { print n + 0 }'
}

cp_lnet() { lnetctl stats show 2>/dev/null | awk '$1 == "send_length:" { print $2; exit }'; }

cp_read() { # cp_read FILE: "source opcode count service_usec" for every non-zero MDS counter
  # shellcheck disable=SC2046 # one parameter name per word
  mr_counters $(lctl list_param "mds.MDS.*.stats" ldlm.services.ldlm_canceld.stats "mdc.*.stats") >"$1"
}

cp_stop_daemon() {
  kill -TERM "$DM_PID" 2>/dev/null
  for _ in $(seq 1 60); do kill -0 "$DM_PID" 2>/dev/null || break; sleep 1; done
  kill -KILL "$DM_PID" 2>/dev/null
  wait "$DM_PID" 2>/dev/null
  return 0
}

cp_daemon() { # cp_daemon INTERVAL MIN_AGE: the daemon restarted on a policy with these
  cp_stop_daemon
  write_policy
  sed -i -e "s/^changelog_user = .*/&\nchangelog_interval = \"$1\"/" -e "s/^min_age = .*/min_age = \"$2\"/" "$POLICY"
  RUST_LOG=info,policy::readers=debug start_daemon || return 1
  note "daemon restarted: changelog_interval = \"$1\", min_age = \"$2\""
}

# cp_cleared: waits until the daemon (cl1) has cleared each MDT's changelog to its end, then
# clears cl2 there too.
cp_cleared() {
  local m u ok
  for _ in $(seq 1 60); do
    ok=1
    for m in MDT0000 MDT0001; do
      read -r -a u <<<"$(cp_users $m)"
      [ "${u[0]}" = "${u[1]}" ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 1
  done
  [ $ok = 1 ] || note "cl1 has not cleared to the end: $(cp_users MDT0000) / $(cp_users MDT0001)"
  for m in MDT0000 MDT0001; do lfs changelog_clear "$FSNAME-$m" cl2 0; done
  return $((1 - ok))
}

cp_window() { # cp_window INTERVAL LLOG: one idle window, its counters in $CP_RAW-INTERVAL-LLOG.raw
  local f=$CP_RAW-$1-$2.raw t0 b0 b1 s
  note "before window $1/$2: MDT0000 current/cl1/cl2 $(cp_users MDT0000), MDT0001 $(cp_users MDT0001); changelog_size $(lctl get_param -n "mdd.$FSNAME-MDT0000.changelog_size") / $(lctl get_param -n "mdd.$FSNAME-MDT0001.changelog_size") B; daemon: changelogUnclearedRecords $(cp_status changelogUnclearedRecords), pendingFiles $(cp_status pendingFiles)"
  b0=$(cp_lnet)
  mr_clear
  t0=$(mr_now)
  sleep $CP_IDLE
  cp_read "$f"
  b1=$(cp_lnet)
  s=$(mr_since "$t0")
  sed -i "1i # $1 $2 $s ${b0:-0} ${b1:-0}" "$f"
  echo "$f" >>"$CP_RAW.windows"
  awk -v s="$s" -v i="$1" -v l="$2" 'NR > 1 && $1 ~ /^cli:/ { n += $3; if ($2 ~ /^llog/) g += $3 }
    NR > 1 && $1 ~ /^svc:/ { us += $4 }
    END { printf "changelog_passes: %s %s: %.1f s, client -> MDTs %.1f RPC/s (llog %.1f/s), MDS service time %.1f ms/s\n", i, l, s, n / s, g / s, us / s / 1000 }' "$f"
}

# cp_probes LABEL: with the daemon stopped (no changelog reader open), CP_PROBES probes of
# chlg_probe.py (readers.rs `few_kept`: a reader at record 0, one record, closed) on each MDT in
# one window of zeroed counters; counters in $CP_RAW-probe-LABEL.raw, each probe's first record
# and time in $CP_RAW-probe-LABEL.txt. The caller starts the daemon again.
cp_probes() {
  local f=$CP_RAW-probe-$1.raw out=$CP_RAW-probe-$1.txt t0 s m rc=0
  cp_stop_daemon
  sleep 2
  note "before probes $1: MDT0000 current/cl1/cl2 $(cp_users MDT0000), MDT0001 $(cp_users MDT0001); changelog_size $(lctl get_param -n "mdd.$FSNAME-MDT0000.changelog_size") / $(lctl get_param -n "mdd.$FSNAME-MDT0001.changelog_size") B"
  : >"$out"
  mr_clear
  t0=$(mr_now)
  for m in MDT0000 MDT0001; do
    python3 "$RL_REPO/scripts/real-lustre.d/chlg_probe.py" "$FSNAME-$m" "$CP_PROBES" | sed "s/^/$m /" >>"$out" || rc=1
  done
  cp_read "$f"
  s=$(mr_since "$t0")
  sed -i "1i # probes $1 $s $CP_PROBES" "$f"
  echo "$f" >>"$CP_RAW.probes"
  note "probes $1: $(grep -c ' probe ' "$out") in $s s; first and last of MDT0000: $(grep '^MDT0000' "$out" | sed -n '1p;$p' | tr '\n' ';')"
  awk -v n="$CP_PROBES" -v l="$1" 'NR > 1 && $1 ~ /^cli:/ { m = substr($1, 5); c[m] += $3
      if ($2 == "llog_origin_handle_open") o[m] += $3; if ($2 == "llog_origin_handle_next_block") b[m] += $3 }
    END { for (m in c) printf "changelog_passes: probe %s %s: %.2f RPCs per probe (llog opens %.2f, next_block %.2f)\n", l, m, c[m] / n, o[m] / n, b[m] / n }' "$f"
  return $rc
}

# cp_latency N LABEL: N files created in scope at random moments; for each, the seconds from the
# end of its close to the daemon's status counting it (pending, in flight or exported), and to a
# second follower, `lfs changelog --follow` (stdbuf: line-buffered), printing its CREAT record.
# Prints "daemon: .. lfs: .."; $CP_RAW-latency-LABEL.txt has each sample's times.
cp_latency() {
  local d=$MNT/$P/clpass k s0 t1 t2 v name out=$CP_RAW-latency-$2.txt lf=$CP_RAW-follow-$2.txt lp cur
  cur=$(cp_users MDT0000 | cut -d' ' -f1)
  stdbuf -oL lfs changelog --follow "$FSNAME-MDT0000" "$((cur + 1))" > >(while IFS= read -r l; do echo "$(mr_now) $l"; done >"$lf") 2>/dev/null &
  lp=$!
  : >"$out"
  sleep 2
  for k in $(seq 1 "$1"); do
    # (the previous file settled first: a file in flight that changes again is also pending, so
    # the counters are no per-file signal while one is busy)
    for _ in $(seq 1 100); do [ "$(cp_status pendingFiles inFlightFiles)" = 0 ] && break; sleep 0.2; done
    sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
    s0=$(cp_status totalFilesExported)
    name=lat-$RANDOM-$k
    : >"$d/$name"
    t1=$(mr_now)
    t2=""
    for _ in $(seq 1 400); do
      read -r -a v <<<"$(lb status --json | awk '{ gsub(/[ ",]/, "") } split($0, kv, ":") == 2 { c[kv[1]] = kv[2] }
        END { print c["pendingFiles"] + 0, c["inFlightFiles"] + 0, c["totalFilesExported"] + 0 }')"
      [ $((v[0] + v[1])) -gt 0 ] || [ "${v[2]}" -gt "$s0" ] && { t2=$(mr_now); break; }
    done
    echo "$name $t1 ${t2:-NaN}" >>"$out"
  done
  sleep 2
  kill "$lp" 2>/dev/null
  # name close seen_by_daemon [seen_by_lfs]
  awk 'NR == FNR { if ($3 ~ /CREAT/) l[$NF] = $1; next }
    { printf "%s %s %s\n", $1, ($3 == "NaN") ? "-" : sprintf("%.2f", $3 - $2), ($1 in l) ? sprintf("%.2f", l[$1] - $2) : "-" }' "$lf" "$out" >"$out.tmp" && mv "$out.tmp" "$out"
  awk '{ a = a " " $2; b = b " " $3 } END { print "daemon:" a "  lfs --follow:" b }' "$out"
}

# cp_report: /results/changelog-passes.txt from the windows' .raw files
cp_report() {
  local r=$CP_RAW
  {
    echo "# MDS cost of the daemon's changelog passes on real Lustre 2.16.1 (scripts/real-lustre, scenario changelog_passes)"
    echo "# idle windows of ~$CP_IDLE s; backlog: $CP_N out-of-scope files after one pending in-scope file (MDT0000)"
    echo "# RPC/s = RPCs the client sent to both MDTs (mdc stats); llog = llog_origin_handle_* among them; passes/s ="
    echo "# catalog opens on MDT0000 (llog opens there / 2: catalog + plain llog); next_block/pass on MDT0000;"
    echo "# MDS ms/s = service time of every MDS request (mds.MDS.*.stats sums); LNet KiB/s = send_length"
    printf '%-9s %-14s %6s %8s %8s %9s %10s %9s %9s\n' interval llog s RPC/s llog/s passes/s next/pass "MDS ms/s" "LNet KiB/s"
    while read -r f; do
      awk 'NR == 1 { i = $2; l = $3; s = $4; b = $6 - $5; next }
        $1 ~ /^cli:/ { n += $3; if ($2 ~ /^llog/) g += $3 }
        $1 == "cli:MDT0000" && $2 == "llog_origin_handle_open" { o = $3 }
        $1 == "cli:MDT0000" && $2 == "llog_origin_handle_next_block" { nb = $3 }
        $1 ~ /^svc:/ { us += $4 }
        END { p = o / 2; printf "%-9s %-14s %6.1f %8.1f %8.1f %9.2f %10.1f %9.1f %9.1f\n", i, l, s, n / s, g / s, p / s, (p ? nb / p : 0), us / s / 1000, b / s / 1024 }' "$f"
    done <"$r.windows"
    echo "# by opcode, per second (client side, per MDT; pings and others included)"
    while read -r f; do
      awk 'NR == 1 { i = $2; l = $3; s = $4; next } $1 ~ /^cli:/ { c[$1 " " $2] += $3 }
        END { for (k in c) printf "%-9s %-14s %-44s %8.2f\n", i, l, k, c[k] / s }' "$f" | sort -k3
    done <"$r.windows"
    if [ -s "$r.probes" ]; then
      echo "# probes (chlg_probe.py: readers.rs few_kept) with the daemon stopped: RPCs per probe by opcode, per MDT (client side)"
      while read -r f; do
        awk 'NR == 1 { l = $3; s = $4; n = $5; next } $1 ~ /^cli:/ { c[$1 " " $2] += $3; t[$1] += $3 }
          END { for (k in c) printf "probes %-14s %-44s %8.2f\n", l, k, c[k] / n
            for (k in t) printf "probes %-14s %-44s %8.2f  (%d probes in %.1f s)\n", l, k " ALL", t[k] / n, n, s }' "$f" | sort -k2,3
      done <"$r.probes"
    fi
    echo "# close -> the daemon's status counts the file / lfs changelog --follow prints its CREAT (s), per interval (cleared windows)"
    cat "$r-latency.txt"
  } >"$r.txt"
  cat "$r.txt"
}

sc_changelog_passes() {
  local rc=0 d="$MNT/$P/clpass" o="$MNT/clpass-out" iv held b u n last lat
  mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
  [ -n "$(lctl list_param mds.MDS.mdt.stats 2>/dev/null)" ] || { note "mds.MDS.mdt.stats not readable"; return 1; }
  lfs mkdir -i 0 "$d" || return 1
  lfs mkdir -i 0 "$o" || return 1
  rm -f "$CP_RAW"-*.raw "$CP_RAW.windows" "$CP_RAW.probes" "$CP_RAW"-latency*.txt "$CP_RAW"-follow-*.txt "$CP_RAW"-probe-*.txt

  # 1. Cleared, each interval; then close -> daemon latencies.
  for iv in $CP_INTERVALS; do
    cp_daemon "$iv" 0s || return 1
    flush || rc=1
    cp_cleared || rc=1
    sleep 3
    cp_window "$iv" cleared
    lat=$(cp_latency $CP_LAT "$iv")
    note "changelog_passes: $iv: close -> the file seen (s), $lat"
    echo "$iv $lat" >>"$CP_RAW-latency.txt"
    flush || rc=1   # (nothing left pending for the next policy)
  done

  # 2. The backlog the daemon holds: one pending in-scope file (min_age 1h), then CP_N files out
  # of scope. The daemon must have read them all: its uncleared count = the MDTs' current index
  # less its cleared point.
  last=${CP_INTERVALS##* }
  cp_daemon "$last" 1h || return 1
  flush || rc=1
  cp_cleared || rc=1
  : >"$d/held"
  for _ in $(seq 1 60); do [ "$(cp_status pendingFiles)" = 1 ] && break; sleep 0.5; done
  note "pending before the backlog: $(cp_status pendingFiles)"
  b=$SECONDS
  for n in $(seq 1 $CP_N); do : >"$o/f$n"; done
  note "$CP_N out-of-scope files written in $((SECONDS - b)) s"
  for _ in $(seq 1 180); do
    read -r -a u <<<"$(cp_users MDT0000)"
    held=$(cp_status changelogUnclearedRecords)
    [ "$held" = "$((u[0] - u[1]))" ] && [ "$held" -ge $CP_N ] && break
    sleep 1
  done
  note "daemon: changelogUnclearedRecords $held; MDT0000 current/cl1/cl2 ${u[*]}"
  [ "$held" -ge $CP_N ] 2>/dev/null || { note "the daemon holds no backlog"; rc=1; }
  lfs changelog_clear "$FSNAME-MDT0000" cl2 "${u[1]}"   # cl2 to the daemon's point
  for iv in $(tr ' ' '\n' <<<"$CP_INTERVALS" | tac); do
    [ "$iv" = "$last" ] || cp_daemon "$iv" 1h || return 1
    sleep 8   # a new reader's first pass reads the backlog once
    cp_window "$iv" held
  done

  # 3. At the last interval: the daemon lets the file go (min_age 0), exports it and clears to the
  # end; cl2 still holds the backlog. Then cl2 is cleared too.
  cp_daemon "$last" 0s || return 1
  flush || rc=1
  for _ in $(seq 1 60); do
    read -r -a u <<<"$(cp_users MDT0000)"
    [ "${u[0]}" = "${u[1]}" ] && break
    sleep 1
  done
  note "after the release: MDT0000 current/cl1/cl2 ${u[*]}"
  sleep 3
  cp_window "$last" held-cl2
  # What one probe costs with the backlog cl2 keeps; then the daemon again (it follows or passes
  # as its interval says).
  cp_probes held-cl2 || rc=1
  cp_daemon "$last" 0s || return 1
  cp_cleared || rc=1
  # ("auto" looks every AUTO_RECHECK = 10 s whether it can go back to passes: the window opens
  # after that.)
  sleep 12
  cp_window "$last" cleared-after
  cp_probes cleared || rc=1

  # Back to the harness's policy.
  cp_daemon 1s 0s || rc=1
  dmesg | tail -n 80 >"$CP_RAW-dmesg.txt"
  cp_report
  awk '/^# by opcode/ { exit } $1 ~ /^([0-9]+m?s|auto)$/ { printf "changelog_passes: %s %s %s RPC/s, %s passes/s, %s next_block/pass, MDS %s ms/s, LNet %s KiB/s\n", $1, $2, $4, $6, $7, $8, $9 }' "$CP_RAW.txt"
  # every interval cleared and held, and held-cl2 and cleared-after at the last one
  [ "$(wc -l <"$CP_RAW.windows")" -ge $((2 * $(wc -w <<<"$CP_INTERVALS") + 2)) ] || rc=1
  [ "$(wc -l <"$CP_RAW.probes")" -ge 2 ] || rc=1
  return $rc
}

run_scenarios() {
  local want=${1//,/ } s t0 rc summary
  [ -n "$want" ] || want=$SCENARIOS
  touch /results/results.txt
  [ "$want" = none ] && { echo "RL_SCENARIOS=none: no scenario run"; return 0; }
  for s in $want; do
    printf '\n--- scenario %s (%s)\n' "$s" "$(date -u +%T)"
    t0=$SECONDS
    sc_"$s"
    rc=$?
    if [ $rc -eq 0 ]; then summary=PASS; else summary=FAIL; fi
    printf '%s  %-18s %5ss\n' "$summary" "$s" "$((SECONDS - t0))" | tee -a /results/results.txt
    echo "scenario:$s $((SECONDS - t0))s" >>/results/timings.txt
    kill -0 "$DM_PID" 2>/dev/null || { echo "daemon died"; tail -n 30 /results/daemon.log; }
    kill -0 "$CT_PID" 2>/dev/null || { echo "copytool died; restarting"; tail -n 30 /results/copytool.log; start_copytool; }
  done
}
