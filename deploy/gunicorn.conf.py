"""Gunicorn settings for every OrderFlow web process: the containers and the dev stack alike.

Everything that differs between environments comes from the environment:

- GUNICORN_BIND  full bind address (the dev stack sets 127.0.0.1:8000); else
- PORT           port on all interfaces (platforms that inject PORT); else 0.0.0.0:8000.
- WEB_CONCURRENCY worker processes; default 2 * CPUs + 1, capped at MAX_DEFAULT_WORKERS.
- GUNICORN_THREADS threads per worker (gthread); default 4.
- GUNICORN_TIMEOUT / GUNICORN_GRACEFUL_TIMEOUT seconds; default 30 / 30.

This file is plain Python read by gunicorn; it must not import Django.
"""

from __future__ import annotations

import gc
import os

# Each worker holds its own database connections (default + the hosted contexts' aliases), so
# an unbounded default on a big host would exhaust PostgreSQL's max_connections. An explicit
# WEB_CONCURRENCY is taken as is.
MAX_DEFAULT_WORKERS = 8


def _cpus() -> int:
    # sched_getaffinity honours CPU pinning (cpusets) where os.cpu_count() reports the host.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _bind() -> str:
    if os.environ.get("GUNICORN_BIND"):
        return os.environ["GUNICORN_BIND"]
    if os.environ.get("PORT"):
        return f"0.0.0.0:{int(os.environ['PORT'])}"
    return "0.0.0.0:8000"


def _workers() -> int:
    if os.environ.get("WEB_CONCURRENCY"):
        return max(1, int(os.environ["WEB_CONCURRENCY"]))
    return min(2 * _cpus() + 1, MAX_DEFAULT_WORKERS)


bind = _bind()
workers = _workers()
# Threads let a worker overlap requests that wait on PostgreSQL or Redis.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, in-flight requests get this long to finish; keep the orchestrator's stop grace
# period (compose stop_grace_period, k8s terminationGracePeriodSeconds) a little longer.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# The gateway keeps connections to us open between requests.
keepalive = 5

# Load Django and the URLconf once in the master, then fork: workers share those pages
# copy-on-write and a recycled worker serves at once. Without it every restart re-imports the
# whole project (about a second of CPU each, which showed up as half the web tier's CPU under load
# in the HTTP benchmark's profile). Safe because nothing opens a connection at import: database,
# Redis and Kafka clients are created lazily in each worker (the Kafka producer checks its pid).
preload_app = True

# Recycle workers now and then so a slow leak cannot grow forever; jitter avoids all workers
# restarting at once. Not every 1,000 requests: a busy worker was then recycled every few seconds,
# and each recycle costs CPU and a cold start (decision 49).
max_requests = 10000
max_requests_jitter = 1000

# Heartbeat files on tmpfs: an overlay filesystem can stall them and get workers killed.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# No runtime control socket (gunicornc, gunicorn >= 25.1): processes are managed with signals by
# the orchestrator or the dev stack. Its default path, ~/.gunicorn/gunicorn.ctl, would be shared
# by every gunicorn of one user (the dev stack may run several), and the image's user has no home.
control_socket_disable = True

# Logs go to the container's stdout/stderr.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


def post_worker_init(worker):
    # Without listening relays (decision 43), each worker relays what its requests commit, in one
    # relay thread per context (decision 21), and starts its Kafka producer now rather than on the
    # first order. (Imported here, in the worker: Django is loaded by then; never in the master,
    # which forks.)
    from django.conf import settings

    if settings.WEB_RELAY_INLINE and not settings.OUTBOX_RELAY_LISTEN:
        from orderflow.messaging.kafka import warm_up_shared_producer
        from orderflow.messaging.outbox import relay_in_threads

        relay_in_threads()
        warm_up_shared_producer()


def pre_fork(server, worker):
    # Move everything the master has loaded (Django, the URLconf, DRF: decision 23) into the
    # garbage collector's permanent generation before each fork, as the gc module's documentation
    # advises for fork without exec. A worker's collections then never walk those objects: a walk
    # writes to every page holding them, copying the master's heap into the worker, and costs CPU
    # on every full collection. Figures in decision 49.
    gc.freeze()


def child_exit(server, worker):
    # With several workers, prometheus_client's multiprocess mode keeps per-process files in
    # PROMETHEUS_MULTIPROC_DIR; a dead worker's live gauges must be dropped.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
