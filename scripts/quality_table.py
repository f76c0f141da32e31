#!/usr/bin/env python3
"""Markdown tables of scripts/quality_toy.sh's results (the JSON reports of `dbtool eval`).

usage: quality_table.py WORK_DIR
"""
import json
import os
import re
import sys


def group(report, name):
    for g in report["groups"]:
        if g["name"] == name:
            return g
    return None


def floor(report):
    """' (floor F)' after a drift when the report has its noise floor (newer dbtool eval)."""
    f = report.get("prior_drift_floor_kl")
    return "" if f is None else f" (floor {f:.3f})"


def main():
    w = sys.argv[1]
    base = json.load(open(os.path.join(w, "base.json")))
    a = group(base, "attributes")
    print("Base model `toy` (no fine-tuning):\n")
    print("| prompt group | n | prompt fidelity | all attributes | subject |")
    print("| --- | --- | --- | --- | --- |")
    for g in base["groups"]:
        print(f"| {g['name']} | {g['count']} | {g['prompt_fidelity']:.3f} | "
              f"{g['all_present']:.3f} | {g['subject_rate']:.3f} |")
    if a and "asked_present" in a:
        print()
        print("Base model, the attributes group per attribute (present / asked):\n")
        print("| shape | colour | pattern | background |")
        print("| --- | --- | --- | --- |")
        cells = []
        for k in ("shape", "colour", "pattern", "background"):
            h = a["asked_present"][k]
            rate = h["present"] / h["asked"] if h["asked"] else float("nan")
            cells.append(f"{h['present']}/{h['asked']} = {rate:.3f}")
        print("| " + " | ".join(cells) + " |")
    print()
    print("DreamBooth on the held-out subject (5 instance images, \"a photo of sks toy\"):\n")
    print("| prior | lr | steps | train s | subject | subject inst-sim | beach: subject+scene "
          "| snow: subject+scene | class drift KL | subject leak | class diversity "
          "| attribute fidelity |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    runs = []
    for f in os.listdir(w):
        m = re.match(r"prior(\d)-lr([0-9.e-]+)-steps(\d+)\.json$", f)
        if m:
            runs.append((int(m.group(1)), float(m.group(2)), int(m.group(3)), f))
    for prior, lr, steps, f in sorted(runs, key=lambda r: (-r[0], r[1], r[2])):
        r = json.load(open(os.path.join(w, f)))
        t = {}
        tf = os.path.join(w, f.replace(".json", ".time.json"))
        if os.path.exists(tf):
            t = json.load(open(tf))
        s, b, n, c = (group(r, k) for k in ("subject", "beach", "snow", "class"))
        at = group(r, "attributes")
        print(f"| {'yes' if prior else 'no'} | {lr:g} | {steps} | {t.get('train_seconds', '')} | "
              f"{s['subject_rate']:.3f} | {s['instance_similarity']:.3f} | "
              f"{b['all_present']:.3f} | {n['all_present']:.3f} | "
              f"{r.get('prior_drift_kl', float('nan')):.3f}{floor(r)} | "
              f"{r.get('subject_leak', 0):.3f} | "
              f"{c['diversity']:.3f} | {at['prompt_fidelity'] if at else float('nan'):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
