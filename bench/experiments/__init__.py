"""What-if experiments: measure a proposed change without touching the production code.

`BENCH_EXPERIMENT=<name> python -m bench --only saga` puts `bench/experiments/<name>/` first on
the benchmarked processes' PYTHONPATH, where a `sitecustomize.py` patches a library at start-up.
The results say how much a change would buy; the change itself belongs in the production code.
"""
