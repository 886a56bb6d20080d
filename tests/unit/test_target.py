"""tmctl.core.target.resolve_target: flag → environment → default, with the
environment passed in (never os.environ) so each case is explicit."""

from __future__ import annotations

import re

import pytest

from tmctl.core.errors import ExitCode, UsageError
from tmctl.core.target import DEFAULT_LOCAL_ENDPOINT, Clients, resolve_target

pytestmark = pytest.mark.unit


def test_defaults_point_at_aws_dev_with_the_region_left_to_boto3():
    target = resolve_target(env={})

    # No region given: None, so boto3's chain (the profile's region) decides, not tmctl
    assert (target.local, target.endpoint_url, target.region, target.profile, target.stage, target.app) == (
        False, None, None, None, "dev", "taskmanager")
    assert target.stack_name == "taskmanager-dev"
    assert target.describe() == "stack taskmanager-dev on AWS (region from the profile)"


def test_endpoint_flag_beats_every_environment_variable():
    env = {"TMCTL_ENDPOINT_URL": "http://localhost:4566", "AWS_ENDPOINT_URL": "http://localhost:4599"}

    target = resolve_target(endpoint_url="http://127.0.0.1:5000/", env=env)

    # and the trailing slash is dropped, so URLs built from it have one slash
    assert (target.local, target.endpoint_url, target.port) == (True, "http://127.0.0.1:5000", 5000)
    assert target.is_loopback


def test_tmctl_endpoint_env_implies_local():
    # An explicit endpoint means an emulator: no need for --local as well
    target = resolve_target(env={"TMCTL_ENDPOINT_URL": "http://emulator:4566"})

    assert (target.local, target.endpoint_url) == (True, "http://emulator:4566")
    assert not target.is_loopback


def test_tmctl_endpoint_beats_aws_endpoint_when_local():
    env = {"TMCTL_LOCAL": "1", "TMCTL_ENDPOINT_URL": "http://localhost:4566",
           "AWS_ENDPOINT_URL": "http://localhost:4599"}

    assert resolve_target(env=env).endpoint_url == "http://localhost:4566"


@pytest.mark.parametrize("local_env", ["1", "true", "YES", "on"])
def test_aws_endpoint_is_used_when_local_and_no_tmctl_endpoint(local_env):
    target = resolve_target(env={"TMCTL_LOCAL": local_env, "AWS_ENDPOINT_URL": "http://localhost:4599"})

    assert (target.local, target.endpoint_url) == (True, "http://localhost:4599")


def test_local_flag_without_any_endpoint_uses_the_default_emulator_and_no_profile():
    # Dummy credentials only ever go to an emulator: a profile is dropped when local
    target = resolve_target(local=True, profile="work", env={"AWS_PROFILE": "work"})

    assert (target.local, target.endpoint_url, target.profile) == (True, DEFAULT_LOCAL_ENDPOINT, None)


@pytest.mark.parametrize("falsy", ["0", "false", "", "no"])
def test_falsy_tmctl_local_is_aws(falsy):
    assert resolve_target(env={"TMCTL_LOCAL": falsy}).local is False


def test_profile_flag_beats_env_on_aws():
    assert resolve_target(env={"AWS_PROFILE": "env-profile"}).profile == "env-profile"
    assert resolve_target(profile="flag", env={"AWS_PROFILE": "env-profile"}).profile == "flag"


