#!/usr/bin/env python3
"""Writes the inputs of examples/gpu-hash.toml: one `search-N.bin` per task (the parameters
`guests/gpu/sha256-search.wgsl` reads as its `Search` struct: a 48-byte header as 12 big-endian
words, then the first nonce, nonces per invocation and the bound, little-endian u32s as WGSL
storage buffers hold them) and `mins.bin` (the two running minima, starting at 0xffffffff).

    python3 examples/data/gpu/make-search.py   # rewrites them beside this script
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).parent
HEADER = b"Gridmint GPU hash search: an example block head."
assert len(HEADER) == 48
TASKS = 4
INVOCATIONS = 16 * 64  # workgroups x workgroup size
PER_INVOCATION = 64
BOUND = 0x00100000  # a hash whose first word is below this: about one in 4096

header_words = struct.unpack(">12I", HEADER)
for task in range(TASKS):
    start = task * INVOCATIONS * PER_INVOCATION
    data = struct.pack("<12I", *header_words) + struct.pack("<3I", start, PER_INVOCATION, BOUND)
    (HERE / f"search-{task}.bin").write_bytes(data)
(HERE / "mins.bin").write_bytes(b"\xff" * 8)
