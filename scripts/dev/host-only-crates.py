#!/usr/bin/env python3
"""Prints the crates of this workspace's dependency graph that are only ever
compiled for the host: proc macros and what only proc macros and build
scripts depend on. Cargo.toml's `[profile.dev.package]` keeps them at
opt-level 0 (they run only while compiling); run this after changing
dependencies and update that list.

Usage: python3 scripts/dev/host-only-crates.py   (runs `cargo metadata`)
"""
import json
import subprocess
import sys


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])

    def proc_macro(pid: str) -> bool:
        return any("proc-macro" in t["kind"] for t in packages[pid]["targets"])

    seen = {False: set(), True: set()}  # on the host?
    stack = [(m, False) for m in members]
    while stack:
        pid, host = stack.pop()
        if pid in seen[host]:
            continue
        seen[host].add(pid)
        for dep in nodes[pid]["deps"]:
            for k in dep["dep_kinds"]:
                if k["kind"] == "dev" and pid not in members:
                    continue
                child = dep["pkg"]
                stack.append((child, host or k["kind"] == "build" or proc_macro(child)))
    names = lambda ids: {packages[i]["name"] for i in ids}
    for name in sorted(names(seen[True]) - names(seen[False])):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
