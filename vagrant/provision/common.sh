#!/usr/bin/env bash
# Stage 1 on every node: host names, SELinux/firewall, the Lustre repositories, and the packages
# that need a reboot (servers: the Lustre server kernel and modules; clients: an up-to-date kernel
# with its kernel-devel for the DKMS build). The Vagrantfile reboots the VM after this script.
set -euo pipefail
# shellcheck source=lib.sh
source /home/vagrant/lustre-vagrant-lib.sh

log "stage 1: $NODE_ROLE, Lustre $LUSTRE_VERSION from $LUSTRE_REPO_BASE"

# Name resolution for the cluster.
sed -i '/# lustre-vagrant$/d' /etc/hosts
while read -r line; do
  [ -n "$line" ] && echo "$line # lustre-vagrant" >> /etc/hosts
done <<< "$ETC_HOSTS"

# Lustre servers do not run under SELinux enforcing; LNet uses TCP 988 between all nodes.
setenforce 0 2>/dev/null || true
sed -i 's/^SELINUX=.*/SELINUX=permissive/' /etc/selinux/config
systemctl disable --now firewalld 2>/dev/null || true

dnf -y install dnf-plugins-core
# libyaml-devel and other build dependencies of the Lustre DKMS package live in PowerTools (EL8)
# or CRB (EL9).
dnf config-manager --set-enabled powertools 2>/dev/null || dnf config-manager --set-enabled crb

# Whamcloud's repositories. gpgcheck=0: set it to 1 and import the key if your mirror signs packages.
if [ "$NODE_ROLE" = server ]; then
  cat > /etc/yum.repos.d/lustre-vagrant.repo <<REPO
[lustre-server]
name=Lustre $LUSTRE_VERSION server
baseurl=$LUSTRE_REPO_BASE/server
enabled=1
gpgcheck=0

[e2fsprogs-wc]
name=e2fsprogs with the Lustre (ldiskfs) patches
baseurl=$E2FSPROGS_REPO_URL
enabled=1
gpgcheck=0
REPO
else
  cat > /etc/yum.repos.d/lustre-vagrant.repo <<REPO
[lustre-client]
name=Lustre $LUSTRE_VERSION client
baseurl=$LUSTRE_REPO_BASE/client
enabled=1
gpgcheck=0
REPO
fi
dnf -y makecache

if [ "$NODE_ROLE" = server ]; then
  # ldiskfs needs Whamcloud's e2fsprogs (newer than the distribution's).
  dnf -y upgrade e2fsprogs e2fsprogs-libs libcom_err libss
  # The patched server kernel from the Lustre repository (kernel, kernel-core, kernel-modules and
  # on EL9 kernel-modules-core), whatever exact version this release ships.
  mapfile -t kernel_pkgs < <(dnf -q --disablerepo='*' --enablerepo=lustre-server repoquery --latest-limit 1 \
    --qf '%{name}-%{version}-%{release}.%{arch}' kernel kernel-core kernel-modules kernel-modules-core)
  [ "${#kernel_pkgs[@]}" -gt 0 ] || die "no kernel package in $LUSTRE_REPO_BASE/server"
  log "server kernel: ${kernel_pkgs[*]}"
  dnf -y install "${kernel_pkgs[@]}" lustre kmod-lustre kmod-lustre-osd-ldiskfs lustre-osd-ldiskfs-mount
  lustre_kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*_lustre*' | sort -V | tail -n1)
  [ -n "$lustre_kernel" ] || die "the Lustre server kernel was not installed in /boot"
  grubby --set-default "$lustre_kernel"
  # Keep booting the Lustre kernel when a distribution kernel update comes in.
  [ -e /etc/sysconfig/kernel ] && sed -i 's/^UPDATEDEFAULT=.*/UPDATEDEFAULT=no/' /etc/sysconfig/kernel
  log "default kernel: $(grubby --default-kernel)"
else
  dnf -y install epel-release
  # The DKMS build needs kernel-devel of the running kernel: update the kernel now and boot into it.
  dnf -y upgrade kernel
  new_kernel=$(grubby --default-kernel | sed 's|^/boot/vmlinuz-||')
  dnf -y install "kernel-devel-$new_kernel" gcc make
  log "client kernel after reboot: $new_kernel"
fi
log "stage 1 done; rebooting"
