"""Create a context's PostgreSQL database when it does not exist yet."""

from __future__ import annotations

import psycopg
from django.conf import settings
from psycopg import sql


def ensure_database(alias: str) -> bool:
    """Connect to the server's `postgres` database and create `alias`'s database if missing."""
    cfg = settings.DATABASES[alias]
    params = {
        "dbname": "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
        return True
