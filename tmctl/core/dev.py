"""`tmctl dev`: from a batch of saved files to a plan (which functions get new
code, whether the stack goes through a change set), and from a plan to code
live in the functions.

Code goes straight to each function with UpdateFunctionCode and an in-memory
zip built by the same deterministic packaging as `up`, only after it compiled
and imported in a separate process: on MiniStack a handler error kills its
worker, and on any engine broken code would serve errors. MiniStack kills the
function's $LATEST workers inside UpdateFunctionCode (`_update_code` →
`invalidate_worker`), so the first invocation after the call spawns a worker
with the new zip: nothing stale once the call has returned. The warm-up then
pays that cold start instead of the first real request.

One hole is MiniStack's (1.5.33), measured, not closed: an Invoke copies the
function's code when it arrives and leases a worker a moment later, so one
that races UpdateFunctionCode can put a worker with the old code into the
emptied pool, where it answers until the next save (once in ~60 edits under
back-to-back requests, never with a request now and then). Recycling the
workers a second time 50 ms later (a second UpdateFunctionCode, or an
UpdateFunctionConfiguration naming Timeout) ended such a worker but killed
workers still spawning, which broke the function's code or layer directory
for every later spawn: worse, so not done."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from tmctl.core import package
from tmctl.core.contract import PRODUCTION_STAGES
from tmctl.core.errors import UsageError

WATCHED = ("lambdas", "cloudformation")
# What `up` deploys from cloudformation/ (pipeline.yaml is another stack: `tmctl pipeline up`).
STACK_FILES = ("cloudformation/template.yaml", package.DEFINITION_FILE, "cloudformation/openapi.yaml")
DRIFT_WARNING = ("code pushed by `tmctl dev` bypasses CloudFormation: the stack drifts from its template "
                 "until the next `tmctl up`")


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """What one batch of saved files asks for. `sources` are function source
    dirs under lambdas/ (task_api, …) whose code changed; `stack`: a file the
    stack's change set is built from changed; `ignored`: watched files that
    no function packages and no change set reads."""

    sources: tuple[str, ...] = ()
    stack: bool = False
    ignored: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.sources and not self.stack

    def merge(self, other: Plan) -> Plan:
        """What is still to do when `other` comes in before this one went live."""
        return Plan(tuple(s for s in package.FUNCTIONS.values() if s in self.sources or s in other.sources),
                    self.stack or other.stack, tuple(sorted(set(self.ignored) | set(other.ignored))))


def _relative(project: Path, path: Path | str) -> str | None:
    p = Path(path)
    try:
        return (p if not p.is_absolute() else p.resolve().relative_to(project.resolve())).as_posix()
    except ValueError:
        return None


def plan_changes(project: Path, paths: Iterable[Path | str]) -> Plan:
    """Map changed paths (absolute, or relative to the project) to a plan: a
    file under a function's source dir → that function; a file under a shared
    package every function zips (lambdas/common/taskcore) → all of them; the
    template, the state machine or the OpenAPI document → the change set. One
    entry per function however many of its files changed: never partial."""
    sources: set[str] = set()
    stack = False
    ignored: list[str] = []
    every = tuple(package.FUNCTIONS.values())
    for path in paths:
        rel = _relative(project, path)
        if rel is None:
            continue
        parts = Path(rel).parts
        if not package.packaged(Path(rel)):
            continue  # __pycache__, *.pyc: never in a zip
        if rel in STACK_FILES:
            stack = True
        elif len(parts) > 2 and parts[0] == "lambdas" and parts[1] in every:
            sources.add(parts[1])
        elif parts[0] == "lambdas" and any(rel.startswith(f"lambdas/{s}/") for s in package.SHARED_PACKAGES):
            sources.update(every)
        else:
            ignored.append(rel)
    return Plan(tuple(s for s in every if s in sources), stack, tuple(sorted(ignored)))


# ---------------------------------------------------------------- checking code

@dataclass(frozen=True)
class CodeError:
    """Why a function's new code is not pushed: where, and the error's last line."""

    source: str  # the function's source dir (task_api, …)
    file: str | None  # relative to the project where it could be mapped back
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or f"lambdas/{self.source}")
        return f"{where}: {self.message}"


def source_entries(project: Path, source: str) -> list[tuple[str, Path]]:
    """(name in the zip, file) for one function: exactly what `up` packages."""
    return package.function_entries(project, source)


def function_zip(project: Path, source: str) -> bytes:
    """The function's zip, byte for byte the one `up` would upload."""
    return package.deterministic_zip(source_entries(project, source))


