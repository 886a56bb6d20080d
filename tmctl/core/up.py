"""`tmctl up` in two steps, so a question can sit between them: `prepare` (build,
upload, create the change set) and `apply` (execute it, adapt, warm)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tmctl.core import deploy as dep
from tmctl.core import package, preflight
from tmctl.core.bundle import project_dir
from tmctl.core.lock import deploy_lock
from tmctl.core.stack import StackInfo, load_stack
from tmctl.core.target import Clients, Target


@dataclass
class UpResult:
    stack: StackInfo
    deploy: dep.DeployResult
    uploaded: list[str]
    concurrency_applied: list[str] = field(default_factory=list)
    warmed: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything `up` does before executing: artifacts built (and uploaded),
    parameters chosen, the change set created. `change_set.empty`: nothing to do."""

    target: Target
    template_path: Path
    params: dict[str, str]
    change_set: dep.ChangeSet
    uploaded: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    front_door: str | None = None  # http | rest; None: the template has no FrontDoor parameter


def prepare(clients: Clients, target: Target, *, overrides: dict[str, str] | None = None,
            front_door: str | None = None, dry_run: bool = False, progress: dep.Progress = dep.no_progress,
            ready: Callable[[], None] = lambda: None) -> Plan:
    """Build, upload, create the change set. `dry_run` (a diff) creates, uploads
    and deletes nothing but the change set it shows. `ready()` is called just
    before the first network call (the engine may still be booting).
    `front_door`: --front-door (None: the stack's own, else the engine's, else
    the template's default; tmctl.core.frontdoor)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    project = project_dir()
    artifacts = package.build_all(project, target.state_dir / "build")
    clients.sts, clients.s3, clients.cloudformation  # noqa: B018 - load boto3 while the engine boots
    timings["package"] = time.perf_counter() - t
    t = time.perf_counter()
    ready()
    timings["engine"] = time.perf_counter() - t
    t = time.perf_counter()
    # Refuses before any bucket or change set; chooses the front door.
    checked = preflight.gate(clients, target, project / dep.TEMPLATE_FILE, overrides=overrides,
                             front_door=front_door, progress=progress)
    overrides = {**(overrides or {}), **checked.parameters()}
    timings["preflight"] = time.perf_counter() - t
    if target.region is None:
        target = clients.target  # the Session's region (an AWS profile's), for the bucket name

    t = time.perf_counter()
    bucket, owner = dep.artifact_bucket(clients.sts, target)
    uploaded: list[str] = []
    if not dry_run:
        if dep.ensure_bucket(clients.s3, bucket, target.region, owner):
            progress(f"created artifact bucket {bucket} (encrypted, private, TLS only, "
                     f"artifacts expire after {dep.ARTIFACT_DAYS} days)")
        uploaded = dep.upload_artifacts(clients.s3, bucket, owner, artifacts)
        for key in uploaded:
            progress(f"uploaded s3://{bucket}/{key}", detail=True)
    timings["upload"] = time.perf_counter() - t

    t = time.perf_counter()
    template_path = project / dep.TEMPLATE_FILE
    params = dep.stack_parameters(target, bucket, artifacts, overrides)
    change_set = dep.create_change_set(clients.cloudformation, target, template_path.read_text(), params,
                                       replace_failed=target.local, dry_run=dry_run, progress=progress)
    timings["change set"] = time.perf_counter() - t
    return Plan(target, template_path, params, change_set, uploaded, timings,
                checked.front_door.door if checked.front_door else None)


def report_changes(plan: Plan, progress: dep.Progress) -> None:
    """One detail line per resource the change set touches (folded on a terminal)."""
    for c in plan.change_set.changes:
        progress(f"{c.action:<7} {c.logical_id} ({c.resource_type})", detail=True)


def discard(clients: Clients, plan: Plan) -> None:
    """Leave nothing of a change set that will not run (a `diff`, a declined `up`)."""
    dep.discard_change_set(clients.cloudformation, plan.change_set)


def apply(clients: Clients, plan: Plan, *, warm: bool = True, progress: dep.Progress = dep.no_progress) -> UpResult:
    """Execute the plan's change set (nothing when it is empty), then adapt and warm."""
    target, timings = plan.target, dict(plan.timings)
    t = time.perf_counter()
    # Timed from here: on AWS, the time spent reading the question is not deploy time.
    result = dep.execute_change_set(clients.cloudformation, target, plan.change_set, progress=progress)
    timings["deploy"] = time.perf_counter() - t

    stack = load_stack(clients.cloudformation, target)
    applied: list[str] = []
    warmed: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Warm-up (CPU-bound cold starts in the workers) overlaps the concurrency calls.
        t = time.perf_counter()
        warming = None
        if warm and result.changed:
            progress(f"warming {len(stack.functions)} functions", detail=True)
            warming = pool.submit(dep.warm_functions, clients.lambda_, list(stack.functions.values()))
        if target.local:  # an emulator-only adaptation: never in AWS mode
            applied = dep.apply_declared_concurrency(clients.cloudformation, clients.lambda_, target,
                                                     dep.load_template(plan.template_path), plan.params)
        if warming is not None:
            warmed = warming.result()
        timings["adapt+warm"] = time.perf_counter() - t
    return UpResult(stack, result, plan.uploaded, applied, warmed, timings)


def bring_up(clients: Clients, target: Target, *, overrides: dict[str, str] | None = None,
             front_door: str | None = None, warm: bool = True, progress: dep.Progress = dep.no_progress,
             ready: Callable[[], None] = lambda: None) -> UpResult:
    """prepare + apply with no question: the local loop, the tests, the benchmarks.
    One at a time per stack and endpoint (a second waits, `progress` says for whom)."""
    with deploy_lock(target, waiting=progress):
        plan = prepare(clients, target, overrides=overrides, front_door=front_door, progress=progress, ready=ready)
        report_changes(plan, progress)
        return apply(clients, plan, warm=warm, progress=progress)
