#!/usr/bin/env bash
# Stage 2 on oss: OST_COUNT OSTs (ldiskfs on loop devices) registered with the MGS.
set -euo pipefail
# shellcheck source=lib.sh
source /home/vagrant/lustre-vagrant-lib.sh

case "$(uname -r)" in
  *_lustre*) ;;
  *) die "running kernel $(uname -r) is not the Lustre server kernel; stage 1 must reboot into it" ;;
esac
start_lnet
wait_for 600 "the MGS at $MGS_NID (provision mgs-mds first: vagrant up --no-parallel)" lctl ping "$MGS_NID"

for ((i = 0; i < OST_COUNT; i++)); do
  format_and_mount "$FSNAME-OST$(printf %04x "$i")" "/var/lib/lustre-vagrant/ost$i.img" 16G "/lustre/ost$i" \
    --fsname="$FSNAME" --ost --index="$i" --mgsnode="$MGS_NID" --backfstype=ldiskfs
done