@pytest.mark.parametrize(("flag", "env", "want"), [
    (None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "eu-west-1"),  # AWS_REGION first
    (None, {"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
    (None, {"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),  # empty counts as unset
    ("ap-south-1", {"AWS_REGION": "eu-west-1"}, "ap-south-1"),  # the flag wins
])
def test_region_precedence(flag, env, want):
    assert resolve_target(region=flag, env=env).region == want


def test_stage_and_app_flag_beat_env():
    env = {"TMCTL_STAGE": "staging", "TMCTL_APP": "envapp"}

    assert resolve_target(env=env).stack_name == "envapp-staging"
    assert resolve_target(stage="qa", app="flagapp", env=env).stack_name == "flagapp-qa"


@pytest.mark.parametrize("url", ["localhost:4566", "ftp://localhost:4566", "http://", "not a url"])
def test_bad_endpoint_is_a_usage_error(url):
    with pytest.raises(UsageError) as caught:
        resolve_target(endpoint_url=url, env={})

    assert caught.value.exit_code == ExitCode.USAGE
    assert "http://localhost:4566" in caught.value.fix  # the message shows the form to use


@pytest.mark.parametrize("stage", ["Dev", "1dev", "de_v", "dev!", "-dev", "dev stage"])
def test_bad_stage_is_a_usage_error(stage):
    with pytest.raises(UsageError) as caught:
        resolve_target(stage=stage, env={})

    assert caught.value.exit_code == ExitCode.USAGE
    assert "--stage" in caught.value.fix


def test_bad_stage_from_env_is_also_refused():
    with pytest.raises(UsageError):
        resolve_target(env={"TMCTL_STAGE": "Prod"})


def test_bad_app_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        resolve_target(app="Task_Manager", env={})

    assert "--app" in caught.value.fix


def test_resolving_never_reads_os_environ_when_env_is_given(monkeypatch):
    monkeypatch.setenv("TMCTL_ENDPOINT_URL", "http://localhost:4566")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")

    target = resolve_target(env={})

    assert (target.local, target.region) == (False, None)


def _accepted(**kwargs) -> bool:
    try:
        resolve_target(env={}, **kwargs)
    except UsageError:
        return False
    return True


@pytest.mark.parametrize(("param", "value"), [
    ("Stage", "dev"), ("Stage", "prod-2"), ("Stage", "Dev"), ("Stage", "2dev"), ("Stage", "de_v"),
    ("AppName", "taskmanager"), ("AppName", "Task"),
    ("Stage", "d\u00e9v"), ("Stage", "s" * 16), ("Stage", "s" * 17), ("AppName", "a"),
    ("Stage", "pipeline"), ("Stage", "pipeline-2"), ("Stage", "x-pipeline"),
])
def test_stage_and_app_rules_match_the_template(template, param, value):
    # A name tmctl accepts must not be refused later by CloudFormation, mid-deploy.
    pattern = template["Parameters"][param]["AllowedPattern"]
    flag = {"Stage": "stage", "AppName": "app"}[param]

    assert _accepted(**{flag: value}) == bool(re.fullmatch(pattern, value))


def test_aws_target_clients_ignore_a_stray_aws_endpoint_url(monkeypatch):
    # GIVEN a shell left with AWS_ENDPOINT_URL from emulator work, and no --local
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    target = resolve_target()
    assert not target.local

    # WHEN tmctl builds a client for that target (no request is sent)
    client = Clients(target).client("sqs")

    # THEN it talks to AWS, as the target says
    assert client.meta.endpoint_url == "https://sqs.us-east-1.amazonaws.com"


# ------------------------------------------------------------------ the region from boto3's chain


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    """A shared config file with a `work` profile in eu-west-1 and a default
    profile with no region; no region in the environment. (The profile carries
    dummy keys: a named profile does not read keys from the environment.)"""
    config = tmp_path / "config"
    config.write_text("[default]\noutput = json\n\n[profile work]\nregion = eu-west-1\n"
                      "aws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    return config


def test_a_profiles_region_is_used_when_no_region_is_given(aws_config):
    # GIVEN `[profile work] region = eu-west-1` and no --region / AWS_REGION
    clients = Clients(resolve_target(profile="work", env={}))

    # WHEN tmctl builds its Session and a client (no request is sent)
    sqs = clients.client("sqs")

    # THEN everything — the client, the displayed target — is in eu-west-1
    assert sqs.meta.region_name == "eu-west-1"
    assert clients.target.region == "eu-west-1" == clients.region
    assert clients.target.describe() == "stack taskmanager-dev on AWS eu-west-1 (profile work)"


@pytest.mark.parametrize(("flag", "env"), [
    ("ap-south-1", {}),
    (None, {"AWS_REGION": "ap-south-1"}),
    (None, {"AWS_DEFAULT_REGION": "ap-south-1"}),
])
def test_an_explicit_region_beats_the_profiles(aws_config, flag, env):
    clients = Clients(resolve_target(profile="work", region=flag, env=env))

    assert clients.client("sqs").meta.region_name == "ap-south-1"
    assert clients.target.region == "ap-south-1"


def test_the_profile_from_aws_profile_brings_its_region(aws_config, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "work")

    assert Clients(resolve_target()).target.region == "eu-west-1"


def test_no_region_anywhere_is_a_usage_error_that_says_how_to_set_one(aws_config):
    clients = Clients(resolve_target(env={}))  # the default profile has no region

    with pytest.raises(UsageError) as caught:
        clients.target  # noqa: B018

    assert caught.value.exit_code == ExitCode.USAGE
    assert "no AWS region" in caught.value.message
    assert "--region" in caught.value.fix and "AWS_REGION" in caught.value.fix and "region =" in caught.value.fix


def test_an_emulator_target_keeps_a_default_region(aws_config):
    target = resolve_target(local=True, profile="work", env={})

    assert target.region == "us-east-1"
    assert Clients(target).client("sqs").meta.region_name == "us-east-1"


# ------------------------------------------------------------------ AWS mode on an emulator


def test_aws_mode_endpoint_is_an_aws_target_whose_calls_go_to_the_endpoint():
    target = resolve_target(env={"TMCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:4599/", "AWS_REGION": "us-east-1"})

    # AWS behaviour (not local: the change-set question, typed-name down, no shortcuts) …
    assert (target.local, target.endpoint_url) == (False, "http://127.0.0.1:4599")
    assert target.describe() == "stack taskmanager-dev on AWS us-east-1 via http://127.0.0.1:4599"
    # … and its calls sent there
    assert Clients(target).client("cloudformation").meta.endpoint_url == "http://127.0.0.1:4599"


def test_aws_mode_takes_credentials_from_the_chain_never_the_dummy_ones(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACHAIN")
    target = resolve_target(env={"TMCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:4599", "AWS_REGION": "us-east-1"})

    assert Clients(target).session.get_credentials().access_key == "AKIACHAIN"


def test_local_flags_beat_aws_mode():
    env = {"TMCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:4599"}

    assert resolve_target(local=True, env=env).endpoint_url == DEFAULT_LOCAL_ENDPOINT
    assert resolve_target(endpoint_url="http://127.0.0.1:5000", env=env).local


@pytest.mark.parametrize("emulator_env", [{"TMCTL_ENDPOINT_URL": "http://127.0.0.1:4566"}, {"TMCTL_LOCAL": "1"}])
def test_aws_mode_and_an_emulator_in_the_environment_is_a_usage_error(emulator_env):
    with pytest.raises(UsageError) as caught:
        resolve_target(env={"TMCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:4599", **emulator_env})

    assert "unset one" in caught.value.fix


def test_aws_mode_endpoint_must_be_a_url():
    with pytest.raises(UsageError):
        resolve_target(env={"TMCTL_AWS_ENDPOINT_URL": "localhost:4599"})


def test_a_stage_named_like_the_pipeline_stack_is_refused_before_any_call():
    # `tmctl --stage pipeline down --yes` would otherwise delete <app>-pipeline, the CI/CD stack.
    with pytest.raises(UsageError, match="reserved"):
        resolve_target(stage="pipeline", env={})
