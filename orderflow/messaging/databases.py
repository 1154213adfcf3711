"""PostgreSQL connections outside the ORM: creating context databases, and tools (tests, bench)
that need a plain connection to a database on the same server."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import environ
import psycopg
from django.conf import settings
from psycopg import sql


def with_database(url: str, name: str) -> str:
    """`url` with another database name. Only the last path segment is the name: a unix-socket
    URL carries the socket directory, percent-encoded, before it (`postgres://u@/%2Fsock/db`)."""
    parts = urlsplit(url)
    head, _, _ = parts.path.rpartition("/")
    return urlunsplit(parts._replace(path=f"{head}/{name}"))


def connect(cfg: Mapping, *, dbname: str) -> psycopg.Connection:
    """An autocommit connection to `dbname` on the server of a Django DATABASES entry."""
    params = {
        "dbname": dbname,
        "user": cfg.get("USER"),
        "password": cfg.get("PASSWORD"),
        "host": cfg.get("HOST"),
        "port": cfg.get("PORT"),
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True)


def connect_url(url: str, *, dbname: str) -> psycopg.Connection:
    """An autocommit connection to `dbname` on the server a DATABASE_URL names."""
    return connect(environ.Env.db_url_config(url), dbname=dbname)


def ensure_database(alias: str) -> bool:
    """Connect to the server's `postgres` database and create `alias`'s database if missing."""
    cfg = settings.DATABASES[alias]
    with connect(cfg, dbname="postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
        return True
