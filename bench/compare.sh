#!/usr/bin/env bash
# Compare gridmint's end-to-end no-op task throughput and single-task latency
# with Ray and Dask distributed on this machine, in interleaved rounds.
#
#   bash bench/compare.sh [--quick] [--json]
#
# See bench/README.md. Progress goes to stderr; the summary table (or, with
# --json, exactly one JSON object) goes to stdout. A missed goal never fails
# the script; a failing run of any system does.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --quick   one short counted round (after a tiny warm-up); < 2 min once the venv exists
  --json    print one JSON object on stdout instead of the table
  -h, --help

Environment overrides (defaults in brackets, full / quick):
  ROUNDS [5 / 1]  GRIDMINT_TASKS [20000 / 5000]  RAY_TASKS [20000 / 5000]
  DASK_TASKS [5000 / 2000]  LATENCY_SAMPLES [200 / 100]  RUN_TIMEOUT_S [600 / 90]
  RAY_VERSION [2.60.0]  DASK_VERSION [2026.8.0]  PYTHON [python3]
EOF
}

QUICK=0
JSON=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --json) JSON=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$BENCH_DIR/.venv"
VPY="$VENV/bin/python"
GRIDMINT="$ROOT/target/release/gridmint"
PYTHON="${PYTHON:-python3}"

# Pinned versions (latest on PyPI that install on Python 3.11 when this was written).
RAY_VERSION="${RAY_VERSION:-2.60.0}"
DASK_VERSION="${DASK_VERSION:-2026.8.0}"

CORES="$(nproc)"
if [[ $QUICK -eq 1 ]]; then
    MODE=quick
    ROUNDS="${ROUNDS:-1}"
    GRIDMINT_TASKS="${GRIDMINT_TASKS:-5000}"
    RAY_TASKS="${RAY_TASKS:-5000}"
    DASK_TASKS="${DASK_TASKS:-2000}"
    LATENCY_SAMPLES="${LATENCY_SAMPLES:-100}"
    RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-90}"
    WARMUP_GRIDMINT_TASKS=200
    WARMUP_RAY_TASKS=200
    WARMUP_DASK_TASKS=100
    WARMUP_LATENCY=10
else
    MODE=full
    ROUNDS="${ROUNDS:-5}"
    GRIDMINT_TASKS="${GRIDMINT_TASKS:-20000}"
    RAY_TASKS="${RAY_TASKS:-20000}"
    DASK_TASKS="${DASK_TASKS:-5000}"
    LATENCY_SAMPLES="${LATENCY_SAMPLES:-200}"
    RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-600}"
    WARMUP_GRIDMINT_TASKS=2000
    WARMUP_RAY_TASKS=2000
    WARMUP_DASK_TASKS=500
    WARMUP_LATENCY=20
fi

