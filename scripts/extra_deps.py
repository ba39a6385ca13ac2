"""Print the requirements of llmloop's extras, one per line, resolving ``llmloop[...]``.

The Dockerfile installs the dependencies in a layer of their own before the code
is copied (so a code change rebuilds only the last layer), without a package
skeleton that would have to list every package:

    python scripts/extra_deps.py processor,alerting > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The base dependencies plus every requirement of ``extras``, self-references expanded."""
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; known: {', '.join(sorted(optional))}")
        seen.add(extra)
        for req in optional[extra]:
            own = re.fullmatch(r"\s*llmloop\[([^\]]+)\]\s*", req)
            if own:
                todo.extend(e.strip() for e in own.group(1).split(","))
            elif req not in out:
                out.append(req)
    return out


def main() -> None:
    extras = [e for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e]
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    print("\n".join(requirements(pyproject["project"], extras)))


if __name__ == "__main__":
    main()
