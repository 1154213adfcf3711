"""Where the benchmarks run: the servers, and one sandbox (fresh databases + topic namespace) per
benchmark.

Servers come from the environment (DATABASE_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS) or are started
like `python -m orderflow.stack test` does, under `var/bench/` (PostgreSQL and Redis data reused,
Tansu on a free port). A sandbox is created by the project's own one-shot commands
(`migrate_contexts`, `create_topics`) and its databases are dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orderflow.contexts_registry import ALL_CONTEXTS
from orderflow.messaging.databases import connect_url, with_database
from orderflow.messaging.kafka import reset_shared_producer
from orderflow.stack import processes
from orderflow.stack.components import Component, resolve_environment, start_kafka
from orderflow.stack.supervisor import resolve_argv

ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = ROOT / "var" / "bench"
RESULTS_DIR = ROOT / "bench" / "results"
SETTINGS = "bench.settings"
DB_PREFIX = "bench_"


def log(message: str) -> None:
    print(f"bench | {message}", flush=True)


# --- servers ----------------------------------------------------------------------------------------


@dataclass
class Infra:
    env: dict[str, str]  # DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, KAFKA_BOOTSTRAP_SERVERS
    components: list[Component]
    run_id: str
    log_dir: Path

    @property
    def owns_servers(self) -> bool:
        """True when the databases/Redis are ours (var/bench), so leftovers may be cleaned."""
        return any(c.name == "postgres" for c in self.components)

    def stop(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {component.name}: {exc}")


def start_infra() -> Infra:
    env, components, _fresh = resolve_environment(VAR_DIR, kafka_port=0)
    run_id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    log_dir = VAR_DIR / "logs" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    infra = Infra(env, components, run_id, log_dir)
    for component in components:
        log(f"{component.name}: {'started' if component.started else 'reused'} {component.url}")
    if infra.owns_servers:
        _drop_leftovers(infra)
    return infra


def fresh_broker(infra: Infra) -> None:
    """Replace the embedded broker with a new one before a benchmark (when it is ours).

    Tansu keeps every message in memory and slows down after a few hundred thousand of them (on
    one broker produce-to-receive went from 3 ms to 54 ms), even with the earlier benchmarks'
    topics deleted; the saga would otherwise pay for the relay and consumer benchmarks' messages.
    A broker from KAFKA_BOOTSTRAP_SERVERS is left as it is."""
    for n, component in enumerate(infra.components):
        if component.name != "kafka":
            continue
        component.stop()
        replacement = start_kafka(0, VAR_DIR / "kafka")
        infra.components[n] = replacement
        infra.env.update(replacement.env)
        # The in-process benchmarks' relay producer would keep reconnecting to the stopped one.
        reset_shared_producer()
        log(f"kafka: fresh broker {replacement.url}")


def database_url(base_url: str, name: str) -> str:
    """The server's DATABASE_URL with another database name (the last path segment)."""
    return with_database(base_url, name)


def pg_connect(base_url: str, database: str) -> psycopg.Connection:
    """An autocommit psycopg connection to `database` on the server of `base_url`."""
    return connect_url(base_url, dbname=database)


def _drop_databases(base_url: str, names: list[str]) -> None:
    with pg_connect(base_url, "postgres") as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drop_leftovers(infra: Infra) -> None:
    """Databases of an interrupted earlier run on our own server (never on a server we were given)."""
    with pg_connect(infra.env["DATABASE_URL"], "postgres") as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [DB_PREFIX + "%"]).fetchall()
    if rows:
        _drop_databases(infra.env["DATABASE_URL"], [r[0] for r in rows])
        log(f"dropped {len(rows)} leftover database(s) of an earlier run")


# --- one benchmark's sandbox -----------------------------------------------------------------------------


