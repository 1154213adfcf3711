"""OrderFlow's benchmark suite: `python -m bench [--quick]` (or `make bench [QUICK=1]`).

Every benchmark runs against real components (PostgreSQL, Redis, the Kafka-protocol broker,
gunicorn, Celery, the context consumers), each on fresh databases and its own topic namespace,
and writes its figures to `bench/results/latest.json` and `bench/results/latest.png`.
See docs/benchmarks.md for what is measured and how.
"""
