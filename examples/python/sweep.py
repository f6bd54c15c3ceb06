"""A parameter sweep over the logistic map x -> r*x*(1-x): one task per growth rate r.

Each task iterates the map, estimates its Lyapunov exponent (negative: a stable cycle; positive:
chaos), finds the cycle's period, keeps the orbit as CSV in the scratch directory (/tmp) and
archives it with zipfile, and prints one JSON line. Run with CPython for WASI by
examples/python-sweep.toml; the same script gives the same lines under any CPython 3.11.
"""

import csv
import hashlib
import io
import json
import math
import os
import sys
import zipfile

STEPS = 20_000
WARMUP = 1_000
MAX_PERIOD = 64


def study(r):
    x = 0.5
    for _ in range(WARMUP):
        x = r * x * (1 - x)
    total = 0.0
    orbit = []
    for _ in range(STEPS):
        x = r * x * (1 - x)
        total += math.log(abs(r * (1 - 2 * x)) or 1e-300)
        orbit.append(x)
    tail = orbit[-4 * MAX_PERIOD:]
    period = next(
        (p for p in range(1, MAX_PERIOD + 1)
         if all(abs(tail[i] - tail[i + p]) < 1e-9 for i in range(len(tail) - p))),
        None,
    )
    return total / STEPS, period, orbit


def main():
    index = int(sys.argv[1])
    r = 2.8 + index * 0.15
    lyapunov, period, orbit = study(r)
    scratch = os.environ.get("SCRATCH", "/tmp")
    path = os.path.join(scratch, f"orbit-{index}.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        for step, x in enumerate(orbit[-256:]):
            writer.writerow([step, repr(x)])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, arcname=os.path.basename(path))
    print(json.dumps({
        "r": round(r, 4),
        "lyapunov": round(lyapunov, 6),
        "period": period,
        "regime": "chaos" if lyapunov > 0 else "cycle",
        "orbit_zip_sha256": hashlib.sha256(archive.getvalue()).hexdigest()[:16],
    }, sort_keys=True))


main()
