"""Deploy the stack: artifacts to a private bucket (only what changed), then a
change set, executed and followed to a final status with its events."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError

from tmctl.core.errors import DeployFailed, from_client_error
from tmctl.core.limits import Machine, local_limits
from tmctl.core.package import Artifact
from tmctl.core.stack import describe_stack
from tmctl.core.target import Target
from tmctl.core.wait import pauses

TEMPLATE_FILE = "cloudformation/template.yaml"
CAPABILITIES = ["CAPABILITY_IAM"]
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
REPLACE_FIRST = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED"}
POLL_FIRST, POLL_MAX = 0.02, 3.0

class Progress(Protocol):
    """Where deploy narrates. `detail=True` marks the routine lines (each change,
    each stack event) a terminal may fold into one live line; the rest must be shown."""

    def __call__(self, message: str, *, detail: bool = False) -> None: ...


def no_progress(message: str, *, detail: bool = False) -> None:
    return None


@dataclass
class DeployResult:
    stack_name: str
    changed: bool
    status: str
    changes: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def artifact_bucket(sts, target: Target) -> tuple[str, str]:
    """(bucket, owning account): one private bucket per account and region."""
    account = sts.get_caller_identity()["Account"]
    return f"tmctl-artifacts-{account}-{target.region}", account


ARTIFACT_DAYS = 90  # artifacts are copied into Lambda at deploy; old ones only serve rollbacks


def ensure_bucket(s3, bucket: str, region: str, owner: str) -> bool:
    """Create the artifact bucket once: private, encrypted, old artifacts expired.
    Every call names the expected owner, so a same-named bucket in another
    account is refused rather than trusted with our code."""
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
        return False
    except ClientError as err:
        if err.response["Error"]["Code"] not in {"404", "NoSuchBucket", "NotFound"}:
            raise from_client_error(err, f"artifact bucket {bucket}") from err
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)
    s3.put_public_access_block(Bucket=bucket, ExpectedBucketOwner=owner, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ExpectedBucketOwner=owner, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, ExpectedBucketOwner=owner, LifecycleConfiguration={
        "Rules": [{"ID": "expire-old-artifacts", "Status": "Enabled", "Filter": {"Prefix": ""},
                   "Expiration": {"Days": ARTIFACT_DAYS},
                   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    return True


def upload_artifacts(s3, bucket: str, owner: str, artifacts: list[Artifact]) -> list[str]:
    """Upload what the bucket lacks; keys are content hashes, so present = same bytes."""
    uploaded = []
    for art in artifacts:
        try:
            s3.head_object(Bucket=bucket, Key=art.key, ExpectedBucketOwner=owner)
            continue
        except ClientError as err:
            if err.response["Error"]["Code"] not in {"404", "NoSuchKey", "NotFound"}:
                raise from_client_error(err, f"artifact {art.key}") from err
        s3.put_object(Bucket=bucket, Key=art.key, Body=art.path.read_bytes(), ChecksumAlgorithm="SHA256",
                      ExpectedBucketOwner=owner)
        uploaded.append(art.key)
    return uploaded


# The same template everywhere; on an emulator some knobs take local values.
# RetryBaseSeconds 1: a poison event is in the DLQ ~3 s after its POST (1 + 2 s
# of back-off, none after the last receive) instead of ~6 s with AWS's 2 + 4 s.
# The concurrency limits come from the machine (tmctl/core/limits.py).
LOCAL_PARAMETERS = {"RetryBaseSeconds": "1"}


def local_parameters(machine: Machine | None = None) -> dict[str, str]:
    return {**local_limits(machine or Machine.this()), **LOCAL_PARAMETERS}


def stack_parameters(target: Target, bucket: str, artifacts: list[Artifact],
                     overrides: dict[str, str] | None = None) -> dict[str, str]:
    params = {"AppName": target.app, "Stage": target.stage, "ArtifactBucket": bucket}
    params.update({a.parameter: a.key for a in artifacts})
    if target.local:
        params.update(local_parameters())
    params.update(overrides or {})
    return params


def is_unchanged(cfn, stack: dict | None, template_body: str, params: dict[str, str]) -> bool:
    """Same template text and same parameter values as deployed: nothing to do,
    decided without a change set (the fast path of a no-change `up`)."""
    if stack is None or stack["StackStatus"] not in TERMINAL_OK | {"UPDATE_ROLLBACK_COMPLETE"}:
        return False
    deployed = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if any(deployed.get(k) != v for k, v in params.items()):
        return False
    body = cfn.get_template(StackName=stack["StackName"], TemplateStage="Original")["TemplateBody"]
    return body == template_body


def deploy(cfn, target: Target, template_body: str, params: dict[str, str], *,
           progress: Progress = no_progress, timeout: float = 900) -> DeployResult:
    started = time.monotonic()
    stack = describe_stack(cfn, target)
    if is_unchanged(cfn, stack, template_body, params):
        return DeployResult(target.stack_name, False, stack["StackStatus"], seconds=time.monotonic() - started)
    if stack is not None and stack["StackStatus"] in REPLACE_FIRST:
        progress(f"stack is {stack['StackStatus']}; deleting it before creating it again")
        delete_stack(cfn, target, progress=progress)
        stack = None
    change_type = "CREATE" if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
    name = f"tmctl-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    progress(f"creating change set ({change_type.lower()})")
    try:
        cs = cfn.create_change_set(
            StackName=target.stack_name, ChangeSetName=name, ChangeSetType=change_type,
            TemplateBody=template_body, Capabilities=CAPABILITIES,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Tags=[{"Key": "app", "Value": target.app}, {"Key": "stage", "Value": target.stage},
                  {"Key": "managed-by", "Value": "tmctl"}],
        )
    except ClientError as err:
        raise DeployFailed(f"CloudFormation refused the change set: {err.response['Error'].get('Message', err)}",
                           "fix the template or parameters; `cfn-lint cloudformation/template.yaml` helps") from err
    described = wait_change_set(cfn, cs["Id"])
    if described["Status"] == "FAILED":
        # AWS's shape for "nothing to change": an UPDATE that FAILED, not executable, with no changes.
        if change_type == "UPDATE" and not described.get("Changes") and \
                described.get("ExecutionStatus") in {"UNAVAILABLE", None}:
            cfn.delete_change_set(ChangeSetName=cs["Id"])
            return DeployResult(target.stack_name, False, stack["StackStatus"], seconds=time.monotonic() - started)
        if change_type == "CREATE":
            cfn.delete_stack(StackName=target.stack_name)  # the empty REVIEW_IN_PROGRESS shell
        raise DeployFailed(f"change set failed: {described.get('StatusReason', '?')}",
                           "fix the template or parameters; `cfn-lint cloudformation/template.yaml` helps")
    changes = [c["ResourceChange"] for c in described.get("Changes", []) if "ResourceChange" in c]
    for c in changes:
        progress(f"{c.get('Action', '?'):<7} {c.get('LogicalResourceId')} ({c.get('ResourceType')})", detail=True)
    since = time.time() - 1
    cfn.execute_change_set(ChangeSetName=cs["Id"])
    status, events = follow_stack(cfn, target.stack_name, since, progress, timeout)
    result = DeployResult(target.stack_name, True, status, changes=changes, seconds=time.monotonic() - started)
    if status not in TERMINAL_OK:
        reason = first_failure(events)
        raise DeployFailed(f"deploy of {target.stack_name} ended {status}" + (f": {reason}" if reason else ""),
                           "see `tmctl status` and the stack events above")
    return result


def _pauses():
    """Poll quickly first (an emulator settles in milliseconds), then back off to AWS's pace."""
    return pauses(POLL_FIRST, POLL_MAX)


