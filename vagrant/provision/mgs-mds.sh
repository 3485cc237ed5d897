#!/usr/bin/env bash
# Stage 2 on mgs-mds: a combined MGS + MDT0000 (ldiskfs on a loop device), the HSM coordinator
# enabled with a raised max_requests, and the changelog user lustre-blob reads.
set -euo pipefail
# shellcheck source=lib.sh
source /home/vagrant/lustre-vagrant-lib.sh

case "$(uname -r)" in
  *_lustre*) ;;
  *) die "running kernel $(uname -r) is not the Lustre server kernel; stage 1 must reboot into it" ;;
esac
start_lnet

mdt="$FSNAME-MDT0000"
format_and_mount "$mdt" /var/lib/lustre-vagrant/mdt0.img 8G /lustre/mdt0 \
  --fsname="$FSNAME" --mgs --mdt --index=0 --backfstype=ldiskfs

# HSM: start the coordinator and let many requests run at once (the default max_requests of 3
# would serialise the export). Set now, and persistently through the MGS (once).
lctl set_param "mdt.$mdt.hsm_control=enabled"
lctl set_param "mdt.$mdt.hsm.max_requests=$HSM_MAX_REQUESTS"
# A copytool killed mid-copy holds its requests this long before they are CANCELED; shortened
# for the lab (default 3600 s).
lctl set_param "mdt.$mdt.hsm.active_request_timeout=300"
if [ ! -e /var/lib/lustre-vagrant/hsm-persistent ]; then
  lctl set_param -P "mdt.$mdt.hsm_control=enabled"
  lctl set_param -P "mdt.$mdt.hsm.max_requests=$HSM_MAX_REQUESTS"
  touch /var/lib/lustre-vagrant/hsm-persistent
fi
wait_for 60 "hsm_control=enabled on $mdt" \
  bash -c "[ \"\$(lctl get_param -n mdt.$mdt.hsm_control)\" = enabled ]"
log "HSM: $(lctl get_param "mdt.$mdt.hsm_control" "mdt.$mdt.hsm.max_requests" | tr '\n' ' ')"

# The changelog user. The policy file names it; on a fresh MDT the first registration is cl1.
has_user() { lctl get_param -n "mdd.$mdt.changelog_users" | grep -Eq "^$CHANGELOG_USER([[:space:]]|$)"; }
if ! has_user; then
  out=$(lctl --device "$mdt" changelog_register)
  log "changelog_register: $out"
  has_user || die "registered a changelog user, but not $CHANGELOG_USER ($out): set CHANGELOG_USER in the Vagrantfile to it"
fi
log "changelog users of $mdt:"
lctl get_param -n "mdd.$mdt.changelog_users"
