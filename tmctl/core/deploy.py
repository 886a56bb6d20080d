"""Deploy the stack: artifacts to a private bucket (only what changed), then a
change set, executed and followed to a final status with its events."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError

from tmctl.core import failure
from tmctl.core.errors import AUTH_CODES, DeployFailed, TmctlError, error_code, from_client_error
from tmctl.core.local.limits import Machine, local_limits
from tmctl.core.package import Artifact
from tmctl.core.render import for_emulator, inactive, parameter_values
from tmctl.core.stack import deployed_parameters, describe_stack
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


@dataclass(frozen=True)
class ResourceChange:
    """One row of a change set: what CloudFormation will do to one resource."""

    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str = ""  # True | False | Conditional on a Modify; "" otherwise
    physical_id: str = ""

    @classmethod
    def from_api(cls, rc: dict) -> ResourceChange:
        return cls(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"),
                   rc.get("Replacement", "") if rc.get("Action") == "Modify" else "",
                   rc.get("PhysicalResourceId", "") or "")

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "logicalId": self.logical_id, "type": self.resource_type,
                "replacement": self.replacement, "physicalId": self.physical_id}


@dataclass
class ChangeSet:
    """A change set created and described, not yet executed. `id` None: nothing to change."""

    stack_name: str
    change_type: str  # CREATE | UPDATE | NONE
    id: str | None = None
    name: str = ""
    changes: list[ResourceChange] = field(default_factory=list)
    stack_status: str | None = None  # the stack's status before (None: no stack)

    @property
    def empty(self) -> bool:
        return self.id is None

    def to_dict(self) -> dict:
        return {"stack": self.stack_name, "changeType": self.change_type, "changeSet": self.name or None,
                "stackStatus": self.stack_status, "changes": [c.to_dict() for c in self.changes]}


@dataclass
class DeployResult:
    stack_name: str
    changed: bool
    status: str
    changes: list[ResourceChange] = field(default_factory=list)
    seconds: float = 0.0


def artifact_bucket(sts, target: Target) -> tuple[str, str]:
    """(bucket, owning account): one private bucket per account and region.
    `target.region` must be the resolved one (Clients.target), never None."""
    if not target.region:
        raise ValueError("artifact_bucket needs the resolved region (Clients.target)")
    account = sts.get_caller_identity()["Account"]
    return f"tmctl-artifacts-{account}-{target.region}", account


ARTIFACT_DAYS = 90  # artifacts are copied into Lambda at deploy; old ones only serve rollbacks


def tls_only_policy(bucket: str) -> dict:
    """Deny every request to the bucket that does not come over TLS."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def ensure_bucket(s3, bucket: str, region: str, owner: str) -> bool:
    """Create the artifact bucket once: private (public access blocked, owner
    enforced), encrypted, TLS only, old artifacts expired. Every call names the
    expected owner, so a same-named bucket in another account is refused rather
    than trusted with our code. A bucket whose set-up failed half way is deleted,
    so the next run creates it whole instead of trusting a half-configured one."""
    import json

    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
        return False
    except ClientError as err:
        if error_code(err) not in {"404", "NoSuchBucket", "NotFound"}:
            raise from_client_error(err, f"artifact bucket {bucket}") from err
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced", **kwargs)
    try:
        s3.put_public_access_block(Bucket=bucket, ExpectedBucketOwner=owner, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        s3.put_bucket_encryption(Bucket=bucket, ExpectedBucketOwner=owner, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        s3.put_bucket_policy(Bucket=bucket, ExpectedBucketOwner=owner, Policy=json.dumps(tls_only_policy(bucket)))
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, ExpectedBucketOwner=owner, LifecycleConfiguration={
            "Rules": [{"ID": "expire-old-artifacts", "Status": "Enabled", "Filter": {"Prefix": ""},
                       "Expiration": {"Days": ARTIFACT_DAYS},
                       "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    except ClientError as err:
        with contextlib.suppress(ClientError):
            s3.delete_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
        raise from_client_error(err, f"setting up artifact bucket {bucket}") from err
    return True


def read_artifact(art: Artifact) -> tuple[bytes, str]:
    """The artifact's bytes as read for upload, and their SHA-256 in base64 (S3's
    ChecksumSHA256). Refused unless they hash to the SHA-256 its key names: under
    a content-hash key, wrong bytes would stay in the bucket for good. The bad
    file is removed, so the next run builds it again."""
    data = art.path.read_bytes()
    digest = hashlib.sha256(data).digest()
    if digest.hex() != art.sha256:
        art.path.unlink(missing_ok=True)
        raise TmctlError(f"artifact {art.path} does not hold the bytes its key {art.key} names (written part way, "
                         "or changed since it was built); removed it, nothing was uploaded",
                         "run the command again: the artifact is built afresh")
    return data, base64.b64encode(digest).decode()


def upload_artifacts(s3, bucket: str, owner: str, artifacts: list[Artifact]) -> list[str]:
    """Upload what the bucket lacks; keys are content hashes, so present = same bytes,
    unless S3's stored SHA-256 says otherwise (bytes an older tmctl uploaded from a
    half-written zip): those are replaced. What goes up is checked twice: the bytes
    read must hash to their key, and S3 is handed their SHA-256 and refuses
    (BadDigest) any body that does not match it."""
    uploaded = []
    for art in artifacts:
        try:
            head = s3.head_object(Bucket=bucket, Key=art.key, ExpectedBucketOwner=owner, ChecksumMode="ENABLED")
            stored = head.get("ChecksumSHA256")  # absent: uploaded without one, nothing to compare
            if stored is None or stored == base64.b64encode(bytes.fromhex(art.sha256)).decode():
                continue
        except ClientError as err:
            if error_code(err) not in {"404", "NoSuchKey", "NotFound"}:
                raise from_client_error(err, f"artifact {art.key}") from err
        data, checksum = read_artifact(art)
        try:
            s3.put_object(Bucket=bucket, Key=art.key, Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                          ExpectedBucketOwner=owner)
        except ClientError as err:
            raise from_client_error(err, f"uploading artifact {art.key}") from err
        uploaded.append(art.key)
    return uploaded


# The same template everywhere; on an emulator some knobs take local values.
# RetryBaseSeconds 1: a poison event is in the DLQ ~3 s after its POST (1 + 2 s
# of back-off, none after the last receive) instead of ~6 s with AWS's 2 + 4 s.
# The concurrency limits come from the machine (tmctl/core/local/limits.py).
# ApiAuth NONE: a local stage keeps the seed's open POST /tasks (AWS stages default to AWS_IAM).
LOCAL_PARAMETERS = {"RetryBaseSeconds": "1", "ApiAuth": "NONE", "ConfigCacheSeconds": "5"}


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


def template_defaults(template_body: str) -> dict[str, str]:
    import yaml

    template = yaml.load(template_body, Loader=_cfn_yaml_loader())  # noqa: S506 - SafeLoader subclass
    return parameter_values(template, {})


def is_unchanged(cfn, stack: dict | None, template_body: str, params: dict[str, str]) -> bool:
    """Same template text and same parameter values as deployed: nothing to do,
    decided without a change set (the fast path of a no-change `up`). A parameter
    not passed takes the template's default, as CloudFormation does on update:
    dropping an earlier `--param` is a change."""
    if stack is None or stack["StackStatus"] not in TERMINAL_OK | {"UPDATE_ROLLBACK_COMPLETE"}:
        return False
    deployed = deployed_parameters(stack)
    if any(deployed.get(k) != v for k, v in params.items()):
        return False
    body = cfn.get_template(StackName=stack["StackName"], TemplateStage="Original")["TemplateBody"]
    if body != template_body:
        return False
    defaults = template_defaults(template_body)
    return all(deployed.get(k) in (None, v) for k, v in defaults.items() if k not in params)


def create_change_set(cfn, target: Target, template_body: str, params: dict[str, str], *,
                      replace_failed: bool = True, dry_run: bool = False,
                      progress: Progress = no_progress) -> ChangeSet:
    """Create and describe a change set; do not execute it. Returns an empty
    ChangeSet (no id, nothing left behind) when there is nothing to change.
    A stack a failed deploy left unusable is deleted first only when
    `replace_failed` (an emulator) or when it is a rolled-back create, which
    holds nothing (AWS); otherwise the caller is told how to clear it.
    `dry_run` (a diff) never deletes anything. An emulator is sent the template
    with its Fn::If policies made literal (tmctl/core/render.py); AWS, the
    file's own text."""
    if target.local:  # an emulator-only adaptation: never in AWS mode
        template_body = for_emulator(template_body, params)
    stack = describe_stack(cfn, target)
    if is_unchanged(cfn, stack, template_body, params):
        return ChangeSet(target.stack_name, "NONE", stack_status=stack["StackStatus"])
    if stack is not None and stack["StackStatus"] in REPLACE_FIRST:
        if not (replace_failed or stack["StackStatus"] == "ROLLBACK_COMPLETE"):
            raise DeployFailed(f"stack {target.stack_name} is {stack['StackStatus']} and cannot be updated",
                               "see its events in the CloudFormation console, then `tmctl down` and `tmctl up`")
        if dry_run:
            raise DeployFailed(f"stack {target.stack_name} is {stack['StackStatus']}: there is nothing to compare "
                               "with", "`tmctl up` deletes it and creates it again")
        progress(f"stack is {stack['StackStatus']}; deleting it before creating it again")
        delete_stack(cfn, target, progress=progress)
        stack = None
    status = stack["StackStatus"] if stack else None
    change_type = "CREATE" if stack is None or status == "REVIEW_IN_PROGRESS" else "UPDATE"
    name = f"tmctl-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    progress(f"creating change set {name} ({change_type.lower()})")
    try:
        cs = cfn.create_change_set(
            StackName=target.stack_name, ChangeSetName=name, ChangeSetType=change_type,
            TemplateBody=template_body, Capabilities=CAPABILITIES,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Tags=[{"Key": "app", "Value": target.app}, {"Key": "stage", "Value": target.stage},
                  {"Key": "managed-by", "Value": "tmctl"}],
        )
    except ClientError as err:
        if error_code(err) in AUTH_CODES:
            raise from_client_error(err, f"creating a change set for {target.stack_name}") from err
        raise failure.refused(cfn, target, err, "the change set") from err
    made = ChangeSet(target.stack_name, change_type, cs["Id"], name, stack_status=status)
    try:
        described = wait_change_set(cfn, cs["Id"])
    except BaseException:  # Ctrl-C or a timeout while it is created: leave no change set or empty stack behind
        discard_change_set(cfn, made)
        raise
    if described["Status"] == "FAILED":
        # AWS's shape for "nothing to change": an UPDATE that FAILED, not executable, with no changes.
        if change_type == "UPDATE" and not described.get("Changes") and \
                described.get("ExecutionStatus") in {"UNAVAILABLE", None}:
            cfn.delete_change_set(ChangeSetName=cs["Id"])
            return ChangeSet(target.stack_name, "NONE", stack_status=status)
        discard_change_set(cfn, made)
        raise failure.change_set_failed(cfn, target, described)
    changes = [ResourceChange.from_api(c["ResourceChange"]) for c in _all_changes(cfn, described)
               if "ResourceChange" in c]
    if target.local:  # an emulator may list resources its conditions leave out (render.inactive)
        skipped = inactive(template_body, params)
        changes = [c for c in changes if not (c.action == "Add" and c.logical_id in skipped)]
    return ChangeSet(target.stack_name, change_type, cs["Id"], name, changes, status)


def _all_changes(cfn, described: dict) -> list[dict]:
    """DescribeChangeSet pages its Changes (100 a page on AWS)."""
    changes = list(described.get("Changes", []))
    token = described.get("NextToken")
    while token:
        page = cfn.describe_change_set(ChangeSetName=described["ChangeSetId"], NextToken=token)
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    return changes


def discard_change_set(cfn, cs: ChangeSet) -> None:
    """Delete a change set not executed, and the empty REVIEW_IN_PROGRESS
    stack a CREATE change set leaves behind: `diff` and a declined `up` leave nothing."""
    if cs.id is None:
        return
    with contextlib.suppress(ClientError):  # already gone
        cfn.delete_change_set(ChangeSetName=cs.id)
    if cs.change_type == "CREATE":
        with contextlib.suppress(ClientError):
            status = cfn.describe_stacks(StackName=cs.stack_name)["Stacks"][0]["StackStatus"]
            if status == "REVIEW_IN_PROGRESS":
                cfn.delete_stack(StackName=cs.stack_name)


def execute_change_set(cfn, target: Target, cs: ChangeSet, *, progress: Progress = no_progress,
                       timeout: float = 900, started: float | None = None) -> DeployResult:
    """Execute a created change set and follow the stack to a final status,
    reporting each event; on failure, the first failing resource and its reason."""
    started = time.monotonic() if started is None else started
    if cs.empty:
        return DeployResult(target.stack_name, False, cs.stack_status or "?", seconds=time.monotonic() - started)
    before = newest_event(cfn, target.stack_name)
    try:
        cfn.execute_change_set(ChangeSetName=cs.id)
    except ClientError as err:
        raise failure.refused(cfn, target, err, "executing the change set") from err
    status, events = follow_stack(cfn, target.stack_name, before, progress, timeout)
    result = DeployResult(target.stack_name, True, status, changes=cs.changes, seconds=time.monotonic() - started)
    if status not in TERMINAL_OK:
        reason = failure.failed_resource(events, target.stack_name)
        raise DeployFailed(f"deploy of {target.stack_name} ended {status}; "
                           + (f"first failure: {reason}" if reason else "the engine named no failing resource"),
                           failure.deploy_fix(target, reason))
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


def event_line(ev: dict) -> str:
    """One stack event as a progress line: time, status, resource, type, reason."""
    reason = f" — {ev['ResourceStatusReason']}" if ev.get("ResourceStatusReason") else ""
    stamp = ev["Timestamp"].astimezone().strftime("%H:%M:%S")
    return f"{stamp} {ev['ResourceStatus']:<28} {ev['LogicalResourceId']} ({ev.get('ResourceType', '?')}){reason}"


def newest_event(cfn, stack_name: str) -> dict | None:
    """The stack's newest event right now (DescribeStackEvents lists newest
    first, so its first page is enough); None when it has none or does not
    exist. Taken just before an operation, it marks where that operation's
    events begin by CloudFormation's own ids and clock: this machine's clock,
    which may run ahead of AWS's, decides nothing."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    except ClientError as err:
        if error_code(err) == "ValidationError":  # no such stack (yet): every event it gets is new
            return None
        raise
    return events[0] if events else None


def _before(ev: dict, mark: dict | None) -> bool:
    """Whether `ev` is from before the operation: `mark` itself (newest_event,
    taken just before it), or older than `mark` by CloudFormation's clock,
    should `mark` ever be missing from the list."""
    return mark is not None and (ev["EventId"] == mark["EventId"] or ev["Timestamp"] < mark["Timestamp"])


def follow_stack(cfn, stack_name: str, before: dict | None, progress: Progress,
                 timeout: float) -> tuple[str, list[dict]]:
    """Poll until the stack settles, reporting each event newer than `before`
    (newest_event taken before the operation; None: every event) once, oldest
    first. Failures are never `detail` lines: a terminal keeps them on screen."""
    seen: set[str] = set()
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        fresh = []
        for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name):
            stop = False
            for ev in page["StackEvents"]:
                if _before(ev, before):  # newest first: the rest, and the pages after, are older still
                    stop = True
                    break
                if ev["EventId"] not in seen:
                    seen.add(ev["EventId"])
                    fresh.append(ev)
            if stop:
                break
        for ev in reversed(fresh):
            events.append(ev)
            progress(event_line(ev), detail=not ev["ResourceStatus"].endswith("_FAILED"))
        if not status.endswith("_IN_PROGRESS"):
            return status, events
        if time.monotonic() > deadline:
            raise DeployFailed(f"{stack_name} still {status} after {timeout:.0f}s")
        time.sleep(pause)
    raise AssertionError("unreachable")


def first_failure(events: list[dict]) -> str | None:
    """The first resource that failed, oldest first, with CloudFormation's reason:
    the cause, where ROLLBACK_COMPLETE alone says nothing."""
    for ev in events:
        if ev["ResourceStatus"].endswith("_FAILED") and ev.get("ResourceStatusReason"):
            return f"{ev['LogicalResourceId']} ({ev.get('ResourceType', '?')}) {ev['ResourceStatus']}: " \
                   f"{ev['ResourceStatusReason']}"
    return None


def delete_stack(cfn, target: Target, *, progress: Progress = no_progress, timeout: float = 900) -> bool:
    stack = describe_stack(cfn, target)
    if stack is None:
        return False
    # Followed by its id: AWS still describes a deleted stack by id (DELETE_COMPLETE), not by name.
    stack_ref = stack.get("StackId", target.stack_name)
    before = newest_event(cfn, stack_ref)
    cfn.delete_stack(StackName=target.stack_name)
    try:
        status, events = follow_stack(cfn, stack_ref, before, progress, timeout)
    except ClientError as err:
        if error_code(err) == "ValidationError":  # gone: CloudFormation's "does not exist"
            return True
        raise
    if status == "DELETE_FAILED":
        raise DeployFailed(f"delete of {target.stack_name} failed: {first_failure(events) or '?'}")
    return True


# ------------------------------------------------------------------ emulator adaptation

def _cfn_yaml_loader():
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: 10x faster where present
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
    """The value a limit takes: a literal, Ref (AWS::NoValue → None) or Fn::If,
    whose condition the one Conditions evaluator decides (tmctl.core.render)."""
    from tmctl.core.render import Unknown, condition

    if not isinstance(node, dict) or len(node) != 1:
        return node
    (fn, arg), = node.items()
    if fn == "Ref":
        return None if arg == "AWS::NoValue" else values.get(arg)
    if fn == "Fn::If":
        name, then, otherwise = arg
        try:
            chosen = condition(name, values, conditions)
        except Unknown as err:
            raise ValueError(f"a concurrency limit's condition cannot be decided before deploying: {err}") from None
        return _evaluate(then if chosen else otherwise, values, conditions)
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
