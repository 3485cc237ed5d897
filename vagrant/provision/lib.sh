# Shell functions shared by the provisioning scripts (sourced, not run). Every script runs as root
# with the environment the Vagrantfile passes (COMMON_ENV plus NODE_ROLE, NODE_IP, ETC_HOSTS, ...).
# shellcheck shell=bash

log() { printf '[%s %s] %s\n' "$(hostname -s)" "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(hostname -s)" "$*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND... : retry COMMAND every 3 s until it succeeds.
wait_for() {
  local limit=$1 what=$2 waited=0
  shift 2
  until "$@" >/dev/null 2>&1; do
    waited=$((waited + 3))
    [ "$waited" -lt "$limit" ] || die "timed out after ${limit}s waiting for: $what"
    sleep 3
  done
}

# The interface that carries the private network (eth1 on most boxes, but names vary by provider).
private_iface() {
  ip -o -4 addr show | awk -v ip="$NODE_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }'
}

# LNet on the private network only: tcp0 on the interface holding NODE_IP.
configure_lnet() {
  local iface
  iface=$(private_iface)
  [ -n "$iface" ] || die "no interface holds $NODE_IP"
  echo "options lnet networks=\"tcp0($iface)\"" > /etc/modprobe.d/lustre-vagrant.conf
}

start_lnet() {
  configure_lnet
  modprobe lustre || die "modprobe lustre failed (is the kernel the one the Lustre modules were built for? uname -r: $(uname -r))"
  lctl network up >/dev/null
  lctl list_nids | grep -qx "$NODE_IP@tcp" || die "LNet NID $NODE_IP@tcp missing: $(lctl list_nids | tr '\n' ' ')"
  log "LNet up: $(lctl list_nids | tr '\n' ' ')"
}

# loop_device IMAGE SIZE: a loop block device over a sparse image file (created if missing).
# Lustre targets live in image files so the cluster needs no provider-specific extra disks.
loop_device() {
  local img=$1 size=$2 dev
  mkdir -p "$(dirname "$img")"
  [ -e "$img" ] || truncate -s "$size" "$img"
  dev=$(losetup -j "$img" | cut -d: -f1 | head -n1)
  [ -n "$dev" ] || dev=$(losetup --find --show "$img")
  echo "$dev"
}

# format_and_mount NAME IMAGE SIZE MOUNTPOINT MKFS_ARGS...: format once (marker file), then mount.
format_and_mount() {
  local name=$1 img=$2 size=$3 mnt=$4 dev
  shift 4
  dev=$(loop_device "$img" "$size")
  if [ ! -e "$img.formatted" ]; then
    log "mkfs.lustre $* $dev ($name)"
    mkfs.lustre "$@" --reformat "$dev"
    touch "$img.formatted"
  fi
  mkdir -p "$mnt"
  if ! findmnt -n "$mnt" >/dev/null; then
    mount -t lustre "$dev" "$mnt"
  fi
  log "$name mounted on $mnt ($dev)"
}
