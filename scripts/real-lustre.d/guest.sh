#!/bin/bash
# shellcheck disable=SC2154  # rl_* come from the kernel command line (environment of PID 1)
# PID 1 of the real-Lustre TCG guest (started by scripts/real-lustre through mkinitrd.sh's /init).
# The root is the host's root, read-only over 9p, under a tmpfs overlay; /results is the run
# directory on the host (writable 9p). Parameters come from the kernel command line:
# rl_repo, rl_build (the cached Lustre build), rl_target (our release binaries), rl_azurite,
# rl_scenarios (comma-separated; empty = all), rl_cp_intervals (comma-separated; empty = the
# default of scenario changelog_passes).
# Stages: lustre-install, lnet, modules, format, mount-servers, mount-client, hsm, azurite,
# product, scenarios. A failing stage is written to /results/stopped-at and the guest powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TMPDIR=/tmp
set -uo pipefail

mkdir -p /results /run /tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /results
mount -t tmpfs tmpfs /run
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
exec > >(tee -a /results/guest.log) 2>&1
poweroff_now() {
  sync
  echo 1 >/proc/sys/kernel/sysrq
  echo o >/proc/sysrq-trigger
  sleep 30
}
T0=$SECONDS
stage=""
t_stage=$SECONDS
timing() { echo "$1 $2" >>/results/timings.txt; }
begin() {
  [ -n "$stage" ] && timing "guest-stage:$stage" "$((SECONDS - t_stage))s"
  stage=$1
  t_stage=$SECONDS
  printf '\n=== [%5ss] guest stage: %s\n' "$((SECONDS - T0))" "$stage"
}
fail_stage() {
  echo "guest: FAILED at stage $stage: $*"
  echo "$stage: $*" >/results/stopped-at
  dmesg | tail -n 60
  touch /results/results.txt
  poweroff_now
}
run() {
  echo "+ $*"
  "$@"
}
timing boot-to-guest-script "$(cut -d' ' -f1 /proc/uptime)s"
echo "guest: kernel $(uname -r), $(nproc) CPUs, $(free -m | awk '/Mem:/ {print $2}') MiB"

begin lustre-install
# Lustre's `make install` tree on top of the (overlay) root; then the module index.
# (tar keeps the root's /sbin -> usr/sbin style symlinks that cp -a would refuse to overwrite)
tar -C "$rl_build/root" -cf - . | tar -C / -xf - --keep-directory-symlink || fail_stage "copy of $rl_build/root"
ldconfig   # (the module index came with the tree: scripts/real-lustre built it on the host)
run lctl --version

begin lnet
# LNet ignores the loopback interface: give it a dummy one with a loopback-range address.
ip link set lo up
modprobe dummy || fail_stage "modprobe dummy"
# shellcheck disable=SC2015 # (any of the three failing stops the guest)
ip link add lnet0 type dummy && ip addr add 127.100.0.1/32 dev lnet0 && ip link set lnet0 up ||
  fail_stage "dummy interface lnet0"
NID=127.100.0.1@tcp
echo 'options lnet networks=tcp0(lnet0)' >/etc/modprobe.d/lustre-guest.conf
# A small ARC: the guest has a few GiB for three pools, the client, Azurite and our processes.
echo 'options zfs zfs_arc_max=268435456' >>/etc/modprobe.d/lustre-guest.conf

begin modules
run modprobe zfs || fail_stage "modprobe zfs"
run modprobe lustre || fail_stage "modprobe lustre (client)"
for m in osd_zfs mgs mdt mdd lod osp ofd ost lfsck; do
  run modprobe "$m" || fail_stage "modprobe $m"
done
run lctl list_nids
lsmod | awk 'NR > 1 {print $1}' | sort | tr '\n' ' '
echo