def wait_change_set(cfn, change_set_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        described = cfn.describe_change_set(ChangeSetName=change_set_id)
        if described["Status"] in {"CREATE_COMPLETE", "FAILED"}:
            return described
        if time.monotonic() > deadline:
            raise DeployFailed("the change set did not finish creating in time")
        time.sleep(pause)


def follow_stack(cfn, stack_name: str, since: float, progress: Progress, timeout: float) -> tuple[str, list[dict]]:
    """Poll until the stack settles, reporting each new event once."""
    seen: set[str] = set()
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        fresh = []
        for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name):
            stop = False
            for ev in page["StackEvents"]:
                if ev["Timestamp"].timestamp() < since:
                    stop = True
                    break
                if ev["EventId"] not in seen:
                    seen.add(ev["EventId"])
                    fresh.append(ev)
            if stop:
                break
        for ev in reversed(fresh):
            events.append(ev)
            reason = f" — {ev['ResourceStatusReason']}" if ev.get("ResourceStatusReason") else ""
            progress(f"{ev['ResourceStatus']:<20} {ev['LogicalResourceId']}{reason}",
                     detail=not ev["ResourceStatus"].endswith("_FAILED"))
        if not status.endswith("_IN_PROGRESS"):
            return status, events
        if time.monotonic() > deadline:
            raise DeployFailed(f"{stack_name} still {status} after {timeout:.0f}s")
        time.sleep(pause)
    raise AssertionError("unreachable")


