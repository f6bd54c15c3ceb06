#!/usr/bin/env python3
"""Ray no-op baseline for bench/compare.sh.

Starts a local Ray cluster (not timed), then measures
  * throughput: N `noop.remote()` submitted asynchronously, then one
    `ray.get` on all of them -> tasks/s;
  * latency: sequential `ray.get(noop.remote())` round trips -> p50 in ms.

Prints exactly one JSON line to stdout:
  {"tasks_per_s": ..., "latency_p50_ms": ..., "version": ..., ...}
Everything else (Ray's own chatter included) goes to stderr.
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time


def log(msg):
    print(f"ray: {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=20000, help="tasks in the throughput batch")
    ap.add_argument("--latency-samples", type=int, default=200, help="sequential round trips")
    ap.add_argument("--warmup-tasks", type=int, default=500, help="untimed tasks before measuring")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="num_cpus for ray.init")
    args = ap.parse_args()

    # Keep stdout clean: anything Ray prints on the driver goes to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray warns when the runtime env is uv-managed etc.; nothing relevant here.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

    import ray

    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    log(f"ray {ray.__version__} started with num_cpus={args.cpus} in {time.perf_counter() - t0:.1f} s (not timed)")

    @ray.remote
    def noop(*_):
        return None

    try:
        # Warm-up: start worker processes, import the function everywhere.
        ray.get([noop.remote() for _ in range(max(args.warmup_tasks, 1))])
        for _ in range(20):
            ray.get(noop.remote())

        # Throughput.
        t = time.perf_counter()
        refs = [noop.remote() for _ in range(args.tasks)]
        ray.get(refs)
        secs = time.perf_counter() - t
        tps = args.tasks / secs
        log(f"{args.tasks} tasks in {secs:.2f} s ({tps:.0f} tasks/s)")

        # Latency: sequential synchronous round trips.
        samples = []
        for _ in range(args.latency_samples):
            t = time.perf_counter()
            ray.get(noop.remote())
            samples.append((time.perf_counter() - t) * 1000.0)
        p50 = statistics.median(samples)
        log(f"latency p50 {p50:.3f} ms over {len(samples)} sequential round trips")
    finally:
        ray.shutdown()

    out = {
        "system": "ray",
        "version": ray.__version__,
        "tasks": args.tasks,
        "seconds": secs,
        "tasks_per_s": tps,
        "latency_p50_ms": p50,
        "latency_samples": len(samples),
        "cpus": args.cpus,
    }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
