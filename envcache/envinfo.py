"""Prints, as JSON, what an environment gives the tasks that use it.

Run by the environment's own interpreter after a build, with the requested distribution names
as arguments. For those and everything they depend on (from the installed metadata, as import
finds them: the environment's own packages first, then the interpreter's), it lists the
distributions and the top-level modules they install, which is how a distribution name
("python-dateutil") maps to what code imports ("dateutil").
"""

import importlib.metadata as metadata
import json
import platform
import re
import sys


def norm(name):
    return re.sub(r"[-_.]+", "-", name or "").lower()


def top_level(dist):
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip().replace("/", ".").split(".")[0] for line in text.splitlines() if line.strip()}
    names = set()
    for f in dist.files or []:
        first = f.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info", ".data", ".pth")):
            continue
        if len(f.parts) == 1:
            if first.endswith(".py"):
                names.add(first[:-3])
            elif ".so" in first or first.endswith(".pyd"):
                names.add(first.split(".")[0])
            continue
        names.add(first)
    return names


def requirement_name(req):
    name, _, marker = req.partition(";")
    if "extra" in marker:
        return None  # only with an extra nobody asked for
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", name)
    return norm(m.group(1)) if m else None


def main():
    wanted = [norm(a) for a in sys.argv[1:]]
    by_name = {}
    for dist in metadata.distributions():
        by_name.setdefault(norm(dist.metadata["Name"]), dist)
    seen, dists, imports, requested, missing = set(), [], set(), set(), []
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = by_name.get(name)
        if dist is None:
            if name in wanted:
                missing.append(name)
            continue
        dists.append({"name": name, "version": dist.version})
        names = top_level(dist)
        imports |= names
        if name in wanted:
            requested |= names
        for req in dist.requires or []:
            dep = requirement_name(req)
            if dep:
                stack.append(dep)
    print(json.dumps({"python": platform.python_version(), "distributions": sorted(dists, key=lambda d: d["name"]),
                      "imports": sorted(imports), "requested": sorted(requested), "missing": sorted(missing)}))


main()
