"""Static checks of the production topology (no Docker here, so nothing is started).

- docker-compose.yml is valid against the Compose Specification JSON schema (vendored in
  tests/schemas/, see its README);
- every app container runs exactly a command of orderflow.stack.processes (what the dev stack
  runs), with the right ORDERFLOW_CONTEXTS and environment; deploy/Dockerfile's CMD is the web one;
- deploy/gateway/nginx.conf sends each context's path prefix to that context's web service.

Needs neither Django settings nor a database: `pytest tests/test_deploy_compose.py -p no:django`.
"""

from __future__ import annotations

import copy
import gc
import json
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from orderflow.contexts_registry import ALL_CONTEXTS, parse_hosted
from orderflow.stack import processes

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_CONF = ROOT / "deploy" / "gateway" / "nginx.conf"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-databases.sql"

WEB_PORT = 8000

# Path prefix -> web service that owns it (the gateway's contract).
ROUTES = {
    "/api/customers/": "customers-web",
    "/api/auth/": "customers-web",
    "/api/catalog/": "catalog-web",
    "/api/inventory/": "inventory-web",
    "/api/orders/": "orders-web",
    "/api/payments/": "payments-web",
    "/api/notifications/": "notifications-web",
}
# Paths every web process serves; the gateway sends them to one of them (see nginx.conf).
FALLBACK_SERVICE = "orders-web"
FALLBACK_PATHS = [
    "/api/schema/",
    "/api/docs/",
    "/admin/",
    "/static/admin/css/base.css",
    "/health/ready",
    "/health/live",
    "/metrics",
    "/",
]


# --- Loading -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    # PyYAML's safe loader resolves anchors and `<<` merge keys as compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    # No format checker: compose durations ("10s") are Go durations, not ISO 8601 `duration`s.
    return validator_cls(schema)


def schema_errors(validator: jsonschema.protocols.Validator, document: dict) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whichever of compose's two spellings it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: None if value is None else str(value) for key, value in env.items()}


# --- (a) Compose Specification schema ------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(compose, compose_validator):
    assert schema_errors(compose_validator, compose) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: c["services"]["orders-web"].update(comand=processes.WEB), id="unknown-key"),
        pytest.param(lambda c: c["services"]["postgres"]["healthcheck"].update(retries=[3]), id="bad-type"),
        pytest.param(lambda c: c["services"]["gateway"].update(ports={"8000": 80}), id="bad-ports"),
        pytest.param(
            lambda c: c["services"]["orders-web"]["depends_on"]["migrate"].update(condition="done"),
            id="bad-enum",
        ),
    ],
)
def test_schema_validation_rejects_a_broken_compose_file(compose, compose_validator, mutate):
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert schema_errors(compose_validator, broken) != []
    with pytest.raises(jsonschema.ValidationError):
        compose_validator.validate(broken)


# --- (b) Commands, contexts and environment ------------------------------------------------------


def expected_app_services() -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """Service name -> (command, hosted contexts) for every container of the app image."""
    expected = {
        "migrate": (processes.MIGRATE, ALL_CONTEXTS),
        "create-topics": (processes.CREATE_TOPICS, ALL_CONTEXTS),
        "beat": (processes.BEAT, ALL_CONTEXTS),
    }
    for ctx in ALL_CONTEXTS:
        expected[f"{ctx}-web"] = (processes.WEB, (ctx,))
        expected[f"{ctx}-consumer"] = (processes.consumer(ctx), (ctx,))
        expected[f"{ctx}-worker"] = (processes.WORKER, (ctx,))
    return expected


