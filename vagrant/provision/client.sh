#!/usr/bin/env bash
# Stage 2 on a client: the Lustre client modules and mount, Node 20 + Azurite on 127.0.0.1:10000,
# Rust, our binaries built from the synced project (/vagrant), a policy file and the systemd units.
# client1 runs Azurite; with two clients a relay makes 127.0.0.1:10000 on client2 reach it, so
# one policy file serves every node, and client2 runs a second copytool under systemd.
set -euo pipefail
# shellcheck source=lib.sh
source /home/vagrant/lustre-vagrant-lib.sh

# Azurite 3.35.0 (the last release on Node 20), its tree pinned by scripts/azurite/package-lock.json.
AZURE_SDK_VERSION=12.34.0                   # @azure/storage-blob, used only by vagrant/azurite-tool.js
E2E_CONTAINER=lustre-e2e
E2E_LOG_CONTAINER=lustre-e2e-logs
export RUSTUP_HOME=/opt/rust/rustup CARGO_HOME=/opt/rust/cargo
export PATH="$CARGO_HOME/bin:$PATH"
first_client=false
[ "$NODE_IP" = "$AZURITE_NODE_IP" ] && first_client=true

# --- Lustre client -------------------------------------------------------------------------
if ! modinfo lustre >/dev/null 2>&1; then
  if [ "$LUSTRE_CLIENT_MODULES" = kmod ]; then
    dnf -y install kmod-lustre-client lustre-client
  else
    dnf -y install "kernel-devel-$(uname -r)" dkms libyaml-devel elfutils-libelf-devel
    # The DKMS package builds the modules for the running kernel (several minutes).
    dnf -y install lustre-client-dkms lustre-client
    dkms autoinstall -k "$(uname -r)"
  fi
fi
start_lnet
wait_for 600 "the MGS at $MGS_NID" lctl ping "$MGS_NID"

mkdir -p "$CLIENT_MOUNT"
fstab_line="$MGS_NID:/$FSNAME $CLIENT_MOUNT lustre defaults,_netdev,flock 0 0"
grep -qF "$fstab_line" /etc/fstab || echo "$fstab_line" >> /etc/fstab
systemctl daemon-reload
findmnt -t lustre -n "$CLIENT_MOUNT" >/dev/null || mount "$CLIENT_MOUNT"
wait_for 300 "every OST usable from $CLIENT_MOUNT" bash -c \
  "[ \"\$(lfs df $CLIENT_MOUNT | grep -c ':OST')\" -ge $OST_COUNT ]"
lfs df -h "$CLIENT_MOUNT"

# --- Node 20, Azurite, the Azure SDK for the check script -----------------------------------
dnf -y module reset nodejs
dnf -y module enable nodejs:20
dnf -y install nodejs npm jq socat gcc gcc-c++ make cmake perl git
# The same pinned tree as scripts/install-azurite (see there why a lockfile).
if [ ! -x /opt/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p /opt/azurite
  cp /vagrant/scripts/azurite/package.json /vagrant/scripts/azurite/package-lock.json /opt/azurite/
  (cd /opt/azurite && npm ci --no-audit --no-fund)
fi
if [ ! -d /opt/lustre-blob-e2e/node_modules/@azure/storage-blob ]; then
  npm install --prefix /opt/lustre-blob-e2e --save-exact --no-audit --no-fund "@azure/storage-blob@$AZURE_SDK_VERSION"
fi

if $first_client; then
  cat > /etc/systemd/system/azurite.service <<UNIT
[Unit]
Description=Azurite blob emulator on 127.0.0.1:10000 (lustre-blob lab)
After=network.target

[Service]
ExecStart=/opt/azurite/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort 10000 --location /var/lib/azurite --skipApiVersionCheck --loose --silent --disableTelemetry
StateDirectory=azurite
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
  relay_listen="$NODE_IP:10000" relay_target="127.0.0.1:10000"
else
  relay_listen="127.0.0.1:10000" relay_target="$AZURITE_NODE_IP:10000"
fi
if [ "$CLIENT_COUNT" -gt 1 ]; then
  # client1: expose Azurite on the private network; others: make 127.0.0.1:10000 reach it.
  cat > /etc/systemd/system/azurite-relay.service <<UNIT
[Unit]
Description=TCP relay $relay_listen -> $relay_target (shared Azurite for the lustre-blob lab)
After=network-online.target

[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:${relay_listen##*:},bind=${relay_listen%:*},reuseaddr,fork TCP:$relay_target
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
fi
systemctl daemon-reload
$first_client && systemctl enable --now azurite.service
[ "$CLIENT_COUNT" -gt 1 ] && systemctl enable --now azurite-relay.service
# shellcheck disable=SC2016  # expanded by the inner bash
wait_for 120 "Azurite answering on 127.0.0.1:10000" \
  bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:10000/devstoreaccount1?comp=list)" != 000 ]'
NODE_PATH=/opt/lustre-blob-e2e/node_modules node /vagrant/vagrant/azurite-tool.js create "$E2E_CONTAINER" "$E2E_LOG_CONTAINER"

# --- Rust and our binaries ------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  # rustup's official installer; the workspace needs Rust 1.85 or newer.
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
fi
(
  cd /vagrant
  CARGO_TARGET_DIR=/var/tmp/lustre-blob-target cargo build --release --bin lhsmtool_blob --bin lustre-blob
)
install -m 0755 /var/tmp/lustre-blob-target/release/lhsmtool_blob /var/tmp/lustre-blob-target/release/lustre-blob /usr/local/bin/
install -d -m 0755 /etc/lustre-blob /usr/local/share/doc/lustre-blob
install -m 0644 /vagrant/dist/systemd/lhsmtool_blob@.service /vagrant/dist/systemd/lustre-blob.service /etc/systemd/system/
install -m 0644 /vagrant/docs/admin-guide.md /usr/local/share/doc/lustre-blob/

# The lab policy: Azurite, the whole file system, the registered changelog user. vagrant/e2e.sh
# writes its own per-run policy with the same [blob] and [logging] sections.
cat > /etc/lustre-blob/policy.toml <<POLICY
[lustre]
mount = "$CLIENT_MOUNT"
archive_id = 1
changelog_user = "$CHANGELOG_USER"

[blob]
url = "http://127.0.0.1:10000/devstoreaccount1/$E2E_CONTAINER"
use_emulator = true

[logging]
container = "$E2E_LOG_CONTAINER"

[copytool]
update_interval = "5s"
POLICY
chmod 0644 /etc/lustre-blob/policy.toml
systemctl daemon-reload

unit="lhsmtool_blob@$(systemd-escape --path "$CLIENT_MOUNT").service"
if $first_client; then
  log "client1 ready: run /vagrant/vagrant/e2e.sh (it starts its own copytool and daemon)"
else
  # A second data mover: its copytool shares the work the coordinator hands out.
  systemctl enable --now "$unit"
  log "$(hostname -s): $unit running"
fi
