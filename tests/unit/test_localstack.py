"""`tmctl local start --engine localstack` against a fake Docker client: the
compose service becomes the container's arguments, the token goes from the
environment into the container only, health is waited for, and each missing
prerequisite (SDK, Docker, token) is one stderr line with its fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core.errors import BackendUnreachable, ExitCode, TmctlError, UsageError
from tmctl.core.local import localstack
from tmctl.core.local.emulator import Engine
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TOKEN = "ls-secret-token-123"  # noqa: S105 - a fake
CLI_ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TMCTL_LOCAL": ""}


# ------------------------------------------------------------------ a fake Docker SDK client


class FakeContainer:
    made = 0

    def __init__(self, name, image, labels, environment, ports, volumes, exits=False):
        FakeContainer.made += 1
        self.name, self.id, self.labels = name, f"{FakeContainer.made:064x}", labels
        self.attrs = {"Config": {"Image": image}}
        self.environment, self.ports, self.volumes = environment, ports, volumes
        self.status, self.exits, self.removed = "running", exits, False

    def reload(self):
        if self.exits:
            self.status = "exited"

    def logs(self, tail=None):
        return b"starting\nLicense activation failed! Reason: no credentials\n"

    def stop(self, timeout=None):
        self.status = "exited"

    def remove(self, force=False):
        self.removed = True


class FakeContainers:
    def __init__(self, exits=False):
        self.created: list[FakeContainer] = []
        self.exits = exits

    def run(self, image, *, name, detach, environment, ports, volumes, labels):
        assert detach
        c = FakeContainer(name, image, labels, environment, ports, volumes, exits=self.exits)
        self.created.append(c)
        return c

    def list(self, all=False, filters=None):  # noqa: A002 - the SDK's own name
        wanted = set(filters["label"])
        return [c for c in self.created if not c.removed
                and wanted <= {f"{k}={v}" for k, v in c.labels.items()}]

    def get(self, cid):
        return next(c for c in self.created if c.id == cid)


class FakeImages:
    def __init__(self, present: bool):
        self.present, self.pulled = present, []

    def get(self, image):
        from docker.errors import ImageNotFound

        if not self.present:
            raise ImageNotFound(image)

    def pull(self, repository, tag):
        self.pulled.append((repository, tag))
        self.present = True


class FakeDocker:
    def __init__(self, *, image_present=True, exits=False):
        self.containers = FakeContainers(exits)
        self.images = FakeImages(image_present)


def target(port=4566):
    return resolve_target(endpoint_url=f"http://localhost:{port}", env={})


class Health:
    """The engine's health endpoint: nothing, then LocalStack after `after` probes."""

    def __init__(self, after=1, engine="localstack"):
        self.calls, self.after, self.engine = 0, after, engine

    def __call__(self, endpoint, timeout=0.5):
        self.calls += 1
        return Engine(self.engine, "4.9.2", endpoint) if self.calls > self.after else None


# ------------------------------------------------------------------ the compose file


def test_the_compose_service_becomes_the_run_arguments_on_the_targets_port():
    spec = localstack.load_service(COMPOSE, port=4600, env={localstack.TOKEN_ENV: TOKEN})
    assert spec.image.startswith("localstack/localstack-pro:"), "pro: the HTTP API needs a paid plan"
    assert spec.image.rsplit(":", 1)[1] not in {"", "latest"}, "pinned to a version known to accept the template"
    assert spec.environment[localstack.TOKEN_ENV] == TOKEN
    assert spec.environment["ENFORCE_IAM"] == "1"
    assert spec.ports == [("127.0.0.1", 4600, 4566)], "loopback only, on the endpoint's port"
    assert spec.volumes["/var/run/docker.sock"]["bind"] == "/var/run/docker.sock"
    assert spec.labels == {localstack.LABEL_ENGINE: "localstack", localstack.LABEL_PORT: "4600"}


