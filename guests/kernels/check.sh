#!/usr/bin/env bash
# Checks that every kernel prints the same line natively and under wasm, and
# times both.  Builds each guests/kernels/NAME.c natively into a temporary
# directory (with gcc, and also with clang when it is installed), runs it and
# the committed NAME.wasm with the same scale, and prints a table:
#
#   kernel    native s   wasm s   ratio  match
#
# native s is the gcc build's wall time, wasm s the wasm runner's (including
# its start-up and compilation of the module), ratio = wasm s / native s.
# match is "yes" when all outputs are the same line and every run exited 0.
# Exits 1 if any kernel does not match.  Run ../build.sh first if the .wasm
# files are missing or stale.
#
# usage: check.sh [NAME...]          (default: every *.c here)
#
# Environment:
#   SCALE          scale factor passed to every kernel (default 1)
#   WASM_RUN       command prefix that runs a wasm32-wasi module with
#                  arguments, e.g. "wasmtime run" or
#                  "python3 guests/kernels/run_wasm.py" (default: the wasmtime
#                  CLI if on PATH, else run_wasm.py if python3 can import the
#                  wasmtime module)
#   NATIVE_CC      native compiler to time (default: gcc)
#   NATIVE_CFLAGS  its flags (default: -O2 -ffp-contract=off -fno-fast-math)
#   CLANG_CHECK    1: also build natively with clang and compare its output
#                  (default: 1 if clang is installed, else 0)
set -euo pipefail

cd "$(dirname "$0")"
here=$(pwd)

SCALE=${SCALE:-1}
NATIVE_CC=${NATIVE_CC:-gcc}
read -ra native_cflags <<< "${NATIVE_CFLAGS:--O2 -ffp-contract=off -fno-fast-math}"
if [[ -z ${CLANG_CHECK:-} ]]; then
    if command -v clang > /dev/null; then CLANG_CHECK=1; else CLANG_CHECK=0; fi
fi

if [[ -n ${WASM_RUN:-} ]]; then
    read -ra wasm_run <<< "$WASM_RUN"
elif command -v wasmtime > /dev/null; then
    wasm_run=(wasmtime run)
elif python3 -c 'import wasmtime' 2> /dev/null; then
    wasm_run=(python3 "$here/run_wasm.py")
else
    echo "check.sh: no wasm runner: set WASM_RUN, install the wasmtime CLI, or" \
         "pip install wasmtime (then run_wasm.py is used)" >&2
    exit 1
fi

if [[ $# -gt 0 ]]; then
    names=("$@")
else
    shopt -s nullglob
    names=()
    for src in *.c; do names+=("${src%.c}"); done
fi
if [[ ${#names[@]} -eq 0 ]]; then
    echo "check.sh: no kernels found" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run OUTFILE CMD...: runs CMD with stdout to OUTFILE, prints wall seconds;
# the exit status is appended to OUTFILE as "exit N" when it is not 0.
run() {
    local out=$1 start end rc=0
    shift
    start=$EPOCHREALTIME
    "$@" > "$out" 2> "$out.err" || rc=$?
    end=$EPOCHREALTIME
    [[ $rc -eq 0 ]] || echo "exit $rc" >> "$out"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

echo "runner: ${wasm_run[*]}; native: $NATIVE_CC ${native_cflags[*]}$( \
    [[ $CLANG_CHECK == 1 ]] && echo "; also compared: clang -O2 native"); scale $SCALE"
printf '%-10s %9s %9s %7s  %s\n' kernel "native s" "wasm s" ratio match
failed=0
report=()
for name in "${names[@]}"; do
    if [[ ! -f $name.c ]]; then
        echo "check.sh: no kernel $name.c" >&2
        exit 1
    fi
    if [[ ! -f $name.wasm ]]; then
        echo "check.sh: $name.wasm missing: run ../build.sh" >&2
        exit 1
    fi
    "$NATIVE_CC" "${native_cflags[@]}" -Wall -Wextra -o "$tmp/$name" "$name.c" -lm
    t_native=$(run "$tmp/$name.native" "$tmp/$name" "$SCALE")
    t_wasm=$(run "$tmp/$name.wasm.out" "${wasm_run[@]}" "$here/$name.wasm" "$SCALE")
    outputs=("$tmp/$name.native" "$tmp/$name.wasm.out")
    if [[ $CLANG_CHECK == 1 ]]; then
        clang -O2 -Wall -Wextra -o "$tmp/$name.clang" "$name.c" -lm
        run "$tmp/$name.clang.out" "$tmp/$name.clang" "$SCALE" > /dev/null
        outputs+=("$tmp/$name.clang.out")
    fi

    # The native output must be exactly one line "NAME <16 hex digits>".
    match=yes
    if [[ $(wc -l < "$tmp/$name.native") -ne 1 ]] ||
        ! grep -qx "$name [0-9a-f]\{16\}" "$tmp/$name.native"; then
        match=no
    fi
    for o in "${outputs[@]:1}"; do
        cmp -s "${outputs[0]}" "$o" || match=no
    done
    if [[ $match == no ]]; then
        failed=1
        for o in "${outputs[@]}"; do
            report+=("$(basename "$o"): $(tr '\n' ' ' < "$o")$(head -c 300 "$o.err" | tr '\n' ' ')")
        done
    fi
    ratio=$(awk -v n="$t_native" -v w="$t_wasm" 'BEGIN { printf "%.2f", (n > 0 ? w / n : 0) }')
    printf '%-10s %9s %9s %7s  %s\n' "$name" "$t_native" "$t_wasm" "$ratio" "$match"
done

if [[ $failed -ne 0 ]]; then
    echo "MISMATCH:" >&2
    printf '  %s\n' "${report[@]}" >&2
    exit 1
fi
echo "all ${#names[@]} kernels match"
