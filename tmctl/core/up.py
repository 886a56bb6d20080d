"""`tmctl up` as one plain function: build, upload, deploy, adapt, warm."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tmctl.core import deploy as dep
from tmctl.core import package
from tmctl.core.stack import StackInfo, load_stack
from tmctl.core.target import Clients, Target, project_dir


@dataclass
class UpResult:
    stack: StackInfo
    deploy: dep.DeployResult
    uploaded: list[str]
    concurrency_applied: list[str] = field(default_factory=list)
    warmed: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def bring_up(clients: Clients, target: Target, *, overrides: dict[str, str] | None = None,
             warm: bool = True, progress: dep.Progress = dep.no_progress,
             ready: Callable[[], None] = lambda: None) -> UpResult:
    """`ready()` is called just before the first network call (the engine may still be booting)."""
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
    bucket, owner = dep.artifact_bucket(clients.sts, target)
    if dep.ensure_bucket(clients.s3, bucket, target.region, owner):
        progress(f"created artifact bucket {bucket}")
    uploaded = dep.upload_artifacts(clients.s3, bucket, owner, artifacts)
    for key in uploaded:
        progress(f"uploaded {key}", detail=True)
    timings["upload"] = time.perf_counter() - t

    t = time.perf_counter()
    template_path = project / dep.TEMPLATE_FILE
    params = dep.stack_parameters(target, bucket, artifacts, overrides)
    result = dep.deploy(clients.cloudformation, target, template_path.read_text(), params, progress=progress)
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
        if target.local:
            applied = dep.apply_declared_concurrency(clients.cloudformation, clients.lambda_, target,
                                                     dep.load_template(template_path), params)
        if warming is not None:
            warmed = warming.result()
        timings["adapt+warm"] = time.perf_counter() - t
    return UpResult(stack, result, uploaded, applied, warmed, timings)
