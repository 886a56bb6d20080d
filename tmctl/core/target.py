"""Where tmctl points: resolved once, here, from flags, then environment, then
defaults. Dummy credentials only ever for an emulator.

Three kinds of target:

- an emulator (`--local`, `--endpoint-url`, TMCTL_ENDPOINT_URL): dummy
  credentials, a default region, the dev loop's shortcuts;
- AWS: credentials *and region* from boto3's own chain (`--profile`/AWS_PROFILE,
  the profile's `region`, instance roles, SSO, …); tmctl passes a region only
  when `--region`, AWS_REGION or AWS_DEFAULT_REGION gives one;
- AWS mode on an emulator (TMCTL_AWS_ENDPOINT_URL): an AWS target in every
  respect — the credential and region chain, the change-set question, the
  typed-name `down`, no emulator-only shortcuts — whose calls go to the given
  endpoint. It exists so the AWS path can be tested against the embedded
  emulator without faking AWS (tests/integration/test_aws_path.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tmctl.core import settings
from tmctl.core.errors import UsageError

if TYPE_CHECKING:
    import boto3

ENV_ENDPOINT = settings.ENDPOINT_URL.name
ENV_AWS_MODE_ENDPOINT = settings.AWS_MODE_ENDPOINT_URL.name  # AWS behaviour, calls sent to this endpoint (tests)
ENV_AWS_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_LOCAL = settings.LOCAL.name
ENV_STAGE = settings.STAGE.name
ENV_APP = settings.APP.name
ENV_STATE_DIR = settings.STATE_DIR.name
ENV_PROJECT_DIR = settings.PROJECT_DIR.name
ENV_PROFILE = "AWS_PROFILE"
ENV_REGION = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_LOCAL_ENDPOINT = "http://localhost:4566"
DEFAULT_REGION = "us-east-1"
DEFAULT_STAGE = settings.STAGE.default
DEFAULT_APP = settings.APP.default
# The template's own AllowedPattern for Stage and AppName: refused here, not mid-deploy.
# Not "pipeline…": <app>-pipeline is the CI/CD stack (`tmctl pipeline`), never a stage.
STAGE_PATTERN = re.compile(r"^(?!pipeline)[a-z][a-z0-9-]{0,15}$")
APP_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,20}$")
EMULATOR_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Target:
    local: bool
    # An emulator's endpoint; on AWS None, or TMCTL_AWS_ENDPOINT_URL in AWS mode.
    endpoint_url: str | None
    # None on AWS until the boto3 Session has resolved it (Clients.target).
    region: str | None
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
        if self.local:
            where = self.endpoint_url
        else:
            where = f"AWS {self.region or '(region from the profile)'}"
            where += f" (profile {self.profile})" if self.profile else ""
            where += f" via {self.endpoint_url}" if self.endpoint_url else ""
        return f"stack {self.stack_name} on {where}"


def default_state_dir() -> Path:
    if settings.STATE_DIR.get():
        return Path(settings.STATE_DIR.get())
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tmctl"


def _checked_url(endpoint: str) -> str:
    parsed = urlparse(endpoint)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise UsageError(f"endpoint {endpoint!r} is not a URL", "use a form like http://localhost:4566")
    return endpoint.rstrip("/")


def resolve_target(*, local: bool | None = None, endpoint_url: str | None = None, region: str | None = None,
                   profile: str | None = None, stage: str | None = None, app: str | None = None,
                   env: dict[str, str] | None = None) -> Target:
    """Flag → environment → default. An explicit endpoint means an emulator;
    TMCTL_AWS_ENDPOINT_URL means AWS behaviour sent to an endpoint. On AWS the
    region stays None unless given: boto3's chain (the profile) decides."""
    env = os.environ if env is None else env
    aws_mode = env.get(ENV_AWS_MODE_ENDPOINT) if not (local or endpoint_url) else None
    if aws_mode and (env.get(ENV_ENDPOINT) or _truthy(env.get(ENV_LOCAL))):
        raise UsageError(f"{ENV_AWS_MODE_ENDPOINT} (AWS mode) and {ENV_ENDPOINT}/{ENV_LOCAL} (emulator) are both set",
                         "unset one of them, or pass --local to mean the emulator")
    endpoint = endpoint_url or (None if aws_mode else env.get(ENV_ENDPOINT))
    is_local = bool(local) or bool(endpoint) or (not aws_mode and _truthy(env.get(ENV_LOCAL)))
    if is_local:
        endpoint = _checked_url(endpoint or env.get(ENV_AWS_ENDPOINT) or DEFAULT_LOCAL_ENDPOINT)
    else:
        endpoint = _checked_url(aws_mode) if aws_mode else None
    stage = stage or env.get(ENV_STAGE) or DEFAULT_STAGE
    app = app or env.get(ENV_APP) or DEFAULT_APP
    for value, name, pattern in ((stage, "stage", STAGE_PATTERN), (app, "app", APP_PATTERN)):
        if not pattern.fullmatch(value):
            if name == "stage" and value.startswith("pipeline"):
                raise UsageError(f"stage {value!r} is reserved: {app}-{value} would be the CI/CD pipeline's stack",
                                 "pick another stage name; the pipeline itself is `tmctl pipeline up|status`")
            raise UsageError(f"{name} {value!r} is not valid",
                             f"--{name} takes a lowercase letter, then lowercase letters, digits or '-' "
                             f"({pattern.pattern})")
    region = region or next((env[k] for k in ENV_REGION if env.get(k)), None)
    if is_local:
        region = region or DEFAULT_REGION  # an emulator has no profile to ask
    return Target(local=is_local, endpoint_url=endpoint, region=region,
                  profile=None if is_local else (profile or env.get(ENV_PROFILE)), stage=stage, app=app)


