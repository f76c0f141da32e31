#!/usr/bin/env python3
"""Training curves of the toy model's pretraining, from the logs scripts/pretrain_toy.sh keeps.

usage: toy_training_curve.py VAE_LOG T2I_LOG OUT_CSV [--window N]

Writes OUT_CSV with columns stage,step,value: the VAE's L1 reconstruction error and the UNet's
diffusion loss, each averaged over windows of N steps (default 50). A resumed run repeats no
step: the last value logged for a step wins.
"""
import argparse
import re
import sys

VAE = re.compile(r"^\[VAE\] step (\d+)/\d+ l1 ([0-9.eE+-]+)")
T2I = re.compile(r"^\[TRAINING\] step (\d+)/\d+ loss ([0-9.eE+-]+|nan|inf)")


def read(path, pattern):
    values = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pattern.match(line)
                if m:
                    values[int(m.group(1))] = float(m.group(2))
    except FileNotFoundError:
        pass
    return values


def windows(values, n):
    rows, batch = [], []
    for step in sorted(values):
        batch.append(values[step])
        if step % n == 0:
            rows.append((step, sum(batch) / len(batch)))
            batch = []
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vae_log")
    ap.add_argument("t2i_log")
    ap.add_argument("out_csv")
    ap.add_argument("--window", type=int, default=50)
    a = ap.parse_args()
    with open(a.out_csv, "w", encoding="utf-8") as out:
        out.write("stage,step,value\n")
        for stage, path, pattern in (("vae_l1", a.vae_log, VAE), ("unet_loss", a.t2i_log, T2I)):
            for step, value in windows(read(path, pattern), a.window):
                out.write(f"{stage},{step},{value:.6f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