log() { echo "compare: $*" >&2; }
die() { echo "compare: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found; Python 3 (3.11) is needed for the venv and the summary"

# ---------------------------------------------------------------- 1. venv
venv_ok() {
    [[ -x "$VPY" ]] && "$VPY" - "$RAY_VERSION" "$DASK_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import ray, dask, distributed
sys.exit(0 if (ray.__version__, distributed.__version__) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}

if venv_ok; then
    log "reusing $VENV"
else
    log "setting up $VENV with ray==$RAY_VERSION and dask[distributed]==$DASK_VERSION (once; takes a minute)"
    [[ -x "$VPY" ]] || "$PYTHON" -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed (is the python3-venv package installed?)"
    "$VPY" -m pip install --upgrade pip >&2 || die "upgrading pip in $VENV failed"
    "$VPY" -m pip install "ray==$RAY_VERSION" "dask[distributed]==$DASK_VERSION" >&2 \
        || die "pip install of ray/dask into $VENV failed (PyPI reachable?)"
    venv_ok || die "ray $RAY_VERSION / distributed $DASK_VERSION still not importable from $VPY"
fi
VERSIONS_JSON="$("$VPY" -c 'import json, ray, dask, distributed; print(json.dumps({"ray": ray.__version__, "dask": dask.__version__, "distributed": distributed.__version__}))')"
log "versions: $VERSIONS_JSON"

# ---------------------------------------------------------------- 2. gridmint
if [[ ! -x "$GRIDMINT" ]]; then
    log "building gridmint (cargo build --release --locked)"
    (cd "$ROOT" && cargo build --release --locked >&2) || die "cargo build --release --locked failed"
fi
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then GIT_REV="$GIT_REV-dirty"; fi
BUILT="$(date -u -r "$GRIDMINT" '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null || echo unknown)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gridmint-compare.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Snapshot the binary so that every round runs the same build even if
# target/release/gridmint is rebuilt while the comparison runs.
# A copy taken while cargo is relinking may be truncated: check it runs, retry.
for attempt in 1 2 3 4 5 6; do
    cp "$GRIDMINT" "$WORK/gridmint" || die "copying $GRIDMINT to $WORK failed"
    if GRIDMINT_VERSION="$("$WORK/gridmint" --version 2>/dev/null)"; then break; fi
    [[ $attempt -lt 6 ]] || die "$GRIDMINT does not run ('gridmint --version' failed)"
    log "$GRIDMINT does not run yet (being rebuilt?); retrying in 10 s"
    sleep 10
done
GRIDMINT="$WORK/gridmint"
GRIDMINT_VERSION="$(awk '{print $2}' <<<"$GRIDMINT_VERSION")"
log "gridmint $GRIDMINT_VERSION, git $GIT_REV, binary built $BUILT (snapshot taken)"

# ---------------------------------------------------------------- 3. rounds

# Leftovers of the previous run (Ray's raylet, GCS and workers take a moment to exit after
# ray.shutdown) would take CPU from the next system: wait for them (at most 10 s), then give
# every run the same second of quiet.
settle() {
    local waited=0
    while pgrep -f "raylet|gcs_server|ray::|dask_noop|distributed" >/dev/null 2>&1 && [[ $waited -lt 20 ]]; do
        sleep 0.5
        waited=$((waited + 1))
    done
    sleep 1
}

# run_one SYSTEM TAG TASKS LATENCY_SAMPLES WARMUP_TASKS -> $WORK/SYSTEM-TAG.json
run_one() {
    local sys="$1" tag="$2" tasks="$3" lat="$4" warm="$5"
    settle
    local out="$WORK/$sys-$tag.json" err="$WORK/$sys-$tag.log" rc=0
    local -a cmd
    case "$sys" in
        gridmint)
            cmd=("$GRIDMINT" bench --only e2e --json --tasks "$tasks")
            [[ $QUICK -eq 1 ]] && cmd+=(--quick)
            ;;
        ray)
            cmd=("$VPY" "$BENCH_DIR/ray_noop.py" --tasks "$tasks" --latency-samples "$lat"
                 --warmup-tasks "$warm" --cpus "$CORES")
            ;;
        dask)
            cmd=("$VPY" "$BENCH_DIR/dask_noop.py" --tasks "$tasks" --latency-samples "$lat"
                 --warmup-tasks "$warm" --workers "$CORES")
            ;;
    esac
    log "[$tag] $sys: $tasks tasks ..."
    # Run from a scratch directory so nothing (gridmint data dirs, Ray/Dask
    # spill files) lands in the repository.
    mkdir -p "$WORK/cwd"
    (cd "$WORK/cwd" && timeout --kill-after=10 "$RUN_TIMEOUT_S" "${cmd[@]}") >"$out" 2>"$err" || rc=$?
    sed "s/^/    $sys| /" "$err" >&2
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 124 || $rc -eq 137 ]] && log "$sys timed out after ${RUN_TIMEOUT_S}s"
        die "$sys run '$tag' failed with exit status $rc: ${cmd[*]}"
    fi
    "$PYTHON" - "$sys" "$out" <<'EOF' >&2 || die "$sys run '$tag' printed no usable JSON on stdout (see above)"
import json, sys
name, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
if name == "gridmint":
    e = d["end_to_end"]
    tps, lat = e["tasks_per_second"], e["latency_p50_ms"]
else:
    tps, lat = d["tasks_per_s"], d["latency_p50_ms"]
print(f"compare:     -> {name}: {float(tps):,.0f} tasks/s, latency p50 {float(lat):.2f} ms")
EOF
}

log "mode $MODE: $ROUNDS counted round(s) after a warm-up round; $CORES cores;" \
    "tasks gridmint=$GRIDMINT_TASKS ray=$RAY_TASKS dask=$DASK_TASKS; latency samples (ray/dask)=$LATENCY_SAMPLES"

START_S=$SECONDS
run_one gridmint warmup "$WARMUP_GRIDMINT_TASKS" "$WARMUP_LATENCY" 0
run_one ray warmup "$WARMUP_RAY_TASKS" "$WARMUP_LATENCY" 50
run_one dask warmup "$WARMUP_DASK_TASKS" "$WARMUP_LATENCY" 50
for ((r = 1; r <= ROUNDS; r++)); do
    run_one gridmint "$r" "$GRIDMINT_TASKS" "$LATENCY_SAMPLES" 0
    run_one ray "$r" "$RAY_TASKS" "$LATENCY_SAMPLES" 500
    run_one dask "$r" "$DASK_TASKS" "$LATENCY_SAMPLES" 200
done
log "all rounds done in $((SECONDS - START_S)) s"

# ---------------------------------------------------------------- 4. summary
"$PYTHON" - "$WORK" "$ROUNDS" "$JSON" "$MODE" "$CORES" "$VERSIONS_JSON" "$GRIDMINT_VERSION" "$GIT_REV" "$BUILT" \
    "$GRIDMINT_TASKS" "$RAY_TASKS" "$DASK_TASKS" "$LATENCY_SAMPLES" <<'EOF'
import json, os, statistics, sys

(work, rounds, as_json, mode, cores, versions, gm_version, git_rev, built,
 gm_tasks, ray_tasks, dask_tasks, lat_samples) = sys.argv[1:]
rounds, cores = int(rounds), int(cores)
versions = json.loads(versions)
versions["gridmint"] = f"{gm_version} (git {git_rev}, built {built})"
systems = ("gridmint", "ray", "dask")