@dataclass
class Sandbox:
    label: str
    database: str  # the `default` database; a context's is `<database>_<context>`
    namespace: str  # KAFKA_TOPIC_NAMESPACE
    env: dict[str, str]  # environment of every process of this benchmark
    log_path: Path
    infra: Infra
    extra: dict[str, Any] = field(default_factory=dict)

    def context_database(self, context: str) -> str:
        return f"{self.database}_{context}"

    def connect(self, context: str | None = None) -> psycopg.Connection:
        name = self.context_database(context) if context else self.database
        return pg_connect(self.infra.env["DATABASE_URL"], name)

    def run(self, name: str, argv: list[str], *, timeout: float = 300, extra_env: dict[str, str] | None = None) -> None:
        """Run a one-shot command to completion, its output appended to the sandbox log."""
        with self.log_path.open("ab") as out:
            out.write(f"--- {name}: {' '.join(argv)}\n".encode())
            out.flush()
            code = subprocess.call(
                resolve_argv(argv),
                cwd=ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        if code != 0:
            raise RuntimeError(f"{name} failed with exit code {code}; see {self.log_path}")

    def task(self, module: str, args: list[str], *, timeout: float = 1200) -> dict[str, Any]:
        """Run `python -m <module> <args> --out FILE` (a Django-side benchmark) and return its JSON."""
        out_file = self.infra.log_dir / f"{self.label}-{module.rsplit('.', 1)[-1]}.json"
        out_file.unlink(missing_ok=True)
        self.run(module, ["python", "-m", module, *args, "--out", str(out_file)], timeout=timeout)
        return json.loads(out_file.read_text())


def _python_path() -> str:
    """The repository (processes import `bench.settings`), after an experiment's directory if one
    is chosen with BENCH_EXPERIMENT (see bench/experiments/)."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    experiment = os.environ.get("BENCH_EXPERIMENT")
    if experiment:
        directory = ROOT / "bench" / "experiments" / experiment
        if not (directory / "sitecustomize.py").exists():
            raise SystemExit(f"BENCH_EXPERIMENT={experiment}: no {directory}/sitecustomize.py")
        paths.insert(0, str(directory))
    return os.pathsep.join(p for p in paths if p)


def process_env(infra: Infra, *, database: str, namespace: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(infra.env)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": database_url(infra.env["DATABASE_URL"], database),
            "KAFKA_TOPIC_NAMESPACE": namespace,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": _python_path(),
            **extra,
        }
    )
    return env


@contextmanager
def sandbox(infra: Infra, label: str, **extra_env: str) -> Iterator[Sandbox]:
    """Fresh, migrated databases and topics for one benchmark; the databases are dropped after."""
    suffix = uuid.uuid4().hex[:6]
    database = f"{DB_PREFIX}{label}_{suffix}"
    namespace = f"bench{label}{suffix}"
    env = process_env(infra, database=database, namespace=namespace, **extra_env)
    box = Sandbox(label, database, namespace, env, infra.log_dir / f"{label}.log", infra)
    _flush_redis(infra)
    try:
        started = time.monotonic()
        box.run("migrate", processes.MIGRATE)
        box.run("create-topics", processes.CREATE_TOPICS)
        took = time.monotonic() - started
        log(f"{label}: databases {database}_* migrated, topics {namespace}.* created ({took:.1f} s)")
        yield box
    finally:
        _drop_databases(infra.env["DATABASE_URL"], [database, *(f"{database}_{c}" for c in ALL_CONTEXTS)])
        _delete_topics(infra.env["KAFKA_BOOTSTRAP_SERVERS"], namespace)


def _flush_redis(infra: Infra) -> None:
    """Start each benchmark with an empty Celery queue and cache, on our own Redis only."""
    if not any(c.name == "redis" for c in infra.components):
        return
    import redis

    client = redis.Redis.from_url(infra.env["REDIS_URL"])
    try:
        client.flushall()
    finally:
        client.close()


def _delete_topics(bootstrap: str, namespace: str) -> None:
    """Free the broker's memory (the embedded broker keeps every message in RAM)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(namespace + ".")]
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=10).values():
                try:
                    future.result()
                except Exception:  # not every broker deletes topics; the namespace is unique anyway
                    pass
    except Exception as exc:
        log(f"could not delete topics {namespace}.*: {exc}")