NO_REGION_FIX = ("pass --region, set AWS_REGION, or add `region = eu-west-1` (say) to the profile in "
                 "~/.aws/config (`aws configure set region eu-west-1 --profile NAME`)")


_LOADER: Any = None  # botocore's data loader, shared by every Session this process makes


def _botocore_session():
    """A fresh botocore session (its own credentials and config) reading service
    models through one shared loader: each new session would otherwise parse
    endpoints.json and every service model again (~60 ms a session, ~40 ms a
    client). Sessions are per target; `tmctl dev` and the tests make many."""
    import botocore.session

    global _LOADER
    session = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    return session


def _dedupe_search_paths(core) -> None:
    """boto3 adds its own data directory to the loader on every Session: once is enough."""
    paths = core.get_component("data_loader").search_paths
    paths[:] = list(dict.fromkeys(paths))


class Clients:
    """boto3 clients for one target, built lazily from one Session. The only
    place tmctl imports boto3, so `tmctl --help` never pays for it."""

    def __init__(self, target: Target):
        self._target = target
        self._session: boto3.Session | None = None
        self._cache: dict[str, Any] = {}

    @property
    def target(self) -> Target:
        """The target with the region the Session resolved: what every display,
        bucket name and ARN must use (an AWS profile's region included)."""
        if self._target.region is None:
            self._target = replace(self._target, region=self.session.region_name)
        return self._target

    @property
    def region(self) -> str:
        return self.target.region  # type: ignore[return-value] - resolved above, or UsageError

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            core = _botocore_session()
            if self._target.local:
                session = boto3.Session(region_name=self._target.region, botocore_session=core,
                                        **EMULATOR_CREDENTIALS)
            else:
                # region_name None: boto3's chain decides (the profile's region, AWS_DEFAULT_REGION, …)
                session = boto3.Session(region_name=self._target.region, profile_name=self._target.profile,
                                        botocore_session=core)
                if not session.region_name:
                    profile = f"profile {self._target.profile!r}" if self._target.profile else "the default profile"
                    raise UsageError(f"no AWS region: none given and {profile} has none", NO_REGION_FIX)
            _dedupe_search_paths(core)
            self._session = session
        return self._session

    def client(self, service: str):
        if service not in self._cache:
            from botocore.config import Config

            # On AWS, an AWS_ENDPOINT_URL left in the environment must not quietly
            # send "AWS" calls to an emulator: only an emulator target has an endpoint.
            # (AWS mode's TMCTL_AWS_ENDPOINT_URL is an explicit endpoint, not a configured one.)
            config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3,
                            read_timeout=60, max_pool_connections=32,
                            ignore_configured_endpoint_urls=not self._target.local)
            self._cache[service] = self.session.client(service, endpoint_url=self._target.endpoint_url,
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
