#!/usr/bin/env python3
"""Writes a small instance set of a synthetic subject: a yellow 'sks' toy (a rounded body with two
eyes and a red band) on varied backgrounds, at varied positions and sizes. Standard library only.

usage: make_demo_images.py OUT_DIR [--count N] [--size PX]
"""
import argparse
import math
import os
import random
import struct
import zlib


def write_png(path, width, height, pixels):
    """pixels: list of rows, each a bytes object of width*3 RGB values."""
    raw = b"".join(b"\x00" + row for row in pixels)

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


def render(size, rng):
    bg_top = [rng.randint(40, 200) for _ in range(3)]
    bg_bottom = [rng.randint(40, 200) for _ in range(3)]
    cx = size * rng.uniform(0.35, 0.65)
    cy = size * rng.uniform(0.4, 0.6)
    r = size * rng.uniform(0.22, 0.32)
    rows = []
    for y in range(size):
        t = y / max(1, size - 1)
        bg = [int(a * (1 - t) + b * t) for a, b in zip(bg_top, bg_bottom)]
        row = bytearray()
        for x in range(size):
            color = bg
            dx, dy = (x - cx) / r, (y - cy) / (r * 1.15)
            if dx * dx + dy * dy <= 1.0:
                shade = 0.75 + 0.25 * max(0.0, -dx * 0.5 - dy * 0.5)
                color = [int(240 * shade), int(200 * shade), int(40 * shade)]
                if abs(dy - 0.35) < 0.12:
                    color = [200, 30, 40]
                for ex in (-0.38, 0.38):
                    if (dx - ex) ** 2 + (dy + 0.3) ** 2 < 0.03:
                        color = [20, 20, 20]
            row += bytes(max(0, min(255, c)) for c in color)
        rows.append(bytes(row))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(1234)
    for i in range(args.count):
        path = os.path.join(args.out_dir, f"sks_toy_{i:02d}.png")
        write_png(path, args.size, args.size, render(args.size, rng))
        print(path)


if __name__ == "__main__":
    main()
