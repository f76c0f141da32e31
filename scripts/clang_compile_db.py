"""The build's gcc compile commands (build/compile_commands.json) in a form clang accepts: gcc's
precompiled header is dropped (-include .../cmake_pch.hxx, -fpch-preprocess, -Winvalid-pch).
Used by scripts/clang_tidy.sh and scripts/thread_safety_check.sh.

As a program: clang_compile_db.py DB REGEX OUT writes the entries whose file matches REGEX (build
outputs excluded) to OUT with cleaned "arguments"."""
import json
import re
import shlex
import sys


def arguments(entry):
    """The entry's argument list, as gcc ran it."""
    return list(entry.get("arguments") or shlex.split(entry["command"]))


def without_pch(args):
    """`args` without gcc's precompiled-header options."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-include":
            skip = True  # CMake's only forced include is the precompiled header
            continue
        if a in ("-fpch-preprocess", "-Winvalid-pch") or "cmake_pch" in a:
            continue
        out.append(a)
    return out


def main(db_path, regex, out_path):
    pattern = re.compile(regex)
    out = []
    for entry in json.load(open(db_path)):
        if not pattern.search(entry["file"]) or "/build/" in entry["file"]:
            continue
        entry = dict(entry)
        entry["arguments"] = without_pch(arguments(entry))
        entry.pop("command", None)
        out.append(entry)
    json.dump(out, open(out_path, "w"), indent=1)
    print(f"{len(out)} translation units", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
