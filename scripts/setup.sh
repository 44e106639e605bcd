#!/usr/bin/env bash
# Installs what sockbypass needs on Debian 12 and builds it: Debian packages,
# npm packages, the BPF object, the native helpers and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

# podman and mmdebstrap: the image test (test/deploy-image.test.ts) bootstraps a base and builds the Dockerfile.
# iptables, nftables and haproxy: the NAT tests (test/nat.test.ts).
APT_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool libssl-dev make gcc iperf3 sockperf tcpdump iproute2 podman mmdebstrap iptables nftables haproxy)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # iperf3 asks whether to start a daemon; answer no.
  echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections
  # haproxy only stands in for a sidecar in test/nat.test.ts, run by the test in the
  # foreground; mask its service (before the package can start it) where systemd runs.
  if [ -d /run/systemd/system ] && printf '%s\n' "${missing[@]}" | grep -qx haproxy; then
    $SUDO systemctl mask haproxy.service >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building"
make -s
npx tsc -p .
