"""LocalStack in Docker, started from docker-compose.yml's service through the
Docker SDK (the optional `docker` package: `pip install 'tmctl[localstack]'`).

The compose file stays the one description of the container (image, ports,
environment, volumes); tmctl reads its service, interpolates `${VAR}` from the
environment the way compose does, and runs it under its own name and labels so
`tmctl local stop|status` find exactly the container it started for a port.
The auth token goes from the environment into the container's environment and
nowhere else: never a file, never a log line.

The Docker client is a parameter everywhere (`docker.from_env()` is only
called by `connect`), so tests pass a fake one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmctl.core.errors import BackendUnreachable, TmctlError, UsageError
from tmctl.core.target import Target

TOKEN_ENV = "LOCALSTACK_AUTH_TOKEN"
COMPOSE_FILE = "docker-compose.yml"
SERVICE = "localstack"
CONTAINER_PORT = 4566  # LocalStack's gateway inside the container
LABEL_ENGINE = "io.tmctl.engine"
LABEL_PORT = "io.tmctl.port"
START_TIMEOUT = 120.0  # LocalStack Pro starts in 5–30 s; its first start also activates the licence
INSTALL_FIX = "pip install 'tmctl[localstack]' (the Docker SDK), or use the embedded engine: tmctl local start"
NO_DOCKER_FIX = ("start Docker (Docker Desktop, or `sudo systemctl start docker`), "
                 "or use the embedded engine that needs none: tmctl local start")
TOKEN_FIX = (f"export {TOKEN_ENV}=<your token> (app.localstack.cloud → Auth Tokens; the image needs one "
             "since 2026-03-23), or use the embedded engine that needs none: tmctl local start")


class DockerUnavailable(BackendUnreachable):
    """No Docker SDK, or no Docker engine behind it."""


@dataclass(frozen=True)
class ServiceSpec:
    """One compose service, interpolated: what `containers.run` needs."""

    image: str
    environment: dict[str, str]
    ports: list[tuple[str, int, int]]  # (host ip, host port, container port)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)  # docker SDK form
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Container:
    name: str
    id: str
    status: str  # created | running | exited | …
    image: str
    port: int

    def to_dict(self) -> dict:
        return {"name": self.name, "id": self.id[:12], "status": self.status, "image": self.image,
                "port": self.port}


@dataclass(frozen=True)
class DockerStatus:
    """What `tmctl doctor` reports about Docker."""

    sdk: bool  # the `docker` package imports
    cli: str | None  # path of a `docker` executable, if any
    reachable: bool  # an engine answered ping
    version: str | None = None
    detail: str | None = None  # why not, when not


def container_name(port: int) -> str:
    return f"tmctl-localstack-{port}"


# ------------------------------------------------------------------ compose file

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, env: dict[str, str] | os._Environ) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
    `${VAR?message}` and `$$`. A missing required variable is a TmctlError
    naming the variable, never its value."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in ("-", ":-"):
            return arg if unset else value
        if op in ("?", ":?"):
            if unset:
                if name == TOKEN_ENV:
                    raise TmctlError(f"{TOKEN_ENV} is not set: the LocalStack image refuses to start without it",
                                     TOKEN_FIX)
                raise TmctlError(f"{name} is not set: {arg or 'docker-compose.yml requires it'}",
                                 f"export {name}=… and try again")
            return value
        return value or ""

    return _VAR.sub(one, value)


def _parse_port(entry: Any, host_port: int) -> tuple[str, int, int]:
    """'127.0.0.1:4566:4566', '4566:4566' or the long form; the host port is the
    target's (so `--endpoint-url http://localhost:4600` maps 4600 → 4566)."""
    if isinstance(entry, dict):
        return str(entry.get("host_ip") or "127.0.0.1"), host_port, int(entry["target"])
    parts = str(entry).split("/")[0].split(":")
    host_ip = parts[0] if len(parts) == 3 else "127.0.0.1"  # never 0.0.0.0 unless the file says so
    return host_ip, host_port, int(parts[-1])