begin format
MGS=$NID
fsname=lustre
# zpool create on a whole disk labels it and then waits for udev's partition nodes (there is no
# udev here: "failed to detect device partitions on /dev/vda1: 19"); file vdevs need no label, so
# each virtio disk gets an ext4 file system holding one vdev file.
for td in mdt0:vda mdt1:vdb ost0:vdc; do
  t=${td%:*} dev=/dev/${td#*:}
  # shellcheck disable=SC2015 # (any of them failing stops the guest)
  mkfs.ext4 -q -F "$dev" && mkdir -p "/srv/$t" && mount "$dev" "/srv/$t" && truncate -s 1800M "/srv/$t/vdev" ||
    fail_stage "ext4 + vdev file for $t on $dev"
done
run mkfs.lustre --fsname=$fsname --mgs --mdt --index=0 --backfstype=zfs --reformat mdt0/mdt0 /srv/mdt0/vdev ||
  fail_stage "mkfs.lustre MGS+MDT0"
run mkfs.lustre --fsname=$fsname --mdt --index=1 --mgsnode=$MGS --backfstype=zfs --reformat mdt1/mdt1 /srv/mdt1/vdev ||
  fail_stage "mkfs.lustre MDT1"
run mkfs.lustre --fsname=$fsname --ost --index=0 --mgsnode=$MGS --backfstype=zfs --reformat ost0/ost0 /srv/ost0/vdev ||
  fail_stage "mkfs.lustre OST0"

begin mount-servers
mkdir -p /mnt/mdt0 /mnt/mdt1 /mnt/ost0 /mnt/lustre
run mount -t lustre mdt0/mdt0 /mnt/mdt0 || fail_stage "mount MGS+MDT0"
run mount -t lustre mdt1/mdt1 /mnt/mdt1 || fail_stage "mount MDT1"
run mount -t lustre ost0/ost0 /mnt/ost0 || fail_stage "mount OST0"

begin mount-client
run mount -t lustre "$MGS:/$fsname" /mnt/lustre || fail_stage "mount the client"
run lfs df /mnt/lustre
run lfs mdts /mnt/lustre

begin hsm
run lctl set_param "mdt.*.hsm_control=enabled" || fail_stage "hsm_control=enabled"
run lctl set_param "mdt.*.hsm.max_requests=64" "mdt.*.hsm.active_request_timeout=300"
for _ in $(seq 1 60); do
  [ "$(lctl get_param -n mdt.$fsname-MDT0000.hsm_control)" = enabled ] &&
    [ "$(lctl get_param -n mdt.$fsname-MDT0001.hsm_control)" = enabled ] && break
  sleep 1
done
run lctl get_param mdt.*.hsm_control mdt.*.hsm.max_requests
# cl1 on each MDT for the product; cl2 on each MDT keeps the records for the changelog comparison.
for mdt in $fsname-MDT0000 $fsname-MDT0001; do
  run lctl --device "$mdt" changelog_register || fail_stage "changelog_register on $mdt"
  run lctl --device "$mdt" changelog_register || fail_stage "second changelog_register on $mdt"
  run lctl get_param "mdd.$mdt.changelog_users" "mdd.$mdt.changelog_mask"
done
grep -q '^cl1' <(lctl get_param -n mdd.$fsname-MDT0000.changelog_users | awk '{print $1}') ||
  fail_stage "changelog user cl1 missing on MDT0000"

begin azurite
AZ_PORT=10000
AZ_URL="http://127.0.0.1:$AZ_PORT/devstoreaccount1"
"$rl_azurite" --blobHost 127.0.0.1 --blobPort $AZ_PORT --inMemoryPersistence --skipApiVersionCheck \
  --loose --silent --disableTelemetry >/results/azurite.log 2>&1 &
for _ in $(seq 1 180); do
  (exec 3<>/dev/tcp/127.0.0.1/$AZ_PORT) 2>/dev/null && break
  sleep 1
done
(exec 3<>/dev/tcp/127.0.0.1/$AZ_PORT) 2>/dev/null || fail_stage "Azurite did not listen on 127.0.0.1:$AZ_PORT"
python3 "$rl_repo/scripts/lib/azblob.py" "$AZ_URL" mkcontainer export || fail_stage "create container export"
python3 "$rl_repo/scripts/lib/azblob.py" "$AZ_URL" mkcontainer logs || fail_stage "create container logs"

begin product
export LUSTREAPI_LIB=/usr/lib/liblustreapi.so.1
export MNT=/mnt/lustre FSNAME=$fsname AZ_URL RL_REPO=$rl_repo BIN=$rl_target
export W=/tmp/rl
RL_CP_INTERVALS=${rl_cp_intervals:-}
export RL_CP_INTERVALS=${RL_CP_INTERVALS//,/ }
mkdir -p $W/state
# shellcheck source=scenarios.sh disable=SC1091 # (found with shellcheck -x)
. "$rl_repo/scripts/real-lustre.d/scenarios.sh" || fail_stage "cannot read scenarios.sh"
product_start || fail_stage "copytool / daemon did not start"

begin scenarios
run_scenarios "${rl_scenarios:-}"
begin end
product_stop
timing guest-total "$((SECONDS - T0))s"
echo "guest: done after $((SECONDS - T0)) s"
umount /mnt/lustre
poweroff_now
