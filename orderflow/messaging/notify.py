"""Commit notifications of the outbox: whichever process commits an event, the context's relay
hears of it at once (PostgreSQL LISTEN/NOTIFY) and relays it together with whatever else committed
meanwhile.

A trigger on each outbox table notifies the channel named after the table (unique within its
database, which is all LISTEN/NOTIFY spans) when rows are inserted
(once per statement) or put back to unpublished (a republish, an admin retry). PostgreSQL delivers
a notification only when its transaction commits and folds identical ones of a transaction into
one, so a listener never hears of a row it cannot yet see. The trigger is created by a migration of
each context (`trigger_operation`); the listening relay thread is outbox._RelayThread.

PostgreSQL serializes the commits of transactions that notified (benchmarks.md, ninth round), so
a session of a process that does not listen (`OUTBOX_RELAY_LISTEN=false`, whose commits kick
instead) turns the notification off for itself: `SETTING` = 'off', set when Django opens the
connection (`silence_when_not_listening`), and the trigger then does nothing.
"""

from __future__ import annotations

import psycopg
from django.db import connections, migrations

FUNCTION = "orderflow_outbox_notify"
SETTING = "orderflow.outbox_notify"  # a session's own switch: 'off' silences its commits

# TG_TABLE_NAME is the channel: one function serves every outbox table of a database.
_ALWAYS = "BEGIN PERFORM pg_notify(TG_TABLE_NAME, ''); RETURN NULL; END"
# current_setting(…, true) is NULL in a session that never set it: notify unless told not to.
_UNLESS_SILENCED = (
    f"BEGIN IF current_setting('{SETTING}', true) IS DISTINCT FROM 'off' THEN "
    "PERFORM pg_notify(TG_TABLE_NAME, ''); END IF; RETURN NULL; END"
)


def _function(body: str) -> str:
    return f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$"


def trigger_operation(table: str) -> migrations.RunSQL:
    """The migration operation that makes `table` announce its commits."""
    statement_trigger = f"{table}_notify_insert"
    row_trigger = f"{table}_notify_unpublish"
    return migrations.RunSQL(
        sql=[
            _function(_ALWAYS),
            f'CREATE TRIGGER "{statement_trigger}" AFTER INSERT ON "{table}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()",
            # Row level, so that the relay's own claim (published_at set) announces nothing.
            f'CREATE TRIGGER "{row_trigger}" AFTER UPDATE OF published_at ON "{table}" FOR EACH ROW '
            f"WHEN (NEW.published_at IS NULL AND OLD.published_at IS NOT NULL) EXECUTE FUNCTION {FUNCTION}()",
        ],
        reverse_sql=[
            f'DROP TRIGGER IF EXISTS "{row_trigger}" ON "{table}"',
            f'DROP TRIGGER IF EXISTS "{statement_trigger}" ON "{table}"',
        ],
    )


def silenceable_operation() -> migrations.RunSQL:
    """The migration operation that lets a session turn its commits' notifications off (`SETTING`)."""
    return migrations.RunSQL(sql=_function(_UNLESS_SILENCED), reverse_sql=_function(_ALWAYS))


def silence_when_not_listening(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: a context's connection in a process whose commits kick their
    relay (OUTBOX_RELAY_LISTEN off) sends no notifications, which nobody would wait for."""
    from django.conf import settings

    if not settings.OUTBOX_RELAY_LISTEN and connection.alias in settings.ORDERFLOW_CONTEXTS:
        with connection.cursor() as cursor:
            cursor.execute(f"SET {SETTING} = 'off'")


class Listener:
    """A connection of its own to the context's database that LISTENs on the outbox's channel.

    Not one of Django's connections: those are closed and reopened around requests and health
    checks, and a LISTEN lives only as long as its session. Autocommit, so it is never left idle
    in a transaction."""

    def __init__(self, *, alias: str, table: str) -> None:
        params = connections[alias].get_connection_params()
        self.connection = psycopg.connect(**params, autocommit=True)
        self.connection.execute(f'LISTEN "{table}"')

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notification; True if one came. Every notification
        already received is consumed with it: one relay run covers them all."""
        heard = False
        for _ in self.connection.notifies(timeout=timeout, stop_after=1):
            heard = True
        if heard:
            for _ in self.connection.notifies(timeout=0):
                pass
        return heard

    def close(self) -> None:
        self.connection.close()