def _environment(raw: dict | list, env: dict[str, str] | os._Environ) -> dict[str, str]:
    """A service's `environment` (map or ["KEY=value", …] list). A value written in
    the file is interpolated; a key given without one (`KEY` in the list, `KEY:`
    in the map) takes the variable from `env` as it is — never interpolated
    again, so a token containing `$` reaches the container unchanged."""
    items = (item.split("=", 1) if "=" in item else (item, None) for item in map(str, raw)) \
        if isinstance(raw, list) else raw.items()
    return {str(k): env.get(str(k), "") if v is None else interpolate(str(v), env) for k, v in items}


def load_service(path: Path, *, port: int, env: dict[str, str] | os._Environ | None = None,
                 service: str = SERVICE) -> ServiceSpec:
    """The compose service as run arguments, interpolated from `env`."""
    import yaml

    env = os.environ if env is None else env
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}",
                         "run tmctl in the checkout, or pass --compose-file") from None
    except yaml.YAMLError as err:
        raise UsageError(f"{path} is not valid YAML: {err}", "fix the compose file") from None
    spec = (doc or {}).get("services", {}).get(service)
    if not isinstance(spec, dict) or not spec.get("image"):
        raise UsageError(f"{path} has no service {service!r} with an image", "restore docker-compose.yml from git")
    environment = _environment(spec.get("environment") or {}, env)
    ports = [_parse_port(p, port) for p in spec.get("ports") or []]
    if not any(container == CONTAINER_PORT for _, _, container in ports):
        ports.append(("127.0.0.1", port, CONTAINER_PORT))
    ports = [p for p in ports if p[2] == CONTAINER_PORT]  # one gateway port: the target's
    volumes: dict[str, dict[str, str]] = {}
    for entry in spec.get("volumes") or []:
        source, _, rest = interpolate(str(entry), env).partition(":")
        bind, _, mode = rest.partition(":")
        # A named volume gets tmctl's prefix, as compose would give it its project's.
        key = source if source.startswith(("/", ".", "~")) else f"tmctl_{source}"
        volumes[os.path.expanduser(key)] = {"bind": bind, "mode": mode or "rw"}
    labels = {LABEL_ENGINE: "localstack", LABEL_PORT: str(port)}
    return ServiceSpec(interpolate(str(spec["image"]), env), environment, ports, volumes, labels)


# ------------------------------------------------------------------ Docker


def import_sdk():
    try:
        import docker
    except ImportError:
        raise DockerUnavailable("the Docker SDK (the `docker` package) is not installed", INSTALL_FIX) from None
    return docker


def connect(timeout: float = 5.0):
    """A Docker client that has answered a ping, or DockerUnavailable."""
    docker = import_sdk()
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException:
        raise DockerUnavailable(f"no Docker engine answers on {where}", NO_DOCKER_FIX) from None
    return client


def docker_status() -> DockerStatus:
    """SDK installed? CLI on PATH? Engine answering (and its version)? Never raises."""
    import shutil

    cli = shutil.which("docker")
    try:
        docker = import_sdk()
    except DockerUnavailable:
        return DockerStatus(False, cli, False, detail="the `docker` package is not installed")
    try:
        client = connect(timeout=3.0)
    except DockerUnavailable as err:
        return DockerStatus(True, cli, False, detail=err.message)
    try:
        version = str(client.version().get("Version", "?"))
    except docker.errors.DockerException:
        version = None
    return DockerStatus(True, cli, True, version=version)


def find_container(client, port: int) -> Container | None:
    """The container tmctl started for this port (by its labels), running or not."""
    found = client.containers.list(all=True, filters={"label": [f"{LABEL_ENGINE}=localstack",
                                                                 f"{LABEL_PORT}={port}"]})
    if not found:
        return None
    c = found[0]
    image = (c.attrs.get("Config") or {}).get("Image") or ""
    return Container(c.name, c.id, c.status, image, port)


def _pull_if_missing(client, image: str, progress) -> None:
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
    except ImageNotFound:
        progress(f"pulling {image} (once; it is large)")
        repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        client.images.pull(repository, tag=tag or "latest")


