#!/usr/bin/env bash
# mkinitrd.sh KVER OUT: a tiny initramfs for the TCG guest. It holds the host's busybox (and the
# libraries it needs), the kernel's virtio/9p/overlay modules and an /init that mounts the host's
# root read-only over 9p, puts a tmpfs overlay on it and runs the guest script named on the kernel
# command line (rl_script=PATH) as PID 1 in the new root.
set -euo pipefail
kver=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,lib/mod,lib64,lib/x86_64-linux-gnu,proc,sys,dev,lower,upper,newroot}
cp /usr/bin/busybox "$work/bin/"
for lib in $(ldd /usr/bin/busybox | grep -oE '/[^ ]+'); do cp -L "$lib" "$work$lib"; done
: >"$work/lib/mod/order"
for m in virtio_pci virtio_blk 9pnet_virtio 9p overlay; do
  modprobe --show-depends -S "$kver" "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  base=$(basename "$ko")
  cp "$ko" "$work/lib/mod/$base"
  echo "$base" >>"$work/lib/mod/order"
done
cat >"$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/mod/order); do
  case $m in *.ko.xz) xz -dc "/lib/mod/$m" >/tmp.ko && insmod /tmp.ko && rm /tmp.ko ;; *) insmod "/lib/mod/$m" ;; esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /lower ||
  { echo "initrd: cannot mount the host root (9p)"; exec sh; }
mount -t tmpfs -o size=75% tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot ||
  { echo "initrd: overlay failed"; exec sh; }
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
echo "initrd: root ready, running $rl_script"
exec switch_root /newroot /bin/bash "$rl_script"
INIT
chmod +x "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
