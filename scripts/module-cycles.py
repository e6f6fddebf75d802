#!/usr/bin/env python3
"""Import cycles between Warren's top-level modules (src/<module>/ and src/<module>.rs).

Reads every `crate::<module>` path in the library's sources (use lines, use groups and inline
paths; unit tests count too), builds the graph of which top-level module uses which, and finds
the edges that lie on a cycle (inside a strongly connected component). Exits 1 if such an edge
is not in KNOWN below: a new cycle fails the test suite (scripts/test.sh). KNOWN holds the edges
on cycles when this check was added (issue 16); the script also fails when one of them no longer
lies on a cycle, so that the list only shrinks.

Usage: python3 scripts/module-cycles.py [--graph]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src"

# Edges on a cycle, "from -> to": none since issue 16 broke the last one.
KNOWN: set[str] = set()

MODULES = {p.name.removesuffix(".rs") for p in ROOT.iterdir() if p.is_dir() or p.suffix == ".rs"} - {"bin", "main", "lib"}
PATH = re.compile(r"\bcrate::(\w+)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def module_of(path: pathlib.Path) -> str | None:
    rel = path.relative_to(ROOT)
    if rel.parts[0] in ("bin", "main.rs", "lib.rs"):
        return None
    return rel.parts[0].removesuffix(".rs")


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in sorted(ROOT.rglob("*.rs")):
        me = module_of(f)
        if me is None:
            continue
        text = f.read_text()
        used = set(PATH.findall(text))
        for group in USE_GROUP.findall(text):
            # Names not preceded by `::`: the first segment of each path in the group.
            used.update(re.findall(r"(?<![:\w])(\w+)", group))
        graph.setdefault(me, set()).update(u for u in used if u != me and u in MODULES)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    graph = edges()
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '(nothing)'}")
    on_cycle = set()
    for comp in cycles(graph):
        print(f"cycle among: {', '.join(comp)}")
        on_cycle |= {f"{a} -> {b}" for a in comp for b in graph.get(a, ()) if b in comp}
    for e in sorted(on_cycle - KNOWN):
        print(f"NEW edge on an import cycle: {e}", file=sys.stderr)
    for e in sorted(KNOWN - on_cycle):
        print(f"{e} is no longer on a cycle: remove it from KNOWN in {__file__}", file=sys.stderr)
    return 1 if on_cycle != KNOWN else 0


if __name__ == "__main__":
    sys.exit(main())