@pytest.mark.parametrize("environment", [
    "    environment:\n      - LOCALSTACK_AUTH_TOKEN\n      - WRITTEN=${OTHER}$$x\n",  # list form, no "="
    "    environment:\n      LOCALSTACK_AUTH_TOKEN:\n      WRITTEN: ${OTHER}$$x\n",  # map form, null value
])
def test_a_value_taken_from_the_environment_is_not_interpolated_again(tmp_path, environment):
    # GIVEN a token with `$` in it, which compose passes through as it is
    token = "ls-a$b${c}$$d"  # noqa: S105 - a fake
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  localstack:\n    image: localstack/localstack-pro:latest\n" + environment)
    # WHEN the service is loaded
    spec = localstack.load_service(compose, port=4566, env={localstack.TOKEN_ENV: token, "OTHER": "o"})
    # THEN the token is byte for byte the environment's, while what the file wrote is still interpolated
    assert spec.environment == {localstack.TOKEN_ENV: token, "WRITTEN": "o$x"}


def test_a_missing_token_is_named_with_its_fix_and_never_reaches_docker():
    with pytest.raises(TmctlError) as caught:
        localstack.load_service(COMPOSE, port=4566, env={})
    assert localstack.TOKEN_ENV in caught.value.message and "export" in caught.value.fix


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A}", {"A": "x"}, "x"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("$$A and $A", {"A": "x"}, "$A and x"),
    ("${A:?need A}", {"A": "v"}, "v"),
])
def test_interpolation_follows_compose(text, env, expected):
    assert localstack.interpolate(text, env) == expected


def test_a_missing_required_variable_is_named_not_valued():
    with pytest.raises(TmctlError, match="B is not set: need B"):
        localstack.interpolate("${B:?need B}", {"B": ""})


# ------------------------------------------------------------------ start / stop / find


def test_start_runs_the_service_and_waits_for_health():
    docker = FakeDocker(image_present=False)
    started = localstack.start(target(), COMPOSE, client=docker, env={localstack.TOKEN_ENV: TOKEN},
                               probe=Health(after=3), sleep=lambda _s: None)
    assert (started.engine.name, started.reused) == ("localstack", False)
    (c,) = docker.containers.created
    assert c.name == "tmctl-localstack-4566"
    assert c.environment[localstack.TOKEN_ENV] == TOKEN
    assert c.ports == {"4566/tcp": ("127.0.0.1", 4566)}
    assert docker.images.pulled == [("localstack/localstack-pro", "4.14.0")], "the pinned tag, not latest"


def test_a_localstack_already_answering_is_reused_without_docker():
    started = localstack.start(target(), COMPOSE, client=None, env={}, probe=Health(after=0))
    assert started.reused and started.container is None


def test_a_ministack_on_the_port_is_refused_with_the_fix():
    with pytest.raises(UsageError, match="ministack 4.9.2 already answers") as caught:
        localstack.start(target(), COMPOSE, client=FakeDocker(), env={localstack.TOKEN_ENV: TOKEN},
                         probe=Health(after=0, engine="ministack"))
    assert "tmctl local stop" in caught.value.fix


def test_a_container_that_exits_fails_fast_with_its_last_log_line():
    docker = FakeDocker(exits=True)
    with pytest.raises(TmctlError, match="exited: License activation failed"):
        localstack.start(target(), COMPOSE, client=docker, env={localstack.TOKEN_ENV: TOKEN},
                         probe=Health(after=10**6), sleep=lambda _s: None, timeout=5)


def test_no_health_within_the_timeout_is_unreachable():
    with pytest.raises(BackendUnreachable, match="did not answer"):
        localstack.start(target(), COMPOSE, client=FakeDocker(), env={localstack.TOKEN_ENV: TOKEN},
                         probe=Health(after=10**6), timeout=0.01)


def test_stop_removes_only_the_container_of_this_port():
    docker = FakeDocker()
    for port in (4566, 4600):
        localstack.run_container(docker, localstack.load_service(COMPOSE, port=port,
                                                                 env={localstack.TOKEN_ENV: TOKEN}), port)
    stopped = localstack.stop(docker, 4600)
    assert stopped.name == "tmctl-localstack-4600"
    assert localstack.find_container(docker, 4600) is None
    assert localstack.find_container(docker, 4566).status == "running"
    assert localstack.stop(docker, 4600) is None


