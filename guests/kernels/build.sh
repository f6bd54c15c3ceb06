#!/usr/bin/env bash
# Builds every guests/kernels/*.c into a .wasm file beside it (wasm32-wasi,
# WASI preview 1).  The .wasm files are committed, so users never need to run
# this; rerun it after editing a kernel.  check.sh compares them with native
# builds.
#
# Requirements on Debian/Ubuntu (as for ../build.sh):
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
# (use the libclang-rt-NN-dev-wasm32 matching your clang version).  Debian's
# clang finds the wasi-libc sysroot under /usr by itself.  With an upstream
# wasi-sdk instead, point CC at its clang and WASI_SYSROOT at its sysroot.
#
# Environment:
#   CC            compiler (default: clang)
#   WASI_SYSROOT  sysroot to pass as --sysroot (default: /usr/share/wasi-sysroot
#                 if it exists, otherwise the compiler's built-in default)
set -euo pipefail

cd "$(dirname "$0")"

CC=${CC:-clang}
sysroot=()
if [[ -n ${WASI_SYSROOT:-} ]]; then
    sysroot=(--sysroot="$WASI_SYSROOT")
elif [[ -d /usr/share/wasi-sysroot ]]; then
    sysroot=(--sysroot=/usr/share/wasi-sysroot)
fi

# -ffp-contract=off: never fuse a*b+c (common.h also says so to clang); the
# kernels' output must be the same bits as a native build's.
CFLAGS=(--target=wasm32-wasi "${sysroot[@]}" -O2 -Wall -Wextra -ffp-contract=off)
LDFLAGS=(-Wl,--strip-all -lm)

shopt -s nullglob
sources=(*.c)
if [[ ${#sources[@]} -eq 0 ]]; then
    echo "build.sh: no sources found" >&2
    exit 1
fi

for src in "${sources[@]}"; do
    out=${src%.c}.wasm
    "$CC" "${CFLAGS[@]}" -o "$out" "$src" "${LDFLAGS[@]}"
    printf '%-30s %7d bytes\n' "guests/kernels/$out" "$(wc -c < "$out")"
done
