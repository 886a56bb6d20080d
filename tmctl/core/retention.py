"""Whether the engine keeps what `DeletionPolicy: Retain` keeps, asked before
`down` deletes a production-like stage on LocalStack.

LocalStack's legacy CloudFormation engine (PROVIDER_OVERRIDE_CLOUDFORMATION=
engine-legacy) accepts a Retain policy and deletes the resource with the stack
anyway; its default (v2) engine keeps it. Nothing the engine answers says which
engine runs before CloudFormation is used (/_localstack/health lists
`cloudformation` either way; /_localstack/plugins names the provider only once
loaded, and the names are LocalStack internals), so the question is answered by
doing it: a throwaway stack with one SSM parameter under `DeletionPolicy:
Retain`, deleted, then the parameter looked up, then removed. ~0.1 s on a warm
engine (measured against localstack-core 2026.3.0 on the host, both engines).
The answer is kept per engine session (LocalStack's /_localstack/info
`session_id`: a restart, possibly with another engine, asks again).

Only a definite answer refuses: a probe that cannot tell lets `down` go on."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from tmctl.core.contract import PRODUCTION_STAGES
from tmctl.core.errors import UsageError, error_code
from tmctl.core.wait import poll

PROBE_PREFIX = "tmctl-retain-probe-"
PARAMETER_PATH = "/tmctl/retain-probe/"
CACHE_FILE = "retain-probe.json"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Answer:
    honoured: bool | None  # None: the probe could not tell
    seconds: float
    detail: str = ""
    cached: bool = False


def probe_template(parameter: str) -> str:
    return json.dumps({"Resources": {"Kept": {
        "Type": "AWS::SSM::Parameter", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {"Name": parameter, "Type": "String", "Value": "kept if DeletionPolicy is honoured",
                       "Description": "tmctl: throwaway, removed by the probe that made it"}}}})


def _status(cfn, stack_id: str) -> str:
    """The stack's status ("GONE" when it is no longer described)."""
    try:
        return cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
    except ClientError as err:
        if error_code(err) == "ValidationError":
            return "GONE"
        raise


def _settle(cfn, stack_id: str, deadline: float) -> str:
    """The stack's status once not *_IN_PROGRESS, or as it is at the deadline."""
    return poll(lambda: _status(cfn, stack_id), lambda status: not status.endswith("_IN_PROGRESS"),
                timeout=max(0.0, deadline - time.monotonic()), interval=0.02)


def probe(cfn, ssm, *, timeout: float = TIMEOUT) -> Answer:
    """Deploy, delete, look: does a Retain resource outlive its stack? Leaves nothing behind."""
    started = time.monotonic()
    deadline = started + timeout
    suffix = uuid.uuid4().hex[:10]
    name, parameter = f"{PROBE_PREFIX}{suffix}", f"{PARAMETER_PATH}{suffix}"
    stack_id = None
    try:
        stack_id = cfn.create_stack(StackName=name, TemplateBody=probe_template(parameter))["StackId"]
        created = _settle(cfn, stack_id, deadline)
        if created != "CREATE_COMPLETE":
            return Answer(None, time.monotonic() - started, f"the probe stack ended {created}")
        cfn.delete_stack(StackName=stack_id)
        deleted = _settle(cfn, stack_id, deadline)
        if deleted not in {"DELETE_COMPLETE", "GONE"}:
            return Answer(None, time.monotonic() - started, f"the probe stack's delete ended {deleted}")
        try:
            ssm.get_parameter(Name=parameter)
            kept = True
        except ClientError as err:
            if error_code(err) != "ParameterNotFound":
                raise
            kept = False
        return Answer(kept, time.monotonic() - started)
    except (ClientError, BotoCoreError) as err:
        return Answer(None, time.monotonic() - started, f"{error_code(err) or type(err).__name__}: {err}"[:200])
    finally:
        with contextlib.suppress(ClientError, BotoCoreError):
            if stack_id is not None and _settle(cfn, stack_id, time.monotonic() + 5) not in {"GONE",
                                                                                           "DELETE_COMPLETE"}:
                cfn.delete_stack(StackName=stack_id)
        with contextlib.suppress(ClientError, BotoCoreError):
            ssm.delete_parameter(Name=parameter)


def honours_retain(cfn, ssm, cache: Path, session: str | None, *,
                   run: Callable[..., Answer] | None = None) -> Answer:
    """probe(), answered once per engine session (`session` None: not kept)."""
    known: dict = {}
    if session:
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(cache.read_text())
        if isinstance(known.get(session), bool):
            return Answer(known[session], 0.0, cached=True)
    answer = (run or probe)(cfn, ssm)
    if session and answer.honoured is not None:
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            known = {k: v for k, v in known.items() if isinstance(v, bool)}
            known[session] = answer.honoured
            tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps(dict(list(known.items())[-20:])))  # a few engine sessions, no more
            tmp.replace(cache)
    return answer


class RetainIgnored(UsageError):
    """`down` would delete what the stage's DeletionPolicy says to keep."""


def guard_down(cfn, ssm, *, stage: str, engine: str, version: str, stack_exists: bool, cache: Path,
               session: str | None, progress: Callable[[str], None] = lambda _m: None,
               run: Callable[..., Answer] | None = None) -> Answer | None:
    """Refuse `down` of a production-like stage on a LocalStack that ignores
    DeletionPolicy. Other stages, other engines, no stack: nothing asked (None)."""
    if stage.lower() not in PRODUCTION_STAGES or engine != "localstack" or not stack_exists:
        return None
    answer = honours_retain(cfn, ssm, cache, session, run=run)
    if answer.honoured is False:
        raise RetainIgnored(
            f"localstack {version} ignores DeletionPolicy (a Retain resource went with its stack, as LocalStack's "
            f"legacy CloudFormation engine does): `down` of {stage} would delete the tasks table it keeps: "
            "nothing was deleted",
            "restart LocalStack without PROVIDER_OVERRIDE_CLOUDFORMATION=engine-legacy (its default engine keeps "
            "them), or `tmctl snapshot save FILE` first and delete the stack yourself")
    if answer.honoured is None:
        progress(f"could not tell whether this engine keeps DeletionPolicy: Retain resources ({answer.detail}); "
                 "deleting as asked")
    return answer
