#!/usr/bin/env python3
"""Writes the inputs of examples/gpu-mandelbrot.toml: one `view-N.bin` per tile, the `View` that
`guests/gpu/mandelbrot-tiles.wgsl` reads (the whole image's top-left coordinate and step as f32,
then the tile's x0, y0, w, h and the iteration limit as u32; little-endian).

    python3 examples/data/gpu/make-render.py   # rewrites them beside this script
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).parent
WIDTH = HEIGHT = 512
TILE = 256
LEFT, TOP, STEP = -2.0, 1.25, 2.5 / WIDTH
MAX_ITER = 256

task = 0
for y0 in range(0, HEIGHT, TILE):
    for x0 in range(0, WIDTH, TILE):
        view = struct.pack("<3f5I", LEFT, TOP, STEP, x0, y0, TILE, TILE, MAX_ITER)
        (HERE / f"view-{task}.bin").write_bytes(view)
        task += 1
