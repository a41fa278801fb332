#!/usr/bin/env python3
"""Bytes per idle session by component, from a massif profile of the server.

    summary.py MASSIF_OUT SESSIONS

Takes massif's peak snapshot (the sessions held) and groups its live heap by the first
frame of each allocation's stack that names a component (actix-http, actix, tokio, Parlor,
redb...) rather than the standard library, then divides by SESSIONS. Allocations that do
not grow with the sessions (caches, compiled route patterns) show up as small per-session
shares; the total line compares the peak with the last detailed snapshot taken before the
sessions connected.
"""
import collections
import re
import sys

NODE = re.compile(r"^( *)n(\d+): (\d+) (.*)$")
FRAME = re.compile(r"0x[0-9A-F]+: (.*) \((.*?)\)$")


def snapshots(path):
    lines = open(path).read().split("\n")
    snaps, cur, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("snapshot="):
            cur = {"n": int(line.split("=")[1])}
            snaps.append(cur)
        elif line.startswith("mem_heap_B="):
            cur["heap"] = int(line.split("=")[1])
        elif line.startswith("heap_tree=") and line.split("=")[1] in ("detailed", "peak"):
            cur["kind"] = line.split("=")[1]
            leaves, stack, i = [], [], i + 1
            while i < len(lines) and (m := NODE.match(lines[i])):
                depth, kids, size, desc = len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
                stack = stack[:depth] + [desc]
                if kids == 0:
                    leaves.append((size, stack[1:]))
                i += 1
            cur["leaves"] = leaves
            continue
        i += 1
    return snaps


def component(stack):
    """The first named function of the stack (a path with `::`, outside the allocator)."""
    for desc in stack:
        m = FRAME.search(desc)
        if not m:
            continue
        function, source = m.group(1), m.group(2)
        name = function
        while True:
            stripped = re.sub(r"<[^<>]*>", "", name)
            if stripped == name:
                break
            name = stripped
        if "::" not in name or re.match(r"(alloc|core|std|hashbrown|bytes|__rustc)::", name):
            continue
        return f"{name[:90]} ({source.split('/')[-1]})"
    return "other (below massif's threshold or unnamed)"


def main():
    path, sessions = sys.argv[1], int(sys.argv[2])
    detailed = [s for s in snapshots(path) if "leaves" in s]
    peak = next(s for s in detailed if s["kind"] == "peak")
    before = [s for s in detailed if s["n"] < peak["n"] and s["heap"] < peak["heap"] * 0.5]
    by = collections.Counter()
    for size, stack in peak["leaves"]:
        by[component(stack)] += size
    print(f"heap at the peak: {peak['heap']} bytes with {sessions} sessions")
    if before:
        grown = peak["heap"] - before[-1]["heap"]
        print(f"grown since before the sessions connected: {grown / sessions:.0f} bytes per session")
    print(f"{'bytes/session':>13}  allocated by")
    for name, size in by.most_common(15):
        print(f"{size / sessions:13.0f}  {name}")


if __name__ == "__main__":
    main()