def run_container(client, spec: ServiceSpec, port: int, progress=lambda _msg: None) -> Container:
    """Create and start the container (an old one of ours for this port is
    replaced, so a changed compose file or token takes effect)."""
    old = client.containers.list(all=True, filters={"label": [f"{LABEL_ENGINE}=localstack", f"{LABEL_PORT}={port}"]})
    for c in old:
        c.remove(force=True)
    _pull_if_missing(client, spec.image, progress)
    ports = {f"{container}/tcp": (host_ip, host_port) for host_ip, host_port, container in spec.ports}
    c = client.containers.run(spec.image, name=container_name(port), detach=True, environment=spec.environment,
                              ports=ports, volumes=spec.volumes, labels=spec.labels)
    return Container(c.name, c.id, c.status, spec.image, port)


def wait_healthy(client, target: Target, container: Container, *, timeout: float = START_TIMEOUT,
                 probe=None, sleep=None):
    """Until LocalStack answers its health endpoint on the target's port (the
    project's one waiting helper), failing fast if the container exits."""
    import time

    from tmctl.core.local import emulator
    from tmctl.core.wait import poll

    probe = probe or emulator.probe
    state: dict[str, Any] = {}

    def fetch():
        engine = probe(target.endpoint_url)
        if engine is None:
            c = client.containers.get(container.id)
            c.reload()
            state["status"] = c.status
            if c.status in {"exited", "dead"}:
                state["logs"] = c.logs(tail=3).decode(errors="replace").strip()
        return engine

    engine = poll(fetch, lambda e: e is not None or "logs" in state, timeout=timeout, interval=0.25,
                  max_interval=2.0, sleep=sleep or time.sleep)
    if engine is not None:
        return engine
    if "logs" in state:
        last = (state["logs"].splitlines() or ["(no output)"])[-1]
        raise TmctlError(f"the LocalStack container {container.name} exited: {last}",
                         f"see `docker logs {container.name}`; an invalid or expired {TOKEN_ENV} is the usual cause")
    raise BackendUnreachable(f"LocalStack did not answer {target.endpoint_url}/_localstack/health "
                             f"within {timeout:.0f}s (container {state.get('status', '?')})",
                             f"see `docker logs {container.name}`")


@dataclass(frozen=True)
class Started:
    engine: Any  # emulator.Engine
    container: Container | None  # None: a LocalStack already answering was reused
    reused: bool


def start(target: Target, compose_file: Path, *, client=None, env=None, probe=None, timeout: float = START_TIMEOUT,
          progress=lambda _msg: None, sleep=None) -> Started:
    """Reuse a LocalStack answering on the endpoint, else run the compose service."""
    from tmctl.core.local import emulator

    probe = probe or emulator.probe
    answering = probe(target.endpoint_url)
    if answering is not None:
        if answering.name != emulator.LOCALSTACK:
            raise UsageError(f"{answering.name} {answering.version} already answers on {target.endpoint_url}",
                             "stop it with `tmctl local stop`, or pass another --endpoint-url for LocalStack")
        return Started(answering, None, True)
    if not target.is_loopback:
        raise UsageError(f"nothing answers on {target.endpoint_url}, and tmctl starts LocalStack only on localhost",
                         "use --endpoint-url http://localhost:<port>")
    spec = load_service(compose_file, port=target.port, env=env)  # the token check comes first: no Docker call
    client = client if client is not None else connect()
    container = run_container(client, spec, target.port, progress)
    progress(f"started container {container.name} ({spec.image}); waiting for its health endpoint")
    engine = wait_healthy(client, target, container, timeout=timeout, probe=probe, sleep=sleep)
    return Started(engine, container, False)


def stop(client, port: int, timeout: int = 10) -> Container | None:
    """Stop and remove the container tmctl started for this port (its state
    stays in the named volume). Returns it, or None."""
    container = find_container(client, port)
    if container is None:
        return None
    c = client.containers.get(container.id)
    if c.status == "running":
        c.stop(timeout=timeout)
    c.remove()
    return container


def client_if_available():
    """A connected Docker client, or None when there is no SDK or no engine
    (then no container of ours can be running): for `local stop|status`."""
    try:
        return connect(timeout=3.0)
    except DockerUnavailable:
        return None
