#!/usr/bin/env bash
# Builds every fuzz target (cargo-fuzz, libFuzzer) and runs each for a bounded time on a copy of
# its committed seed corpus (fuzz/corpus/<target>/), then prints one line per target. Exits
# non-zero if any target crashed (the input is kept in fuzz/artifacts/<target>/).
#
#   bash fuzz/run.sh                      # about 60 s of fuzzing in all, split over the targets
#   FUZZ_SECONDS=600 bash fuzz/run.sh     # longer
#   FUZZ_TARGETS="entry block" bash fuzz/run.sh
#
# Needs only the stable Rust toolchain and a C++ compiler: cargo-fuzz passes -Z flags, which
# RUSTC_BOOTSTRAP=1 allows on stable; cargo-fuzz is installed if missing. FUZZ_SANITIZER picks
# the sanitizer (default address; `none` builds faster and runs faster, finding only panics,
# aborts, timeouts and memory blow-ups).
set -euo pipefail
cd "$(dirname "$0")"

total=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
# The bundled SQLite (rusqlite, under crates/store) trips AddressSanitizer's one-definition-rule
# check at start-up (sqlite3.c's function-local `aiOff` tables): not a bug in it or in us.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
read -r -a targets <<<"$(echo $targets)"
per=$(( total / ${#targets[@]} ))
(( per >= 1 )) || per=1

echo "== cargo fuzz build (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$host/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
rows=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${per}s"
    # New inputs go to a copy: the committed corpus stays the small seed set.
    corpus=$work/corpus/$target
    mkdir -p "$corpus" "artifacts/$target"
    if [[ -d corpus/$target ]]; then
        cp -r "corpus/$target/." "$corpus/"
    fi
    log=$work/$target.log
    start=$(date +%s)
    set +e
    "$bin_dir/$target" "$corpus" \
        -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    size=$(find "$corpus" -type f | wc -l)
    if (( rc == 0 )); then
        result=ok
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        result="CRASH (exit $rc) ${artifact:+fuzz/$artifact}"
        tail -n 40 "$log"
    fi
    rows+=("$(printf '%-16s %12s %8s %8s  %s' "$target" "${runs:-?}" "$secs" "$size" "$result")")
done

echo
printf '%-16s %12s %8s %8s  %s\n' target runs seconds corpus result
printf '%s\n' "${rows[@]}"
if (( failed )); then
    echo "fuzzing found a crash: reproduce with fuzz/target/$host/release/<target> <artifact>," \
        "then add its bytes as a regression test in the crate that owns the decoder" >&2
fi
exit "$failed"
