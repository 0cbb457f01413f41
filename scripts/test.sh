#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite.
# Installs what it needs first. Prints the time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."

phase() {
  local name=$1; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  echo "==> $name: $((SECONDS - start)) s"
}

phase setup bash scripts/setup.sh
# Debian's stock 6.1 kernel under QEMU, for the hw-tests VM tests.
phase vm-setup bash scripts/vm-setup.sh
phase fmt cargo fmt --all -- --check
phase clippy cargo clippy --workspace --all-targets --locked -- -D warnings
phase doctests cargo test --workspace --locked --doc
# The fuzz target runs under cargo-fuzz on nightly; here it must at least build.
phase fuzz-target cargo check --manifest-path compiler/fuzz/Cargo.toml --locked
phase tests cargo nextest run --workspace --locked --no-fail-fast
