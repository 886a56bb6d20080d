"""The CI/CD pipeline (cloudformation/pipeline.yaml): deployed as the stack
<app>-pipeline through tmctl's own change sets, and its last runs read back.

One pipeline per application: a push to the branch runs buildspec.yml in
CodeBuild, which deploys the stage given here (stack <app>-<stage>)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from tmctl.core import deploy as dep
from tmctl.core.errors import NotFound, UsageError, error_code, from_client_error
from tmctl.core.stack import deployed_parameters, describe_stack
from tmctl.core.target import Target

PIPELINE_TEMPLATE = "cloudformation/pipeline.yaml"
PIPELINE_STAGE = "pipeline"  # the stack is <app>-pipeline; no deployed stage may take this name
CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]+$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
DEFAULT_BRANCH = "main"
FINISHED = {"Succeeded", "Failed", "Stopped", "Superseded", "Cancelled"}


def pipeline_target(target: Target) -> Target:
    """The target whose stack is <app>-pipeline (same account, region, endpoint)."""
    return replace(target, stage=PIPELINE_STAGE)


def pipeline_name(target: Target) -> str:
    return f"{target.app}-pipeline"  # pipeline.yaml's Pipeline.Name


# ------------------------------------------------------------------ deploy


@dataclass(frozen=True)
class Source:
    """Where the pipeline reads the code: a CodeConnections connection to GitHub."""

    connection_arn: str
    repository: str  # owner/name
    branch: str = DEFAULT_BRANCH

    def check(self) -> Source:
        if not CONNECTION_ARN.fullmatch(self.connection_arn):
            raise UsageError(f"--connection-arn {self.connection_arn!r} is not a CodeConnections connection ARN",
                             "copy it from `aws codeconnections list-connections` (arn:aws:codeconnections:"
                             "REGION:ACCOUNT:connection/ID)")
        if not REPOSITORY.fullmatch(self.repository):
            raise UsageError(f"--repo {self.repository!r} is not owner/name", "e.g. --repo acme/task-manager")
        if not self.branch or self.branch.strip() != self.branch:
            raise UsageError(f"--branch {self.branch!r} is not a branch name", "e.g. --branch main")
        return self


def resolve_source(cfn, target: Target, connection_arn: str | None, repository: str | None,
                   branch: str | None) -> Source:
    """Options first; what is not given comes from the deployed pipeline stack
    (an update need not repeat them), then the defaults."""
    previous: dict[str, str] = {}
    if connection_arn is None or repository is None or branch is None:
        stack = describe_stack(cfn, pipeline_target(target))
        if stack is not None and stack["StackStatus"] not in {"REVIEW_IN_PROGRESS", "DELETE_COMPLETE"}:
            previous = deployed_parameters(stack)
    connection_arn = connection_arn or previous.get("ConnectionArn")
    repository = repository or previous.get("FullRepositoryId")
    if not connection_arn or not repository:
        missing = " and ".join(name for name, value in (("--connection-arn", connection_arn),
                                                        ("--repo", repository)) if not value)
        raise UsageError(f"the first `pipeline up` needs {missing}",
                         "create a GitHub connection (console: Developer Tools > Settings > Connections), then "
                         "tmctl pipeline up --connection-arn ARN --repo OWNER/NAME")
    return Source(connection_arn, repository, branch or previous.get("BranchName") or DEFAULT_BRANCH).check()


def pipeline_parameters(target: Target, source: Source, overrides: dict[str, str] | None = None) -> dict[str, str]:
    if target.stage.startswith(PIPELINE_STAGE):
        raise UsageError(f"stage {target.stage!r} begins with {PIPELINE_STAGE!r}, the pipeline stack's own name",
                         "deploy another stage, e.g. --stage dev")
    params = {"AppName": target.app, "Stage": target.stage, "ConnectionArn": source.connection_arn,
              "FullRepositoryId": source.repository, "BranchName": source.branch}
    params.update(overrides or {})
    return params


def plan(cfn, target: Target, source: Source, template_body: str, *, overrides: dict[str, str] | None = None,
         dry_run: bool = False, progress: dep.Progress = dep.no_progress) -> dep.ChangeSet:
    """The change set that would bring <app>-pipeline to this template and source."""
    params = pipeline_parameters(target, source, overrides)
    return dep.create_change_set(cfn, pipeline_target(target), template_body, params,
                                 replace_failed=target.local, dry_run=dry_run, progress=progress)


def apply(cfn, target: Target, change_set: dep.ChangeSet, *,
          progress: dep.Progress = dep.no_progress) -> dep.DeployResult:
    return dep.execute_change_set(cfn, pipeline_target(target), change_set, progress=progress)


def discard(cfn, change_set: dep.ChangeSet) -> None:
    dep.discard_change_set(cfn, change_set)


def outputs(cfn, target: Target) -> dict[str, str]:
    stack = describe_stack(cfn, pipeline_target(target))
    if stack is None:
        raise NotFound(f"stack {pipeline_target(target).stack_name} does not exist", "run `tmctl pipeline up`")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def connection_service(connection_arn: str) -> str:
    """The boto3 service that owns a connection ARN (the service was renamed in 2024)."""
    return "codeconnections" if ":codeconnections:" in connection_arn else "codestar-connections"


CONNECTION_NOT_FOUND = "NOT_FOUND"  # connection_status() of an ARN that names no connection


def connection_status(connections, connection_arn: str) -> str | None:
    """AVAILABLE, PENDING (the GitHub handshake is not finished: the Source
    stage will fail until it is), ERROR; NOT_FOUND when no such connection
    exists (deleted, or another account's or region's); None when it cannot be
    read. Best effort: a status, never an error (the deploy it follows is done)."""
    try:
        return connections.get_connection(ConnectionArn=connection_arn)["Connection"].get("ConnectionStatus")
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return CONNECTION_NOT_FOUND
        return None


# ------------------------------------------------------------------ status


@dataclass(frozen=True)
class Run:
    """One pipeline execution."""

    id: str
    status: str
    trigger: str  # Webhook, WebhookV2, StartPipelineExecution, CreatePipeline, …
    trigger_detail: str
    revision: str  # short commit id
    message: str  # the commit message's first line
    started: datetime | None
    seconds: float | None  # run time so far for one in progress

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "trigger": self.trigger, "triggerDetail": self.trigger_detail,
                "revision": self.revision, "message": self.message,
                "started": self.started.isoformat() if self.started else None,
                "seconds": None if self.seconds is None else round(self.seconds, 1)}


@dataclass(frozen=True)
class Action:
    name: str
    status: str
    summary: str = ""
    error: str = ""
    url: str = ""


@dataclass(frozen=True)
class Stage:
    name: str
    status: str
    execution_id: str
    actions: list[Action] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineStatus:
    name: str
    runs: list[Run]
    stages: list[Stage]

    @property
    def latest(self) -> Run | None:
        return self.runs[0] if self.runs else None

    def failed_stage(self) -> Stage | None:
        return next((s for s in self.stages if s.status == "Failed"), None)

    def to_dict(self) -> dict:
        return {"pipeline": self.name, "runs": [r.to_dict() for r in self.runs],
                "stages": [{"name": s.name, "status": s.status, "executionId": s.execution_id,
                            "actions": [asdict(a) for a in s.actions]} for s in self.stages]}


def _commit_message(summary: str | None) -> str:
    """A connection's revisionSummary is JSON ({"ProviderType":…,"CommitMessage":…});
    other sources give the message itself."""
    if not summary:
        return ""
    try:
        parsed = json.loads(summary)
    except ValueError:
        parsed = None
    # "CommitMessage": null (or missing, or not text) is no message, not a crash.
    text = parsed.get("CommitMessage") if isinstance(parsed, dict) else summary
    if not isinstance(text, str):
        return ""
    return (text.strip().splitlines() or [""])[0]


def run_from_api(summary: dict, now: datetime) -> Run:
    started = summary.get("startTime")
    ended = summary.get("lastUpdateTime") if summary.get("status") in FINISHED else now
    seconds = (ended - started).total_seconds() if started and ended else None
    source = (summary.get("sourceRevisions") or [{}])[0]
    trigger = summary.get("trigger") or {}
    return Run(summary["pipelineExecutionId"], summary.get("status", "?"), trigger.get("triggerType", ""),
               trigger.get("triggerDetail", ""), (source.get("revisionId") or "")[:7],
               _commit_message(source.get("revisionSummary")), started, seconds)


def stage_from_api(state: dict) -> Stage:
    latest = state.get("latestExecution") or {}
    actions = []
    for action in state.get("actionStates", []):
        run = action.get("latestExecution") or {}
        error = run.get("errorDetails") or {}
        actions.append(Action(action.get("actionName", "?"), run.get("status", ""), run.get("summary", "") or "",
                              f"{error.get('code', '')}: {error.get('message', '')}".strip(": ") if error else "",
                              run.get("externalExecutionUrl", "") or ""))
    return Stage(state.get("stageName", "?"), latest.get("status", ""), latest.get("pipelineExecutionId", ""),
                 actions)


def pipeline_status(codepipeline, name: str, *, limit: int = 10, now: datetime | None = None) -> PipelineStatus:
    """The last `limit` runs, newest first, and each stage's latest state."""
    now = now or datetime.now(UTC)
    try:
        summaries = codepipeline.list_pipeline_executions(pipelineName=name, maxResults=limit)[
            "pipelineExecutionSummaries"]
        state = codepipeline.get_pipeline_state(name=name)
    except ClientError as err:
        if error_code(err) == "PipelineNotFoundException":
            raise NotFound(f"pipeline {name} does not exist",
                           "deploy it with `tmctl pipeline up --connection-arn ARN --repo OWNER/NAME`") from err
        raise from_client_error(err, f"pipeline {name}") from err
    return PipelineStatus(name, [run_from_api(s, now) for s in summaries[:limit]],
                          [stage_from_api(s) for s in state.get("stageStates", [])])