def app_services(compose: dict) -> dict[str, dict]:
    """The services built from deploy/Dockerfile (everything but infrastructure and gateway)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if isinstance(service.get("build"), dict) and service["build"].get("dockerfile") == "deploy/Dockerfile"
    }


def app_service_problems(compose: dict) -> list[str]:
    problems = []
    services = app_services(compose)
    expected = expected_app_services()
    if missing := sorted(expected.keys() - services.keys()):
        problems.append(f"missing app services: {missing}")
    if extra := sorted(services.keys() - expected.keys()):
        problems.append(f"unexpected app services: {extra}")
    for name in sorted(expected.keys() & services.keys()):
        command, contexts = expected[name]
        service = services[name]
        if service.get("command") != command:
            problems.append(f"{name}: command {service.get('command')!r} != {command!r}")
        hosted = environment(service).get("ORDERFLOW_CONTEXTS")
        try:
            if parse_hosted(hosted) != contexts or hosted is None:
                problems.append(f"{name}: ORDERFLOW_CONTEXTS={hosted!r}, expected {','.join(contexts)}")
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    beats = sorted(name for name, s in compose["services"].items() if s.get("command") == processes.BEAT)
    if len(beats) != 1:
        problems.append(f"exactly one beat expected, found {beats}")
    return problems


def test_every_app_service_runs_the_dev_stack_command_for_its_context(compose):
    assert app_service_problems(compose) == []


def test_command_check_catches_a_drift(compose):
    drifted = copy.deepcopy(compose)
    drifted["services"]["orders-worker"]["command"] = list(processes.BEAT)  # a second beat
    drifted["services"]["payments-consumer"]["environment"]["ORDERFLOW_CONTEXTS"] = "orders"
    del drifted["services"]["catalog-web"]
    problems = "\n".join(app_service_problems(drifted))
    assert "orders-worker: command" in problems
    assert "exactly one beat" in problems
    assert "payments-consumer: ORDERFLOW_CONTEXTS" in problems
    assert "missing app services: ['catalog-web']" in problems


def test_commands_use_the_exec_form(compose):
    # A string command goes through a shell in some tools and is split differently in others.
    for name, service in compose["services"].items():
        if "command" in service:
            assert isinstance(service["command"], list), name


def test_every_app_container_gets_the_production_environment(compose):
    for name, service in app_services(compose).items():
        env = environment(service)
        assert env.get("DJANGO_SETTINGS_MODULE") == "orderflow.settings.production", name
        assert env.get("DJANGO_SECRET_KEY"), name
        assert env.get("DJANGO_ALLOWED_HOSTS"), name
        assert env.get("DATABASE_URL") == "postgres://postgres:postgres@postgres:5432/orderflow", name
        for ctx in ALL_CONTEXTS:
            url = urlsplit(env.get(f"{ctx.upper()}_DATABASE_URL") or "")
            assert (url.scheme, url.hostname, url.port, url.path) == (
                "postgres",
                "postgres",
                5432,
                f"/orderflow_{ctx}",
            ), (name, ctx)
        assert env.get("KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092", name
        assert env.get("REDIS_URL") == "redis://redis:6379/0", name
        # One image for every process kind.
        assert service.get("image") == compose["services"]["orders-web"]["image"], name


def test_long_running_app_services_start_after_the_one_shot_steps(compose):
    for name, service in app_services(compose).items():
        if name in ("migrate", "create-topics"):
            assert service.get("restart") == "no", name
            continue
        depends = service.get("depends_on") or {}
        for step in ("migrate", "create-topics"):
            assert depends.get(step, {}).get("condition") == "service_completed_successfully", (
                name,
                step,
            )
        for infra in ("postgres", "kafka", "redis"):
            assert depends.get(infra, {}).get("condition") == "service_healthy", (name, infra)


def test_web_services_are_health_checked_on_readiness(compose):
    for ctx in ALL_CONTEXTS:
        test = compose["services"][f"{ctx}-web"]["healthcheck"]["test"]
        assert test[0] == "CMD" and any(f"127.0.0.1:{WEB_PORT}/health/ready" in part for part in test), ctx


def test_infrastructure_matches_what_the_apps_are_told(compose):
    services = compose["services"]
    assert services["postgres"]["image"].split(":")[1].startswith("18")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["redis"]["image"].split(":")[1].startswith("7")
    for name in ("postgres", "kafka", "redis"):
        assert "healthcheck" in services[name], name

    kafka_env = environment(services["kafka"])
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")

    # The init script is mounted and creates every database an app URL names.
    assert any(
        str(volume).startswith("./deploy/postgres/init-databases.sql:/docker-entrypoint-initdb.d/")
        for volume in services["postgres"]["volumes"]
    )
    created = set(re.findall(r"^\s*CREATE DATABASE (\w+)\s*;", POSTGRES_INIT.read_text(), re.M | re.I))
    assert created == {"orderflow", *(f"orderflow_{ctx}" for ctx in ALL_CONTEXTS)}
    env = environment(services["orders-web"])
    named = {urlsplit(env[key]).path.lstrip("/") for key in env if key.endswith("DATABASE_URL")}
    assert named <= created


# --- Dockerfile and gunicorn config --------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


def test_dockerfile_runs_the_web_command_as_a_non_root_user():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    by_kind = {}
    for keyword, args in instructions:
        by_kind.setdefault(keyword, []).append(args)

    assert by_kind["FROM"][0].startswith("python:3.11-slim")
    assert json.loads(by_kind["CMD"][-1]) == processes.WEB  # exec form, the dev stack's command
    assert any("DJANGO_SETTINGS_MODULE=orderflow.settings.production" in env for env in by_kind["ENV"])
    assert any("requirements/prod.txt" in run for run in by_kind["RUN"])
    collect = [run for run in by_kind["RUN"] if "collectstatic" in run]
    assert collect and "DJANGO_SECRET_KEY=" in collect[0] and "--noinput" in collect[0]
    user = by_kind["USER"][-1].split(":")[0]
    assert user not in ("root", "0")
    # USER comes after everything that needs root.
    assert [k for k, _ in instructions].index("USER") > max(i for i, (k, _) in enumerate(instructions) if k == "RUN")


@pytest.mark.parametrize(
    ("env", "bind"),
    [
        ({}, f"0.0.0.0:{WEB_PORT}"),
        ({"PORT": "9000"}, "0.0.0.0:9000"),
        ({"GUNICORN_BIND": "127.0.0.1:8000", "PORT": "9000"}, "127.0.0.1:8000"),  # the dev stack
    ],
)
def test_gunicorn_config_binds_from_the_environment(monkeypatch, env, bind):
    for key in ("GUNICORN_BIND", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = runpy.run_path(str(GUNICORN_CONF))
    assert config["bind"] == bind
    assert config["worker_class"] == "gthread" and config["threads"] >= 2
    assert 1 <= config["workers"] <= config["MAX_DEFAULT_WORKERS"]
    assert config["accesslog"] == "-"
    assert config["graceful_timeout"] > 0


def test_gunicorn_workers_follow_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert runpy.run_path(str(GUNICORN_CONF))["workers"] == 3


def test_gunicorn_master_freezes_its_heap_before_each_fork():
    # A worker's collections must not walk (and so copy) what the preloaded master holds.
    config = runpy.run_path(str(GUNICORN_CONF))
    assert config["preload_app"] is True
    before = gc.get_freeze_count()
    try:
        config["pre_fork"](None, None)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


# --- (c) Gateway routing -------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def children(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


@dataclass
class Location:
    modifier: str  # "" (prefix), "=" (exact) or "^~" (prefix, no regex)
    path: str
    variables: dict[str, str] = field(default_factory=dict)
    proxy_pass: str | None = None


_NGINX_TOKEN = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"'#]+""")


