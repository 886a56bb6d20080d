"""Where tmctl points: resolved once, here, from flags, then environment, then
defaults. Dummy credentials only ever for an emulator."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tmctl.core.errors import UsageError

if TYPE_CHECKING:
    import boto3

ENV_ENDPOINT = "TMCTL_ENDPOINT_URL"
ENV_AWS_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_LOCAL = "TMCTL_LOCAL"
ENV_STAGE = "TMCTL_STAGE"
ENV_APP = "TMCTL_APP"
ENV_STATE_DIR = "TMCTL_STATE_DIR"
ENV_PROJECT_DIR = "TMCTL_PROJECT_DIR"
ENV_PROFILE = "AWS_PROFILE"
ENV_REGION = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_LOCAL_ENDPOINT = "http://localhost:4566"
DEFAULT_REGION = "us-east-1"
DEFAULT_STAGE = "dev"
DEFAULT_APP = "taskmanager"
# The template's own AllowedPattern for Stage and AppName: refused here, not mid-deploy.
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
APP_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,20}$")
EMULATOR_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Target:
    local: bool
    endpoint_url: str | None
    region: str
    profile: str | None
    stage: str
    app: str = DEFAULT_APP
    state_dir: Path = field(default_factory=lambda: default_state_dir())

    @property
    def stack_name(self) -> str:
        return f"{self.app}-{self.stage}"

    @property
    def port(self) -> int:
        parsed = urlparse(self.endpoint_url or DEFAULT_LOCAL_ENDPOINT)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    @property
    def is_loopback(self) -> bool:
        host = urlparse(self.endpoint_url or "").hostname or ""
        return host in {"localhost", "127.0.0.1", "::1"}

    def describe(self) -> str:
        where = self.endpoint_url if self.local else f"AWS {self.region}" + (
            f" (profile {self.profile})" if self.profile else "")
        return f"stack {self.stack_name} on {where}"


def default_state_dir() -> Path:
    if os.environ.get(ENV_STATE_DIR):
        return Path(os.environ[ENV_STATE_DIR])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tmctl"


def resolve_target(*, local: bool | None = None, endpoint_url: str | None = None, region: str | None = None,
                   profile: str | None = None, stage: str | None = None, app: str | None = None,
                   env: dict[str, str] | None = None) -> Target:
    """Flag → environment → default. An explicit endpoint means an emulator."""
    env = os.environ if env is None else env
    endpoint = endpoint_url or env.get(ENV_ENDPOINT)
    is_local = bool(local) or _truthy(env.get(ENV_LOCAL)) or bool(endpoint)
    if is_local:
        endpoint = endpoint or env.get(ENV_AWS_ENDPOINT) or DEFAULT_LOCAL_ENDPOINT
        parsed = urlparse(endpoint)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise UsageError(f"endpoint {endpoint!r} is not a URL", "use a form like http://localhost:4566")
        endpoint = endpoint.rstrip("/")
    else:
        endpoint = None
    stage = stage or env.get(ENV_STAGE) or DEFAULT_STAGE
    app = app or env.get(ENV_APP) or DEFAULT_APP
    for value, name, pattern in ((stage, "stage", STAGE_PATTERN), (app, "app", APP_PATTERN)):
        if not pattern.fullmatch(value):
            raise UsageError(f"{name} {value!r} is not valid",
                             f"--{name} takes a lowercase letter, then lowercase letters, digits or '-' "
                             f"({pattern.pattern})")
    region = region or next((env[k] for k in ENV_REGION if env.get(k)), None) or DEFAULT_REGION
    return Target(local=is_local, endpoint_url=endpoint, region=region,
                  profile=None if is_local else (profile or env.get(ENV_PROFILE)), stage=stage, app=app)


class Clients:
    """boto3 clients for one target, built lazily from one Session. The only
    place tmctl imports boto3, so `tmctl --help` never pays for it."""

    def __init__(self, target: Target):
        self.target = target
        self._session: boto3.Session | None = None
        self._cache: dict[str, Any] = {}

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            if self.target.local:
                self._session = boto3.Session(region_name=self.target.region, **EMULATOR_CREDENTIALS)
            else:
                self._session = boto3.Session(region_name=self.target.region, profile_name=self.target.profile)
        return self._session

    def client(self, service: str):
        if service not in self._cache:
            from botocore.config import Config

            # On AWS, an AWS_ENDPOINT_URL left in the environment must not quietly
            # send "AWS" calls to an emulator: only an emulator target has an endpoint.
            config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3,
                            read_timeout=60, max_pool_connections=32,
                            ignore_configured_endpoint_urls=not self.target.local)
            self._cache[service] = self.session.client(service, endpoint_url=self.target.endpoint_url,
                                                       config=config)
        return self._cache[service]

    cloudformation = property(lambda self: self.client("cloudformation"))
    dynamodb = property(lambda self: self.client("dynamodb"))
    iam = property(lambda self: self.client("iam"))
    lambda_ = property(lambda self: self.client("lambda"))
    s3 = property(lambda self: self.client("s3"))
    sqs = property(lambda self: self.client("sqs"))
    ssm = property(lambda self: self.client("ssm"))
    stepfunctions = property(lambda self: self.client("stepfunctions"))
    sts = property(lambda self: self.client("sts"))


def project_dir() -> Path:
    """The checkout holding cloudformation/ and lambdas/: env, then cwd upwards, then the package's tree."""
    if os.environ.get(ENV_PROJECT_DIR):
        return Path(os.environ[ENV_PROJECT_DIR])
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (base / "cloudformation" / "template.yaml").is_file() and (base / "lambdas").is_dir():
            return base
    raise UsageError("cannot find the project's cloudformation/ and lambdas/",
                     f"run tmctl inside the checkout or set {ENV_PROJECT_DIR}")
