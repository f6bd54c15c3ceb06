#!/usr/bin/env python3
"""Dask distributed no-op baseline for bench/compare.sh.

Starts a LocalCluster of worker processes (not timed), then measures
  * throughput: `client.map(noop, range(N), pure=False)` then
    `client.gather` -> tasks/s;
  * latency: sequential `client.submit(noop, i, pure=False).result()`
    round trips -> p50 in ms.

Prints exactly one JSON line to stdout:
  {"tasks_per_s": ..., "latency_p50_ms": ..., "version": ..., ...}
Everything else goes to stderr.
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time


def log(msg):
    print(f"dask: {msg}", file=sys.stderr, flush=True)


def noop(*_):
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=5000, help="tasks in the throughput batch")
    ap.add_argument("--latency-samples", type=int, default=200, help="sequential round trips")
    ap.add_argument("--warmup-tasks", type=int, default=200, help="untimed tasks before measuring")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (1 thread each)")
    args = ap.parse_args()

    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    # No dashboard (bokeh may be missing) and quiet logs.
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")

    import dask
    import distributed
    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    client.wait_for_workers(args.workers)
    log(
        f"dask {dask.__version__} / distributed {distributed.__version__}: "
        f"{args.workers} worker processes x 1 thread started in {time.perf_counter() - t0:.1f} s (not timed)"
    )

    try:
        # Warm-up.
        client.gather(client.map(noop, range(max(args.warmup_tasks, 1)), pure=False))
        for i in range(10):
            client.submit(noop, i, pure=False).result()

        # Throughput.
        t = time.perf_counter()
        futs = client.map(noop, range(args.tasks), pure=False)
        client.gather(futs)
        secs = time.perf_counter() - t
        tps = args.tasks / secs
        log(f"{args.tasks} tasks in {secs:.2f} s ({tps:.0f} tasks/s)")
        del futs

        # Latency: sequential synchronous round trips.
        samples = []
        for i in range(args.latency_samples):
            t = time.perf_counter()
            client.submit(noop, i, pure=False).result()
            samples.append((time.perf_counter() - t) * 1000.0)
        p50 = statistics.median(samples)
        log(f"latency p50 {p50:.3f} ms over {len(samples)} sequential round trips")
    finally:
        client.close()
        cluster.close()

    out = {
        "system": "dask",
        "version": distributed.__version__,
        "dask_version": dask.__version__,
        "tasks": args.tasks,
        "seconds": secs,
        "tasks_per_s": tps,
        "latency_p50_ms": p50,
        "latency_samples": len(samples),
        "workers": args.workers,
    }
    print(json.dumps(out), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