def parse_nginx(text: str) -> list[Directive]:
    """Enough of nginx's grammar for this config: directives, blocks, quotes and comments."""
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for token in _NGINX_TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token == ";":
            stack[-1].append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            directive = Directive(words[0], words[1:], [])
            stack[-1].append(directive)
            stack.append(directive.block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token[1:-1] if token[0] in "\"'" else token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def gateway_locations(text: str) -> list[Location]:
    (http,) = [d for d in parse_nginx(text) if d.name == "http"]
    (server,) = http.children("server")
    server_vars = {d.args[0]: d.args[1] for d in server.children("set")}
    locations = []
    for directive in server.children("location"):
        modifier, path = directive.args if len(directive.args) == 2 else ("", directive.args[0])
        # Regex locations would make the choice order-dependent; this gateway has none.
        assert modifier in ("", "=", "^~"), f"unsupported location modifier {modifier!r}"
        location = Location(modifier, path, dict(server_vars))
        location.variables.update({d.args[0]: d.args[1] for d in directive.children("set")})
        (proxy_pass,) = [d.args[0] for d in directive.children("proxy_pass")] or [None]
        location.proxy_pass = proxy_pass
        locations.append(location)
    return locations


def route(locations: list[Location], uri: str) -> str:
    """The `host:port` nginx proxies `uri` to: exact match first, else the longest prefix."""
    exact = [loc for loc in locations if loc.modifier == "=" and loc.path == uri]
    prefix = [loc for loc in locations if loc.modifier != "=" and uri.startswith(loc.path)]
    if not exact and not prefix:
        raise LookupError(f"no location for {uri}")
    location = exact[0] if exact else max(prefix, key=lambda loc: len(loc.path))
    target = location.proxy_pass or ""
    for name, value in location.variables.items():
        target = target.replace(name, value)
    parts = urlsplit(target)
    assert parts.scheme == "http" and "$" not in target, f"unresolved proxy_pass {location.proxy_pass!r}"
    return parts.netloc


def routing_problems(text: str) -> list[str]:
    locations = gateway_locations(text)
    cases = {
        **{prefix + "x": service for prefix, service in ROUTES.items()},
        **{prefix: service for prefix, service in ROUTES.items()},
        **{path: FALLBACK_SERVICE for path in FALLBACK_PATHS},
    }
    problems = []
    for uri, service in cases.items():
        target = route(locations, uri)
        if target != f"{service}:{WEB_PORT}":
            problems.append(f"{uri} -> {target}, expected {service}:{WEB_PORT}")
    return problems


def test_gateway_routes_each_prefix_to_its_context(compose):
    text = NGINX_CONF.read_text()
    assert routing_problems(text) == []
    # Every upstream the gateway names is a web service of the compose file.
    for location in gateway_locations(text):
        host = route([location], location.path).split(":")[0]
        assert host in compose["services"] and host.endswith("-web"), host
    # Each context's web service is reachable through the gateway.
    assert {f"{ctx}-web" for ctx in ALL_CONTEXTS} <= set(ROUTES.values())


def test_routing_check_catches_a_wrong_route():
    text = NGINX_CONF.read_text()
    wrong = text.replace("set $upstream catalog-web:8000;", "set $upstream orders-web:8000;")
    assert wrong != text
    assert "/api/catalog/x -> orders-web:8000, expected catalog-web:8000" in routing_problems(wrong)


def test_gateway_is_published_on_8000_with_this_config(compose):
    gateway = compose["services"]["gateway"]
    assert gateway["image"].startswith("nginx:")
    assert any(str(port).startswith("8000:") for port in gateway["ports"])
    assert "./deploy/gateway/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    (http,) = [d for d in parse_nginx(NGINX_CONF.read_text()) if d.name == "http"]
    (listen,) = http.children("server")[0].children("listen")
    assert any(str(port).endswith(f":{listen.args[0]}") for port in gateway["ports"])
