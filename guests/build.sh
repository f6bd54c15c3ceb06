#!/usr/bin/env bash
# Builds every guests/*.c, guests/hostile/*.c and guests/kernels/*.c into a .wasm file beside it
# (wasm32-wasi, WASI preview 1).  The .wasm files are committed, so users
# never need to run this; rerun it after editing a guest.
#
# Requirements on Debian/Ubuntu:
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
# (use the libclang-rt-NN-dev-wasm32 matching your clang version).  Debian's
# clang finds the wasi-libc sysroot under /usr by itself.  With an upstream
# wasi-sdk instead, point CC at its clang and WASI_SYSROOT at its sysroot.
#
# The kernels (kernels/*.c) are built with clang 19 (Debian 12: apt-get install clang-19 lld-19
# libclang-rt-19-dev-wasm32) when it is installed: clang 14 leaves heat3d's stencil loop
# scalar (it cannot vectorize the first-order recurrence its load reuse makes), which made
# stock wasmtime 1.7x slower than native on it; clang 19 vectorizes it as gcc does natively.
#
# Environment:
#   CC            compiler (default: clang)
#   KERNEL_CC     compiler for kernels/*.c (default: clang-19 if on PATH, else CC)
#   WASI_SYSROOT  sysroot to pass as --sysroot (default: /usr/share/wasi-sysroot
#                 if it exists, otherwise the compiler's built-in default)
set -euo pipefail

cd "$(dirname "$0")"

CC=${CC:-clang}
KERNEL_CC=${KERNEL_CC:-$(command -v clang-19 || echo "$CC")}
sysroot=()
if [[ -n ${WASI_SYSROOT:-} ]]; then
    sysroot=(--sysroot="$WASI_SYSROOT")
elif [[ -d /usr/share/wasi-sysroot ]]; then
    sysroot=(--sysroot=/usr/share/wasi-sysroot)
fi

CFLAGS=(--target=wasm32-wasi "${sysroot[@]}" -O2 -Wall -Wextra)
LDFLAGS=(-Wl,--strip-all -lm)

shopt -s nullglob
sources=(*.c hostile/*.c kernels/*.c)
if [[ ${#sources[@]} -eq 0 ]]; then
    echo "build.sh: no sources found" >&2
    exit 1
fi

for src in "${sources[@]}"; do
    out=${src%.c}.wasm
    model=()
    # A reactor (exports `_initialize` and its entry instead of `_start`).
    [[ $src == *reactor*.c ]] && model=(-mexec-model=reactor)
    # A kernel's output must be the same bits as its native build's (kernels/check.sh): never
    # fuse a*b+c (kernels/common.h says so to clang too). Kernels are built with SIMD: clang
    # vectorizes their loops as gcc does natively, and the sandbox's profile 4 makes float
    # vectors' NaNs canonical only where observed, so they keep what that gains.
    cc=$CC
    [[ $src == kernels/*.c ]] && model=(-ffp-contract=off -msimd128) && cc=$KERNEL_CC
    "$cc" "${CFLAGS[@]}" "${model[@]}" -o "$out" "$src" "${LDFLAGS[@]}"
    printf '%-30s %7d bytes\n' "guests/$out" "$(wc -c < "$out")"
done
