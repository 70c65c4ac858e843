#!/usr/bin/env bash
# Builds the WASM SIMD kernel (wasm/) and copies it to src/kernel/spectr_kernel.wasm.
#
# The build is deterministic and independent of the checkout directory, so CI can rebuild and
# compare byte for byte with the committed file: a fresh temporary target dir, the crate dir and
# cargo home remapped in paths, no debuginfo, symbols stripped, Cargo.lock honoured (--locked).
# The toolchain is part of the input: Debian rustc 1.63 with the wasm32 target (override with
# SPECTR_CARGO / SPECTR_RUSTC); another compiler version gives different (valid) bytes.
#
# Usage: tools/build_wasm.sh           build and update src/kernel/spectr_kernel.wasm
#        tools/build_wasm.sh --check   build to a temp file and fail if it differs from the committed one
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE="$ROOT/wasm"
DEST="$ROOT/src/kernel/spectr_kernel.wasm"
CARGO="${SPECTR_CARGO:-/usr/bin/cargo}"
RUSTC_BIN="${SPECTR_RUSTC:-/usr/bin/rustc}"
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "build_wasm.sh: unknown argument '$1' (expected nothing or --check)" >&2; exit 2 ;;
esac

for tool in "$CARGO" "$RUSTC_BIN"; do
  if ! command -v "$tool" >/dev/null; then
    echo "build_wasm.sh: $tool not found (set SPECTR_CARGO / SPECTR_RUSTC)" >&2
    exit 1
  fi
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

export RUSTC="$RUSTC_BIN"
export CARGO_TARGET_DIR="$WORK/target"
export CARGO_INCREMENTAL=0
export SOURCE_DATE_EPOCH=0
export RUSTFLAGS="-C target-feature=+simd128 -C debuginfo=0 -C link-arg=--strip-all \
--remap-path-prefix=$CRATE=/spectr/wasm --remap-path-prefix=$CARGO_HOME_DIR=/cargo \
--remap-path-prefix=$WORK=/build"
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS

"$CARGO" build --quiet --release --locked --target wasm32-unknown-unknown --manifest-path "$CRATE/Cargo.toml"
BUILT="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/spectr_kernel.wasm"
if [[ ! -s "$BUILT" ]]; then
  echo "build_wasm.sh: cargo produced no $BUILT" >&2
  exit 1
fi

# The module must be self-contained: no imports at all.
if command -v wasm-objdump >/dev/null; then
  if wasm-objdump -j Import -x "$BUILT" 2>/dev/null | grep -q '^Import\['; then
    echo "build_wasm.sh: the built module has imports; it must have none:" >&2
    wasm-objdump -j Import -x "$BUILT" >&2
    exit 1
  fi
fi

if [[ "$mode" == check ]]; then
  if [[ ! -f "$DEST" ]]; then
    echo "build_wasm.sh --check: $DEST is missing; run tools/build_wasm.sh and commit it" >&2
    exit 1
  fi
  if ! cmp -s "$BUILT" "$DEST"; then
    echo "build_wasm.sh --check: $DEST differs from a fresh build" \
      "($(sha256sum <"$BUILT" | cut -c1-16) built vs $(sha256sum <"$DEST" | cut -c1-16) committed);" \
      "run tools/build_wasm.sh with $("$RUSTC_BIN" --version) and commit the result" >&2
    exit 1
  fi
  echo "build_wasm.sh --check: $DEST matches a fresh build ($(wc -c <"$DEST") bytes)"
else
  cp "$BUILT" "$DEST"
  echo "build_wasm.sh: wrote $DEST ($(wc -c <"$DEST") bytes, sha256 $(sha256sum <"$DEST" | cut -c1-16))"
fi
