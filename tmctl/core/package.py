"""Deterministic, content-hashed artifacts: one zip per function (its code plus
the shared `taskcore` package), one dependency layer built from the installed
distributions, and the state machine definition. Same input, same bytes, same
key, so unchanged code is never uploaded again and CloudFormation sees no change."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tmctl.core.errors import TmctlError

FUNCTIONS = {
    # template parameter → source dir under lambdas/
    "TaskApiCodeKey": "task_api",
    "EventProcessorCodeKey": "event_processor",
    "WorkflowStepsCodeKey": "workflow_steps",
}
SHARED_PACKAGES = ("common/taskcore",)
LAYER_PARAMETER = "DepsLayerKey"
LAYER_DISTRIBUTIONS = ("aws-lambda-powertools", "jmespath", "typing-extensions")
DEFINITION_PARAMETER = "StateMachineDefinitionKey"
DEFINITION_FILE = "cloudformation/statemachine.asl.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class Artifact:
    parameter: str  # the template parameter that names its S3 key
    key: str  # content-addressed S3 key
    path: Path  # local file with exactly these bytes
    sha256: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _wanted(path: Path) -> bool:
    return path.is_file() and not (_SKIP_PARTS & set(path.parts)) and path.suffix not in _SKIP_SUFFIXES


def deterministic_zip(entries: list[tuple[str, Path]]) -> bytes:
    """Zip (archive name, file) pairs in name order with fixed times and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, src in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, src.read_bytes(), compresslevel=6)
    return buf.getvalue()


def _tree(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    return [(prefix + p.relative_to(root).as_posix(), p) for p in root.rglob("*") if _wanted(p)]


def _write_whole(path: Path, data: bytes) -> None:
    """Put `data` at `path` so no reader ever finds it half written: written to
    a temp file of this writer's own beside it (same filesystem: the rename is
    atomic), then renamed over it. With one fixed temp name, two runs at once
    wrote into the same file, and one renamed the other's half-written bytes
    into place, to be uploaded under the key of the whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _holds(path: Path, sha: str) -> bool:
    """Whether `path` holds exactly the bytes whose SHA-256 is `sha`: a cached
    artifact cut short or changed since is built again, never trusted by name."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha
    except FileNotFoundError:
        return False


def _store(build_dir: Path, stem: str, data: bytes, suffix: str = ".zip") -> tuple[Path, str]:
    sha = hashlib.sha256(data).hexdigest()
    path = build_dir / f"{stem}-{sha[:20]}{suffix}"
    if not _holds(path, sha):
        _write_whole(path, data)
    return path, sha


def packaged(rel: Path) -> bool:
    """Whether a file of this name would go into a zip (not a cache, not bytecode)."""
    return not (_SKIP_PARTS & set(rel.parts)) and rel.suffix not in _SKIP_SUFFIXES


def function_entries(project: Path, source: str) -> list[tuple[str, Path]]:
    """(name in the zip, file) of one function: its code plus the shared packages."""
    lambdas = project / "lambdas"
    entries = _tree(lambdas / source)
    for shared in SHARED_PACKAGES:
        entries += _tree(lambdas / shared, prefix=Path(shared).name + "/")
    return entries


def function_artifact(project: Path, build_dir: Path, parameter: str, source: str) -> Artifact:
    path, sha = _store(build_dir, source, deterministic_zip(function_entries(project, source)))
    return Artifact(parameter, f"lambdas/{source}-{sha[:20]}.zip", path, sha)


def layer_artifact(build_dir: Path) -> Artifact:
    """Powertools and its pure-Python dependencies under python/, as a Lambda
    layer expects. Cached by distribution versions: the zip is rebuilt only
    when an upgrade changes them."""
    dists = [_distribution(name) for name in LAYER_DISTRIBUTIONS]
    stamp = ";".join(f"{d.metadata['Name']}=={d.version}" for d in dists)
    stamp_sha = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    marker = build_dir / f"layer-{stamp_sha}.sha256"
    if marker.exists():
        sha = marker.read_text().strip()
        path = build_dir / f"deps-layer-{sha[:20]}.zip"
        if _holds(path, sha):
            return Artifact(LAYER_PARAMETER, f"layers/deps-{sha[:20]}.zip", path, sha)
    entries: list[tuple[str, Path]] = []
    for dist in dists:
        files = [(rel, Path(dist.locate_file(rel))) for rel in dist.files or []]
        found = [("python/" + rel.as_posix(), src) for rel, src in files
                 if rel.name != "RECORD" and rel.parts[0] not in {"..", "bin"} and _wanted(src)]
        if not found:  # installed without a RECORD (some system packagers): the layer would miss it
            raise TmctlError(f"cannot build the Lambda layer: no installed files listed for {dist.metadata['Name']}",
                             "install tmctl with pip or pipx, which record every file of its dependencies")
        entries += found
    path, sha = _store(build_dir, "deps-layer", deterministic_zip(entries))
    _write_whole(marker, sha.encode())
    return Artifact(LAYER_PARAMETER, f"layers/deps-{sha[:20]}.zip", path, sha)


def _distribution(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        raise TmctlError(f"cannot build the Lambda layer: {name} is not installed beside tmctl",
                         "reinstall tmctl (pip or pipx installs its dependencies)") from None


def definition_artifact(project: Path, build_dir: Path) -> Artifact:
    data = (project / DEFINITION_FILE).read_bytes()
    path, sha = _store(build_dir, "statemachine", data, suffix=".asl.json")
    return Artifact(DEFINITION_PARAMETER, f"statemachine/{sha[:20]}.asl.json", path, sha)


def build_all(project: Path, build_dir: Path) -> list[Artifact]:
    build_dir.mkdir(parents=True, exist_ok=True)
    artifacts = [function_artifact(project, build_dir, param, src) for param, src in FUNCTIONS.items()]
    artifacts.append(layer_artifact(build_dir))
    artifacts.append(definition_artifact(project, build_dir))
    return artifacts
