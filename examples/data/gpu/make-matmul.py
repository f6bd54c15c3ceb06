#!/usr/bin/env python3
"""Writes the inputs of examples/gpu-matmul.toml: `dims.bin` (n = 64 as the shader's uniform,
padded to 16 bytes), `a.bin` and one `b-N.bin` per task, each a 64 x 64 row-major matrix of f32
(little-endian). The entries are small integers, so every product is exact in f32 and the
expected output is the integer product (the job is still one-class: the shader computes with
floats).

    python3 examples/data/gpu/make-matmul.py   # rewrites them beside this script
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).parent
N = 64
TASKS = 4


def matrix(seed):
    return [float((i * 7 + j * 3 + seed * 5) % 17 - 8) for i in range(N) for j in range(N)]


def write(name, values):
    (HERE / name).write_bytes(struct.pack(f"<{len(values)}f", *values))


(HERE / "dims.bin").write_bytes(struct.pack("<4I", N, 0, 0, 0))
write("a.bin", matrix(0))
for task in range(TASKS):
    write(f"b-{task}.bin", matrix(task + 1))