per = {s: {"tasks_per_s": [], "latency_p50_ms": []} for s in systems}
gm_lat_all = []
for r in range(1, rounds + 1):
    for s in systems:
        d = json.load(open(os.path.join(work, f"{s}-{r}.json")))
        if s == "gridmint":
            e = d["end_to_end"]
            per[s]["tasks_per_s"].append(float(e["tasks_per_second"]))
            per[s]["latency_p50_ms"].append(float(e["latency_p50_ms"]))
            gm_lat_all += [float(x) for x in e.get("latency_ms", [])]
        else:
            per[s]["tasks_per_s"].append(float(d["tasks_per_s"]))
            per[s]["latency_p50_ms"].append(float(d["latency_p50_ms"]))

med = {s: {k: statistics.median(v) for k, v in per[s].items()} for s in systems}
g, ry, dk = med["gridmint"], med["ray"], med["dask"]
ratio_ray = g["tasks_per_s"] / ry["tasks_per_s"]
ratio_dask = g["tasks_per_s"] / dk["tasks_per_s"]
lat_ratio = g["latency_p50_ms"] / ry["latency_p50_ms"]

goals = [
    ("gridmint tasks/s >= 2x Ray", "gridmint_vs_ray_tasks_per_s", ratio_ray, 2.0, ">="),
    ("gridmint tasks/s >= 10x Dask", "gridmint_vs_dask_tasks_per_s", ratio_dask, 10.0, ">="),
    ("gridmint tasks/s >= 20,000", "gridmint_tasks_per_s", g["tasks_per_s"], 20000.0, ">="),
    ("gridmint latency p50 <= 5 ms", "latency_p50_ms", g["latency_p50_ms"], 5.0, "<="),
    ("gridmint latency p50 <= Ray sync round trip (aim)", "gridmint_vs_ray_latency", lat_ratio, 1.0, "<="),
]
def met(v, t, op):
    return v >= t if op == ">=" else v <= t

if as_json == "1":
    out = {
        "mode": mode,
        "cores": cores,
        "rounds": rounds,
        "gridmint_tasks_per_s": g["tasks_per_s"],
        "ray_tasks_per_s": ry["tasks_per_s"],
        "dask_tasks_per_s": dk["tasks_per_s"],
        "latency_p50_ms": g["latency_p50_ms"],
        "ray_latency_p50_ms": ry["latency_p50_ms"],
        "dask_latency_p50_ms": dk["latency_p50_ms"],
        "gridmint_vs_ray_tasks_per_s": ratio_ray,
        "gridmint_vs_dask_tasks_per_s": ratio_dask,
        "gridmint_vs_ray_latency": lat_ratio,
        "gridmint_latency_p50_ms_pooled": statistics.median(gm_lat_all) if gm_lat_all else None,
        "tasks": {"gridmint": int(gm_tasks), "ray": int(ray_tasks), "dask": int(dask_tasks)},
        "latency_samples_per_round": {"gridmint": len(gm_lat_all) // rounds if gm_lat_all else None,
                                      "ray": int(lat_samples), "dask": int(lat_samples)},
        "per_round": per,
        "versions": versions,
        "goals": [{"goal": name, "metric": key, "value": v, "target": t, "op": op, "met": met(v, t, op)}
                  for name, key, v, t, op in goals],
    }
    print(json.dumps(out, indent=2))
    sys.exit(0)

print(f"gridmint vs Ray vs Dask — no-op tasks, {mode} mode, {cores} cores, "
      f"median of {rounds} interleaved round(s) after a warm-up")
print(f"versions: gridmint {versions['gridmint']}, ray {versions['ray']}, "
      f"dask {versions['dask']} / distributed {versions['distributed']}")
print(f"tasks per round: gridmint {int(gm_tasks)}, ray {int(ray_tasks)}, dask {int(dask_tasks)}")
print()
print(f"{'system':<10} {'tasks/s':>12} {'latency p50 ms':>15}")
for s in systems:
    print(f"{s:<10} {med[s]['tasks_per_s']:>12,.0f} {med[s]['latency_p50_ms']:>15.2f}")
print()
print(f"{'ratio':<34} {'value':>9}   goal")
print(f"{'gridmint/ray tasks/s':<34} {ratio_ray:>8.2f}x   >= 2x")
print(f"{'gridmint/dask tasks/s':<34} {ratio_dask:>8.2f}x   >= 10x")
print(f"{'gridmint/ray latency p50':<34} {lat_ratio:>8.2f}x   <= 1x (aim)")
print()
print("goals:")
for name, key, v, t, op in goals:
    print(f"  [{'met' if met(v, t, op) else 'MISSED':>6}] {name}")
print()
print("every round:")
print(f"{'round':<6}" + "".join(f" {s + ' t/s':>13} {s + ' ms':>12}" for s in systems))
for i in range(rounds):
    print(f"{i + 1:<6}" + "".join(
        f" {per[s]['tasks_per_s'][i]:>13,.0f} {per[s]['latency_p50_ms'][i]:>12.2f}" for s in systems))
EOF
