#!/usr/bin/env bash
# Installs what building and testing Palisade needs on a fresh Debian 12
# machine (run as root, or with sudo available). Safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# chromium: the HTML plan test renders the report headless; clang and
# libbpf-dev: the XDP program is C built by fallback-xdp/build.rs; nftables: the
# tcam bench loads the same rules with nft -f for comparison; tcpreplay: the
# demo sends the example capture through a veth; strace: the flower fixture
# test captures what tc sends; verilator: the sim crate builds rtl/ into C++;
# prometheus: promtool checks and unit-tests deploy/prometheus/ (and the
# package's server can scrape an agent); python3-venv: the venv below;
# systemd: systemd-analyze verifies deploy/systemd/ (tests/deploy.rs);
# iputils-ping and curl: the agent tests ping through it and the demo reads
# its /metrics.
PACKAGES=(build-essential pkg-config xz-utils iproute2 chromium fonts-dejavu-core nftables clang llvm libbpf-dev tcpreplay strace verilator prometheus python3-venv systemd iputils-ping curl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust 1.95 (rustup)" >&2; exit 2; }
echo "setup: $(rustc --version)"
for c in rustfmt clippy; do
  if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "setup: adding the $c component"
    rustup component add "$c"
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# kubernetes-validate (PyPI, pinned) checks deploy/kubernetes/ against the
# Kubernetes API schemas it ships, offline; tests/deploy.rs looks for it in
# this venv first.
KV_VERSION=1.37.0
KV_VENV=/opt/palisade/venv
if [ "$("$KV_VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$KV_VERSION" ]; then
  echo "setup: installing kubernetes-validate $KV_VERSION in $KV_VENV"
  $SUDO mkdir -p "$(dirname "$KV_VENV")"
  $SUDO python3 -m venv "$KV_VENV"
  $SUDO "$KV_VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi
