"""A deploy that fails, in words: the first failing resource and the engine's
own message, never LocalStack's bare `exception while calling …` wrapper. When
the engine gives no reason, say so plainly and point at its log."""

from __future__ import annotations

import re

from tmctl.core.errors import DeployFailed, error_code, http_status
from tmctl.core.target import Target

# LocalStack's wrapper around an internal exception: "exception while calling <service>.<Operation>: <detail>".
_WRAPPER = re.compile(r"^exception while calling [\w.]+:?\s*", re.IGNORECASE)
NO_REASON = "the engine gave no reason"
LOGS = {"ministack": "`tmctl local logs`",
        "localstack": "the LocalStack log (`localstack logs`, or its process's output; DEBUG=1 adds the traceback)"}


def engine_message(err: BaseException) -> str:
    """The engine's own message of a botocore error, without LocalStack's wrapper ("" when empty)."""
    response = getattr(err, "response", None) or {}
    message = " ".join(str((response.get("Error") or {}).get("Message") or "").split())
    return _WRAPPER.sub("", message).strip()


def engine_log(target: Target, engine: str | None = None) -> str:
    """Where the engine's own log is."""
    if not target.local:
        return "the stack's events in the CloudFormation console"
    if engine is None:
        from tmctl.core.local.emulator import probe

        found = probe(target.endpoint_url) if target.endpoint_url else None
        engine = found.name if found else None
    return LOGS.get(engine or "", f"{LOGS['ministack']} (embedded emulator) or {LOGS['localstack']}")


def failed_resource(events: list[dict], stack_name: str | None = None) -> str | None:
    """The first resource that failed, oldest first (events in that order), with the
    engine's reason, or that it gave none. The stack's own event comes last resort."""
    failed = [ev for ev in events if str(ev.get("ResourceStatus", "")).endswith("_FAILED")]
    own = [ev for ev in failed if ev.get("ResourceType") != "AWS::CloudFormation::Stack"
           and ev.get("LogicalResourceId") != stack_name]
    for ev in own or failed:
        reason = " ".join(str(ev.get("ResourceStatusReason") or "").split())
        reason = _WRAPPER.sub("", reason).strip() or NO_REASON
        return f"{ev['LogicalResourceId']} ({ev.get('ResourceType', '?')}) {ev['ResourceStatus']}: {reason}"
    return None


def deploy_fix(target: Target, reason: str | None) -> str:
    """The fix for a deploy that ended in a failed status."""
    if reason and NO_REASON not in reason:
        return "fix what the first failure names, then run `tmctl up` again"
    return f"read {engine_log(target)}: it has the cause"


def stack_failure(cfn, stack_name: str) -> str | None:
    """The first failed resource in the stack's events so far, if the stack exists."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    except Exception:  # noqa: BLE001 - no stack (a refused CREATE), or the engine cannot say: nothing to add
        return None
    return failed_resource(list(reversed(events)), stack_name)


def refused(cfn, target: Target, err: BaseException, operation: str) -> DeployFailed:
    """A CreateChangeSet/ExecuteChangeSet the engine answered with an error."""
    code = error_code(err) or type(err).__name__
    status = http_status(err)
    said = engine_message(err)
    how = f"{code}" + (f", HTTP {status}" if status else "")
    resource = stack_failure(cfn, target.stack_name)
    where = f"; first failing resource: {resource}" if resource else ""
    if said:
        return DeployFailed(f"CloudFormation refused {operation} ({how}): {said}{where}",
                            "fix the template or its parameters (cfn-lint on the template helps); "
                            f"the engine's log has the detail: {engine_log(target)}")
    return DeployFailed(f"CloudFormation refused {operation} ({how}) and the engine gave no reason{where}",
                        f"read {engine_log(target)}: it has the cause")


def change_set_failed(cfn, target: Target, described: dict) -> DeployFailed:
    """A change set that ended FAILED: its StatusReason and the first failed resource."""
    reason = _WRAPPER.sub("", " ".join(str(described.get("StatusReason") or "").split())).strip()
    resource = stack_failure(cfn, target.stack_name)
    where = f"; first failing resource: {resource}" if resource else ""
    if reason:
        return DeployFailed(f"change set failed: {reason}{where}",
                            "fix the template or its parameters (cfn-lint on the template helps)")
    return DeployFailed(f"change set failed and the engine gave no reason{where}",
                        f"read {engine_log(target)}: it has the cause")
