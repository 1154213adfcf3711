"""Write every event type's JSON Schema to contracts/schemas/ (`python -m contracts.export`).

`--check` exits 1 if the committed files differ from the code (CI keeps them equal).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts import registry

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def rendered() -> dict[str, str]:
    return {f"{t.type}.json": json.dumps(t.json_schema(), indent=2, sort_keys=True) + "\n" for t in registry.all()}


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
        if on_disk != files:
            print("contracts/schemas is out of date: run `python -m contracts.export`", file=sys.stderr)
            return 1
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for stale in set(p.name for p in SCHEMA_DIR.glob("*.json")) - set(files):
        (SCHEMA_DIR / stale).unlink()
    for name, text in files.items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(files)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
