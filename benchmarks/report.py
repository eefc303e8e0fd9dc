"""Where a benchmark's results go: one JSON file, written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, result: dict) -> None:
    """``result`` as indented JSON at ``path`` (folders made), through a temporary file, so a
    run cut short leaves the previous results in place; says where it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
