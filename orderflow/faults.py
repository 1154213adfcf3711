"""Named crash points for fault-injection tests.

`ORDERFLOW_CRASH_AT=<point>[,<point>...]` makes the process die (like SIGKILL: no cleanup, no
atexit) the first time it reaches that point. Production never sets it; the check is one dict
lookup on an environment variable read once.
"""

from __future__ import annotations

import os
import sys

_POINTS = frozenset(p.strip() for p in os.environ.get("ORDERFLOW_CRASH_AT", "").split(",") if p.strip())


def crash_point(name: str) -> None:
    if name in _POINTS:
        sys.stderr.write(f"fault injection: crashing at {name}\n")
        sys.stderr.flush()
        os._exit(137)