def first_failure(events: list[dict]) -> str | None:
    for ev in events:
        if ev["ResourceStatus"].endswith("_FAILED") and ev.get("ResourceStatusReason"):
            return f"{ev['LogicalResourceId']}: {ev['ResourceStatusReason']}"
    return None


def delete_stack(cfn, target: Target, *, progress: Progress = no_progress, timeout: float = 900) -> bool:
    if describe_stack(cfn, target) is None:
        return False
    since = time.time() - 1
    cfn.delete_stack(StackName=target.stack_name)
    try:
        status, events = follow_stack(cfn, target.stack_name, since, progress, timeout)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ValidationError":  # gone: CloudFormation's "does not exist"
            return True
        raise
    if status == "DELETE_FAILED":
        raise DeployFailed(f"delete of {target.stack_name} failed: {first_failure(events) or '?'}")
    return True


# ------------------------------------------------------------------ emulator adaptation

def _cfn_yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, suffix, node):
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    return Loader


def load_template(path: Path) -> dict:
    import yaml

    return yaml.load(path.read_text(), Loader=_cfn_yaml_loader())  # noqa: S506 - SafeLoader subclass


def declared_concurrency(template: dict, params: dict[str, str]) -> dict[str, int | None]:
    """Logical function id → ReservedConcurrentExecutions the template declares
    with these parameters (None: declared, but resolves to no reservation)."""
    defaults = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    values = {**defaults, **params}
    conditions = template.get("Conditions", {})
    out: dict[str, int | None] = {}
    for logical, res in template.get("Resources", {}).items():
        if res.get("Type") != "AWS::Lambda::Function" or "ReservedConcurrentExecutions" not in res.get(
                "Properties", {}):
            continue
        value = _evaluate(res["Properties"]["ReservedConcurrentExecutions"], values, conditions)
        out[logical] = None if value in (None, "") else int(value)
    return out


def _evaluate(node, values: dict[str, str], conditions: dict):
    """The few intrinsics a limit uses: Ref (AWS::NoValue → None), Fn::If,
    Fn::Equals, Fn::Not, and named conditions."""
    if not isinstance(node, dict) or len(node) != 1:
        return node
    (fn, arg), = node.items()
    if fn == "Ref":
        return None if arg == "AWS::NoValue" else values.get(arg)
    if fn == "Condition":
        return _evaluate(conditions[arg], values, conditions)
    if fn == "Fn::If":
        name, then, otherwise = arg
        return _evaluate(then if _evaluate(conditions[name], values, conditions) else otherwise, values, conditions)
    if fn == "Fn::Equals":
        a, b = (_evaluate(x, values, conditions) for x in arg)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not _evaluate(arg[0], values, conditions)
    raise ValueError(f"unsupported intrinsic in a concurrency limit: {fn}")


def apply_declared_concurrency(cfn, lam, target: Target, template: dict, params: dict[str, str]) -> list[str]:
    """MiniStack's CloudFormation ignores ReservedConcurrentExecutions; the
    limits are what keeps a laptop from spawning hundreds of workers, so set
    them with the Lambda API where the engine left them otherwise."""
    wanted = declared_concurrency(template, params)
    if not wanted:
        return []
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for page in cfn.get_paginator("list_stack_resources").paginate(StackName=target.stack_name)
                for r in page["StackResourceSummaries"]}
    applied = []
    for logical, limit in wanted.items():
        name = physical.get(logical)
        if not name:
            continue
        current = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        if current == limit:
            continue
        if limit is None:
            lam.delete_function_concurrency(FunctionName=name)
            applied.append(f"{name}=unreserved")
        else:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=limit)
            applied.append(f"{name}={limit}")
    return applied


def warm_functions(lam, names: list[str]) -> dict[str, float]:
    """Invoke each function with {"warmup": true} (handlers answer at once), in
    parallel, so the first real tasks do not pay the cold starts."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> tuple[str, float]:
        t0 = time.perf_counter()
        lam.invoke(FunctionName=name, Payload=json.dumps({"warmup": True}).encode())
        return name, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(pool.map(one, names))
