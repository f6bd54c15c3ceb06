#!/usr/bin/env python3
"""Writes the inputs of examples/gpu-mlp.toml for `guests/gpu/mlp.wgsl` (784-64-10 perceptron):
`mlp-weights.bin` (f32, little-endian: w1[64][784], b1[64], w2[10][64], b2[10]) and
`digits.bin` (f32 [10][784]: the digits 0 to 9 of a 5x7 font drawn 4x larger in a 28x28 image,
each with about 3% of its pixels flipped). The weights are a template-matching network: hidden
unit d < 10 scores how well an image matches digit d (+0.1 per pixel on in both, -0.1 per pixel
on only in the image), the other 54 are noise held off by their bias, and output c reads unit c.
So the expected classes of `digits.bin` are 0, 1, ..., 9.

    python3 examples/data/gpu/make-mlp.py   # rewrites them beside this script
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).parent
FONT = [
    ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
]


def glyph(d):
    image = [0.0] * 784
    for row, bits in enumerate(FONT[d]):
        for col, bit in enumerate(bits):
            if bit == "1":
                for dy in range(4):
                    for dx in range(4):
                        image[(row * 4 + dy) * 28 + 4 + col * 4 + dx] = 1.0
    return image


def noise(i):
    """A deterministic value in [-1, 1) from i."""
    x = (i * 2654435761) & 0xFFFFFFFF
    x = ((x << 13) | (x >> 19)) & 0xFFFFFFFF
    x ^= 0x5BD1E995
    return (x >> 8) / float(1 << 23) - 1.0


weights = []
for j in range(64):
    template = glyph(j) if j < 10 else None
    for i in range(784):
        weights.append(0.2 * template[i] - 0.1 if template else 0.01 * noise(j * 784 + i))
weights += [0.0 if j < 10 else -1.0 for j in range(64)]
for c in range(10):
    weights += [1.0 if h == c else 0.001 * noise(100_000 + c * 64 + h) for h in range(64)]
weights += [0.0] * 10
(HERE / "mlp-weights.bin").write_bytes(struct.pack(f"<{len(weights)}f", *weights))

images = []
for d in range(10):
    image = glyph(d)
    for i in range(784):
        if noise(7 * i + d * 1000) > 0.94:
            image[i] = 1.0 - image[i]
    images += image
(HERE / "digits.bin").write_bytes(struct.pack(f"<{len(images)}f", *images))
