"""The entry point of the Django-side benchmarks (relay, consumer), run as their own processes by
`Sandbox.task` with the sandbox's environment: `python -m bench.relay --n 100000 --out FILE`."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run(main: Callable[[argparse.Namespace], dict[str, Any]], configure: Callable[[argparse.ArgumentParser], None]):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--profile-dir", type=Path, help="record py-spy profiles of the timed phases here")
    configure(parser)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    result = main(args)
    args.out.write_text(json.dumps(result, indent=2))


class Timer:
    """`with Timer() as t: ...` then `t.seconds`."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
