#!/usr/bin/env python3
"""Fails when the library's top-level modules import each other in a circle.

A top-level module is a file `src/NAME.rs` or a folder `src/NAME/`. Module A
imports B when a file of A names `crate::B` (in a `use` or a path). Imports
must point one way only, so that the modules form layers; this prints the
layers from the bottom up, or every circle found."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
REFERENCE = re.compile(r"(?<!\$)\bcrate::([A-Za-z_][A-Za-z0-9_]*)")
# `use crate::{a, b::c}`: every name at the top of the braces.
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\};", re.S)


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def top_names(group: str) -> set:
    names, depth, current = set(), 0, ""
    for char in group:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            names.add(current.strip().split("::")[0])
            current = ""
            continue
        if depth == 0 or char not in "{}":
            current += char if depth == 0 else ""
    names.add(current.strip().split("::")[0])
    return {name for name in names if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)}


def reexports() -> dict:
    """Names lib.rs re-exports, by the module they come from: `crate::Name`
    imports that module as surely as `crate::module::Name` does."""
    text = strip_comments((ROOT / "lib.rs").read_text())
    found = {}
    for module, names in re.findall(r"pub use ([a-z_][a-z0-9_]*)::\{([^;]*)\};", text, re.S):
        for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
            found.setdefault(name, module)
    for module, name in re.findall(r"pub use ([a-z_][a-z0-9_]*)::([A-Za-z_][A-Za-z0-9_]*);", text):
        found.setdefault(name, module)
    return found


def modules() -> dict:
    found = {}
    for path in ROOT.iterdir():
        if path.name in ("lib.rs", "main.rs", "bin"):
            continue
        if path.suffix == ".rs":
            found[path.stem] = [path]
        elif path.is_dir():
            found[path.name] = sorted(path.rglob("*.rs"))
    return found


def graph(found: dict) -> dict:
    names = reexports()
    edges = {name: set() for name in found}
    for name, files in found.items():
        for path in files:
            text = strip_comments(path.read_text())
            targets = set(REFERENCE.findall(text))
            for group in GROUP.findall(text):
                targets |= top_names(group)
            targets = {names.get(t, t) for t in targets}
            edges[name] |= {t for t in targets if t in found and t != name}
    return edges


def circles(edges: dict) -> list:
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def layers(edges: dict) -> list:
    placed, result = set(), []
    while len(placed) < len(edges):
        layer = sorted(n for n in edges if n not in placed and edges[n] <= placed)
        if not layer:
            break
        result.append(layer)
        placed |= set(layer)
    return result


def main() -> int:
    edges = graph(modules())
    found = circles(edges)
    if found:
        for component in found:
            print("circle: " + ", ".join(component))
            for name in component:
                inside = sorted(edges[name] & set(component))
                print(f"  {name} imports {', '.join(inside)}")
        print(f"{len(found)} circle(s) between top-level modules of src/")
        return 1
    for number, layer in enumerate(layers(edges), 1):
        print(f"layer {number}: {', '.join(layer)}")
    print("no circles between top-level modules of src/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
