#!/usr/bin/env bash
# Prepares the "vm" test environment (DESIGN.md §6): Debian's stock kernel,
# which has cls_flower and is the oldest kernel we support (6.1), booted under
# QEMU with software emulation through virtme-ng. The hw-tests crate finds what
# this script prepares; see ../shared/recipes/vm-kernel.md for the background.
#
# Runs as root (uses sudo otherwise). Safe to run again: work already done is
# skipped. Needs only the Debian archive and PyPI.
#
#   PALISADE_VM_CACHE  where to keep the venv and the kernel
#                      (default /var/cache/palisade-vm)
#
# To move to a newer kernel ABI, delete <cache>/kernel and run this again.
set -euo pipefail

CACHE=${PALISADE_VM_CACHE:-/var/cache/palisade-vm}
# The virtme-ng release the harness was checked against.
VNG_VERSION=1.42
# qemu-system-x86: the emulator; kmod: depmod/modprobe in the guest; udev:
# without it the guest's exit code is lost; busybox-static: virtme-ng's
# initramfs; python3-venv: to install virtme-ng from PyPI.
PACKAGES=(qemu-system-x86 kmod udev busybox-static python3-venv)
# The system interpreter, not whatever python3 comes first in PATH (pyenv...).
PYTHON=/usr/bin/python3

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
say() { echo "vm-setup: $*"; }

# 1. Debian packages.
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "packages: already installed"
fi

$SUDO mkdir -p "$CACHE"

# 2. virtme-ng in a venv.
VNG="$CACHE/vng/bin/vng"
if [ -x "$VNG" ] && "$VNG" --version 2>/dev/null | grep -qxF "virtme-ng $VNG_VERSION"; then
  say "virtme-ng: $VNG already there"
else
  say "virtme-ng: installing $VNG_VERSION into $CACHE/vng"
  $SUDO rm -rf "$CACHE/vng"
  $SUDO "$PYTHON" -m venv "$CACHE/vng"
  $SUDO "$CACHE/vng/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION"
  "$VNG" --version >/dev/null
fi

# 3. Debian's stock kernel, unpacked (not installed).
find_kernel() { ls "$CACHE"/kernel/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1; }
KERNEL=$(find_kernel || true)
if [ -n "$KERNEL" ]; then
  say "kernel: already unpacked"
else
  # The ABI number in the package name changes and old .debs leave the
  # archive, so resolve it through the metapackage every time.
  resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
  KPKG=$(resolve || true)
  if [ -z "$KPKG" ]; then
    say "apt lists are empty; running apt-get update"
    $SUDO apt-get update -qq
    KPKG=$(resolve)
  fi
  [ -n "$KPKG" ] || { echo "vm-setup: cannot resolve linux-image-amd64 with apt-cache" >&2; exit 1; }
  DEBS="$CACHE/debs"
  $SUDO mkdir -p "$DEBS"
  if ! ls "$DEBS/${KPKG}"_*.deb >/dev/null 2>&1; then
    say "kernel: downloading $KPKG"
    # Root downloads unsandboxed: say so to apt instead of being warned.
    download() { (cd "$DEBS" && $SUDO apt-get -q=2 -o APT::Sandbox::User=root download "$KPKG"); }
    if ! download; then
      say "download failed; refreshing apt lists and retrying"
      $SUDO apt-get update -qq
      download
    fi
  fi
  DEB=$(ls "$DEBS/${KPKG}"_*.deb | sort -V | tail -n 1)
  say "kernel: unpacking $(basename "$DEB")"
  $SUDO rm -rf "$CACHE/kernel.tmp"
  $SUDO dpkg -x "$DEB" "$CACHE/kernel.tmp"
  # The .deb ships no modules.dep (its postinst makes one); make it now so
  # that booting needs no write access to the cache.
  for moddir in "$CACHE"/kernel.tmp/lib/modules/*/; do
    $SUDO depmod -a -b "$CACHE/kernel.tmp" "$(basename "$moddir")"
  done
  $SUDO rm -rf "$CACHE/kernel"
  $SUDO mv "$CACHE/kernel.tmp" "$CACHE/kernel"
  KERNEL=$(find_kernel)
fi
[ -n "$KERNEL" ] || { echo "vm-setup: no vmlinuz under $CACHE/kernel/boot" >&2; exit 1; }

say "ready"
echo "$KERNEL"