def test_starting_again_replaces_the_old_container():
    docker = FakeDocker()
    spec = localstack.load_service(COMPOSE, port=4566, env={localstack.TOKEN_ENV: TOKEN})
    first = localstack.run_container(docker, spec, 4566)
    localstack.run_container(docker, dataclasses.replace(spec, environment={**spec.environment, "X": "1"}), 4566)
    assert docker.containers.get(first.id).removed
    assert localstack.find_container(docker, 4566).id != first.id


# ------------------------------------------------------------------ the CLI: one line and the fix


def test_without_docker_the_cli_says_so_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(localstack.TOKEN_ENV, TOKEN)
    monkeypatch.setattr("tmctl.core.local.emulator.probe", lambda *a, **k: None)
    monkeypatch.setattr(localstack, "connect", _no_docker)
    result = CliRunner().invoke(app, ["local", "start", "--engine", "localstack"],
                                env={**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)})
    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.stderr.count("\n") == 1 and "no Docker engine" in result.stderr and "fix:" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def _no_docker(timeout=5.0):
    raise localstack.DockerUnavailable("no Docker engine answers on unix:///var/run/docker.sock",
                                       localstack.NO_DOCKER_FIX)


def test_without_the_sdk_the_cli_says_how_to_install_it(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_docker_package(name, *args, **kwargs):
        if name == "docker" or name.startswith("docker."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv(localstack.TOKEN_ENV, TOKEN)
    monkeypatch.setattr("tmctl.core.local.emulator.probe", lambda *a, **k: None)
    monkeypatch.setattr(builtins, "__import__", no_docker_package)
    result = CliRunner().invoke(app, ["local", "start", "--engine", "localstack"],
                                env={**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)})
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and "tmctl[localstack]" in result.stderr


def test_without_a_token_the_cli_says_so_before_asking_docker(monkeypatch, tmp_path):
    monkeypatch.delenv(localstack.TOKEN_ENV, raising=False)
    monkeypatch.setattr("tmctl.core.local.emulator.probe", lambda *a, **k: None)
    monkeypatch.setattr(localstack, "connect", lambda **k: pytest.fail("Docker asked before the token check"))
    result = CliRunner().invoke(app, ["local", "start", "--engine", "localstack"],
                                env={**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)})
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr.count("\n") == 1 and "LOCALSTACK_AUTH_TOKEN is not set" in result.stderr


def test_the_cli_starts_and_stops_the_container(monkeypatch, tmp_path):
    docker = FakeDocker()
    health = Health(after=2)
    monkeypatch.setenv(localstack.TOKEN_ENV, TOKEN)
    monkeypatch.setattr("tmctl.core.local.emulator.probe", health)
    monkeypatch.setattr("tmctl.core.wait.time.sleep", lambda _s: None)
    monkeypatch.setattr(localstack, "connect", lambda **k: docker)
    env = {**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)}
    started = CliRunner().invoke(app, ["local", "start", "--engine", "localstack", "-o", "json"], env=env)
    assert started.exit_code == 0, started.stderr
    assert '"container": "tmctl-localstack-4566"' in started.stdout and TOKEN not in started.stdout
    status = CliRunner().invoke(app, ["local", "status", "-o", "json"], env=env)
    assert status.exit_code == 0 and '"status": "running"' in status.stdout
    stopped = CliRunner().invoke(app, ["local", "stop"], env=env)
    assert stopped.exit_code == 0 and "removed container tmctl-localstack-4566" in stopped.stderr
    assert docker.containers.created[0].removed


def test_the_default_engine_is_still_the_embedded_one(monkeypatch, tmp_path):
    seen = []
    from tmctl.core.local.emulator import Launch

    monkeypatch.setattr("tmctl.core.local.emulator.launch",
                        lambda t, **k: seen.append(t) or Launch(t, 1.0, engine=Engine("ministack", "1", "")))
    monkeypatch.setattr(localstack, "start", lambda *a, **k: pytest.fail("LocalStack started by default"))
    result = CliRunner().invoke(app, ["local", "start", "-o", "json"],
                                env={**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 0 and len(seen) == 1