def project_file(project: Path, source: str, arcname: str) -> str:
    """The project file a name inside a function's zip came from."""
    for shared in package.SHARED_PACKAGES:
        top = Path(shared).name + "/"
        if arcname.startswith(top):
            return f"lambdas/{shared}/{arcname.removeprefix(top)}"
    return f"lambdas/{source}/{arcname}"


def compile_errors(project: Path, source: str, entries: list[tuple[str, Path]] | None = None) -> list[CodeError]:
    """Every Python file of the function, compiled (not run): syntax errors with file:line."""
    errors = []
    for arcname, path in entries if entries is not None else source_entries(project, source):
        if not arcname.endswith(".py"):
            continue
        rel = project_file(project, source, arcname)
        try:
            compile(path.read_bytes(), rel, "exec", dont_inherit=True)
        except SyntaxError as err:
            errors.append(CodeError(source, rel, err.lineno, f"{type(err).__name__}: {err.msg}"))
        except ValueError as err:  # null bytes
            errors.append(CodeError(source, rel, None, f"ValueError: {err}"))
    return errors


class ImportChecker:
    """Imports a function's handler from its zip in another process, with the
    interpreter the embedded engine's workers use (this one: MiniStack runs as
    `sys.executable -m ministack` and spawns workers with its sys.executable).
    A long-lived fork server (`_import_server.py`): third-party modules loaded
    once, each check in a fresh child."""

    def __init__(self, python: str = sys.executable, timeout: float = 30.0):
        self.python, self.timeout = python, timeout
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="tmctl-dev-"))

    def _server(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            script = Path(__file__).with_name("_import_server.py")
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [self.python, "-I", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, cwd=self._tmp)
        return self._proc

    def _ask(self, request: dict) -> dict:
        with self._lock:
            for _attempt in (1, 2):  # a server that died (or ran its one check without fork) is restarted once
                proc = self._server()
                try:
                    proc.stdin.write(json.dumps(request) + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                except (BrokenPipeError, OSError):
                    line = ""
                if line:
                    return json.loads(line)
                self._proc = None
            return {"ok": False, "file": None, "line": None, "error": "the import check process did not answer"}

    def unpack(self, source: str, data: bytes) -> Path:
        where = Path(tempfile.mkdtemp(prefix=f"{source}-", dir=self._tmp))
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(where)
        return where

    def preload(self, functions: list[tuple[str, bytes, str, dict[str, str]]]) -> None:
        """(source, zip, handler, env) of each function: their third-party imports, loaded once."""
        dirs = [(self.unpack(src, data), handler, env) for src, data, handler, env in functions]
        try:
            self._ask({"preload": [{"dir": str(d), "handler": h, "env": e} for d, h, e in dirs]})
        finally:  # the server forgot their modules: nothing reads them again
            for d, _, _ in dirs:
                _rmtree(d)

    def check(self, source: str, data: bytes, handler: str, env: dict[str, str]) -> CodeError | None:
        where = self.unpack(source, data)
        try:
            answer = self._ask({"dir": str(where), "handler": handler, "env": env})
        finally:
            _rmtree(where)
        if answer.get("ok"):
            return None
        file, rel = answer.get("file"), None
        if file:
            try:
                rel = project_file(Path(), source, Path(file).resolve().relative_to(where.resolve()).as_posix())
            except ValueError:
                rel = file
        return CodeError(source, rel, answer.get("line"), answer.get("error") or "does not import")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        _rmtree(self._tmp)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the functions

@dataclass
class Function:
    """One deployed function of the stack, as `dev` pushes to it."""

    source: str  # lambdas/<source>
    name: str  # the physical function name
    label: str  # task-api: how lines and logs name it
    handler: str = "app.handler"
    env: dict[str, str] = field(default_factory=dict)  # what its handler sees at import
    sha256: str | None = None  # the code it runs now (base64, as Lambda reports it)


def function_sources(template: dict) -> dict[str, str]:
    """{logical id: source dir} of the template's functions, from the code key each one names."""
    by_parameter = package.FUNCTIONS
    found = {}
    for logical, res in (template.get("Resources") or {}).items():
        if res.get("Type") not in {"AWS::Lambda::Function", "AWS::Serverless::Function"}:
            continue
        props = res.get("Properties") or {}
        key = (props.get("Code") or {}).get("S3Key") or props.get("CodeUri") or {}
        ref = key.get("Ref") if isinstance(key, dict) else None
        if ref in by_parameter:
            found[logical] = by_parameter[ref]
    return found


def label_of(source: str) -> str:
    return source.replace("_", "-")


def load_functions(cfn, lam, stack_name: str, template: dict, *, region: str | None,
                   endpoint_url: str | None) -> dict[str, Function]:
    """{source: Function} for the deployed stack: physical names from its
    resources, handler and environment from each function's configuration."""
    sources = function_sources(template)
    physical = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for r in page.get("StackResourceSummaries", []):
            if r["LogicalResourceId"] in sources:
                physical[sources[r["LogicalResourceId"]]] = r["PhysicalResourceId"]
    functions = {}
    for source in package.FUNCTIONS.values():
        if source not in physical:
            continue
        cfg = lam.get_function_configuration(FunctionName=physical[source])
        env = dict((cfg.get("Environment") or {}).get("Variables") or {})
        env.setdefault("AWS_REGION", region or "us-east-1")
        env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
        env.setdefault("AWS_LAMBDA_FUNCTION_NAME", physical[source])
        if endpoint_url:  # an emulator gives its workers its endpoint and accepts any keys
            env.setdefault("AWS_ENDPOINT_URL", endpoint_url)
            env.setdefault("AWS_ACCESS_KEY_ID", "test")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        functions[source] = Function(source, physical[source], label_of(source), cfg.get("Handler", "app.handler"),
                                     env, cfg.get("CodeSha256"))
    return functions


def code_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def layer_stamp() -> str:
    """The installed versions the dependency layer is built from: when they
    change, the layer does, and only the change set path (`up`) republishes it."""
    parts = []
    for name in package.LAYER_DISTRIBUTIONS:
        try:
            parts.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            parts.append(f"{name}==?")
    return ";".join(parts)


# ---------------------------------------------------------------- applying

@dataclass
class Outcome:
    """What applying a plan's code did: each function live with its seconds, or
    the errors that kept every function of the batch on its old code."""

    live: dict[str, float] = field(default_factory=dict)  # label → seconds from the save
    unchanged: list[str] = field(default_factory=list)  # labels whose zip was already deployed
    errors: list[CodeError] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # labels whose warm-up failed: old code restored


def prepare_code(project: Path, sources: Iterable[str], functions: dict[str, Function],
                 checker: ImportChecker | None) -> tuple[dict[str, bytes], list[CodeError]]:
    """Build each function's zip and check it: compiled, then imported in
    another process. Nothing is pushed unless every function of the batch
    passes (one save of several files goes live whole, or not at all)."""
    zips: dict[str, bytes] = {}
    errors: list[CodeError] = []
    for source in sources:
        if source not in functions:
            continue
        entries = source_entries(project, source)
        found = compile_errors(project, source, entries)
        data = package.deterministic_zip(entries)
        if not found and checker is not None:
            fn = functions[source]
            err = checker.check(source, data, fn.handler, fn.env)
            found = [err] if err else []
        errors += found
        zips[source] = data
    return zips, errors


def push_code(lam, functions: dict[str, Function], zips: dict[str, bytes], *, wait_updated: bool,
              started: float | None = None, warm: bool = True) -> Outcome:
    """UpdateFunctionCode for each changed function (in parallel), then warm
    each with {"warmup": true}. A warm-up the new code fails (it imported here
    but not in the engine) puts the previous code back, so it keeps serving."""
    started = time.perf_counter() if started is None else started
    outcome = Outcome()
    todo = {s: d for s, d in zips.items() if functions[s].sha256 != code_sha256(d)}
    outcome.unchanged = [functions[s].label for s in zips if s not in todo]
    if not todo:
        return outcome

    def one(source: str) -> tuple[str, float | None, str | None]:
        fn = functions[source]
        previous = fn.sha256
        resp = lam.update_function_code(FunctionName=fn.name, ZipFile=todo[source])
        if wait_updated:  # AWS: the update runs after the call returns
            lam.get_waiter("function_updated_v2").wait(FunctionName=fn.name)
        fn.sha256 = resp.get("CodeSha256") or code_sha256(todo[source])
        if warm:
            failed = _warm_error(lam, fn.name)
            if failed:
                return source, None, f"{failed} (previous code {previous})"
        return source, time.perf_counter() - started, None

    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        results = list(pool.map(one, todo))
    for source, seconds, failed in results:
        if failed is None:
            outcome.live[functions[source].label] = seconds
        else:
            outcome.errors.append(CodeError(source, None, None, f"warm-up failed: {failed}"))
    return outcome


def _warm_error(lam, name: str) -> str | None:
    resp = lam.invoke(FunctionName=name, Payload=b'{"warmup": true}')
    if resp.get("FunctionError"):
        body = resp["Payload"].read()[:500].decode(errors="replace")
        try:
            detail = json.loads(body)
            body = f"{detail.get('errorType', 'Error')}: {detail.get('errorMessage', '')}"
        except (ValueError, AttributeError):
            pass
        return body
    return None


def restore_code(lam, functions: dict[str, Function], zips: dict[str, bytes]) -> None:
    """Put known-good code back (after a failed warm-up), and warm it."""
    for source, data in zips.items():
        fn = functions[source]
        fn.sha256 = lam.update_function_code(FunctionName=fn.name, ZipFile=data).get("CodeSha256")
        _warm_error(lam, fn.name)


# ---------------------------------------------------------------- the loop

@dataclass
class Step:
    """What one batch of saves did. `stack`: the caller runs the change set
    (it shows and may ask), then calls `DevLoop.stack_applied`."""

    plan: Plan
    errors: list[CodeError] = field(default_factory=list)  # nothing of the batch went live
    outcome: Outcome | None = None
    stack: bool = False
    started: float = 0.0  # perf_counter() of the newest save


class DevLoop:
    """From saves to live code, one batch at a time. Holds what each function
    runs, the last code that ran without error, and what is still to go live
    (a batch that did not check out stays pending until a good save)."""

    def __init__(self, project: Path, lam, functions: dict[str, Function], checker: ImportChecker | None, *,
                 wait_updated: bool = False, lock: Callable[[], AbstractContextManager] = nullcontext):
        self.project, self.lam, self.functions, self.checker = project, lam, functions, checker
        self.wait_updated, self.lock = wait_updated, lock
        self.pending = Plan()
        self.layer = layer_stamp()
        self.good: dict[str, bytes] = {}
        for source, fn in functions.items():
            data = function_zip(project, source)
            if code_sha256(data) == fn.sha256:  # what `up` deployed is this tree's code
                self.good[source] = data

    def handle(self, paths: Iterable[Path | str]) -> Step:
        paths = list(paths)
        started = time.perf_counter() - save_time(paths)
        plan = self.pending.merge(plan_changes(self.project, paths))
        if layer_stamp() != self.layer:  # dependencies upgraded: only the change set republishes the layer
            plan = plan.merge(Plan(stack=True))
        step = Step(plan, started=started)
        if plan.empty:
            return step
        self.pending = plan
        # Every function is checked on the change set path too: it deploys their code as well.
        sources = tuple(self.functions) if plan.stack else plan.sources
        zips, step.errors = prepare_code(self.project, sources, self.functions, self.checker)
        if step.errors:
            return step
        if plan.stack:
            step.stack = True
            return step
        with self.lock():
            step.outcome = push_code(self.lam, self.functions, zips, wait_updated=self.wait_updated, started=started)
            failed = {e.source for e in step.outcome.errors}
            if failed:  # it imported here and failed in the engine: what ran before goes back
                restore_code(self.lam, self.functions, {s: self.good[s] for s in failed if s in self.good})
        for source, data in zips.items():
            if source not in failed:
                self.good[source] = data
        if not failed:
            self.pending = Plan()
        return step

    def stack_applied(self, functions: dict[str, Function]) -> None:
        """The change set ran: functions reloaded (names, handlers, environments may have changed)."""
        self.functions = functions
        self.layer = layer_stamp()
        self.pending = Plan()
        for source in functions:
            self.good[source] = function_zip(self.project, source)


# ---------------------------------------------------------------- the target

def check_stage(stage: str, local: bool) -> None:
    """`dev` on AWS only for non-production stages: pushing code around
    CloudFormation is for a developer's own stage."""
    if not local and stage.lower() in PRODUCTION_STAGES:
        raise UsageError(f"`tmctl dev` does not push code to the {stage!r} stage on AWS",
                         "use `tmctl up` for production, or `tmctl dev --stage <your-stage>`")


def save_time(paths: Iterable[Path | str], now: float | None = None) -> float:
    """Seconds since the newest save of these files (their mtime), for the `live` line; 0 when unknown."""
    now = time.time() if now is None else now
    newest = 0.0
    for p in paths:
        try:
            newest = max(newest, os.stat(p).st_mtime)
        except OSError:
            continue
    return max(0.0, now - newest) if newest else 0.0


_LEVEL = re.compile(r'"level"\s*:\s*"(\w+)"'
                    r"|\[(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\]|^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")


def log_level(message: str) -> str:
    """DEBUG / INFO / WARNING / ERROR / REPORT (START, END and REPORT lines) of one log line."""
    text = message.lstrip()
    if text.startswith(("START ", "END ", "REPORT ", "INIT_START")):
        return "REPORT"
    if text.startswith("Traceback") or "[ERROR]" in text[:40]:
        return "ERROR"
    m = _LEVEL.search(text[:400])
    if m:
        level = (m.group(1) or m.group(2) or m.group(3)).upper()
        return {"WARN": "WARNING", "CRITICAL": "ERROR", "EXCEPTION": "ERROR"}.get(level, level)
    return "INFO"
