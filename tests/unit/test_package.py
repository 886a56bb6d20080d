"""tmctl.core.package: same input → same bytes → same key; changed input → new key."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from tmctl.core import package

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A minimal project tree: one function and the shared package."""
    root = tmp_path / "project"
    write(root / "lambdas" / "task_api" / "app.py", "def handler(event, context):\n    return {}\n")
    write(root / "lambdas" / "common" / "taskcore" / "__init__.py", '"""core"""\n')
    write(root / "lambdas" / "common" / "taskcore" / "model.py", "X = 1\n")
    return root


def build_dir(base: Path, name: str = "build") -> Path:
    # build_all creates it; the per-artifact functions expect it to exist
    path = base / name
    path.mkdir(exist_ok=True)
    return path


def zip_names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_deterministic_zip_is_byte_identical_regardless_of_mtime_and_order(tmp_path):
    # GIVEN two files
    a, b = write(tmp_path / "a.py", "A = 1\n"), write(tmp_path / "b.py", "B = 2\n")
    entries = [("pkg/a.py", a), ("b.py", b)]

    # WHEN zipped twice, the second time after touching the files and listing them reversed
    first = package.deterministic_zip(entries)
    os.utime(a, (1_000_000_000, 1_000_000_000))
    os.utime(b, (2_000_000_000, 2_000_000_000))
    second = package.deterministic_zip(list(reversed(entries)))

    # THEN the bytes are identical (so the hash, the S3 key and CloudFormation's view are too)
    assert first == second
    assert zip_names(first) == ["b.py", "pkg/a.py"]
    info = zipfile.ZipFile(io.BytesIO(first)).getinfo("b.py")
    assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert info.external_attr >> 16 == 0o644


def test_deterministic_zip_changes_with_content(tmp_path):
    src = write(tmp_path / "a.py", "A = 1\n")
    before = package.deterministic_zip([("a.py", src)])

    src.write_text("A = 2\n")

    assert package.deterministic_zip([("a.py", src)]) != before


def test_function_artifact_key_is_stable_and_content_addressed(project, tmp_path):
    # GIVEN the same tree built into two different build dirs
    one = package.function_artifact(project, build_dir(tmp_path, "b1"), "TaskApiCodeKey", "task_api")
    two = package.function_artifact(project, build_dir(tmp_path, "b2"), "TaskApiCodeKey", "task_api")

    # THEN both builds agree, and the key names the bytes' hash
    assert one.key == two.key
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.sha256 == hashlib.sha256(one.path.read_bytes()).hexdigest()
    assert one.key == f"lambdas/task_api-{one.sha256[:20]}.zip"
    # the handler at the top and taskcore/ beside it, as the handlers import it
    assert zip_names(one.path.read_bytes()) == ["app.py", "taskcore/__init__.py", "taskcore/model.py"]


@pytest.mark.parametrize("change", ["handler", "shared"])
def test_function_artifact_key_changes_when_a_file_changes(project, tmp_path, change):
    before = package.function_artifact(project, build_dir(tmp_path), "TaskApiCodeKey", "task_api")

    target = {"handler": project / "lambdas" / "task_api" / "app.py",
              "shared": project / "lambdas" / "common" / "taskcore" / "model.py"}[change]
    target.write_text(target.read_text() + "# changed\n")
    after = package.function_artifact(project, build_dir(tmp_path), "TaskApiCodeKey", "task_api")

    assert after.key != before.key
    assert before.path.exists() and after.path.exists()  # old artifacts stay valid for rollbacks


def test_bytecode_and_caches_do_not_change_the_key(project, tmp_path):
    # Importing the code locally writes __pycache__; that must not force a redeploy.
    before = package.function_artifact(project, build_dir(tmp_path), "TaskApiCodeKey", "task_api")
    (project / "lambdas" / "task_api" / "__pycache__").mkdir()
    (project / "lambdas" / "task_api" / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\x00junk")
    (project / "lambdas" / "common" / "taskcore" / "stray.pyc").write_bytes(b"\x00junk")

    after = package.function_artifact(project, build_dir(tmp_path), "TaskApiCodeKey", "task_api")

    assert after.key == before.key


class Interleaving:
    """Two writers of one artifact, run in the worst order a race can take:
    the first writes its file whole and is about to rename it into place when
    the second opens its own temp file and has written half of it; only then
    does the first rename, and its build reads what it made; then the second
    finishes. Hooks io.open (under Path.write_bytes and os.fdopen alike) and
    os.replace, so any way of writing a temp file and renaming it meets it."""

    def __init__(self, monkeypatch, build: Path):
        self.build, self.lock, self.opened = str(build), threading.Lock(), 0
        self.first_renaming, self.second_half_written, self.first_read = (threading.Event() for _ in range(3))
        self.first_thread: threading.Thread | None = None
        self.real_open, self.real_replace = io.open, os.replace
        monkeypatch.setattr(io, "open", self.open)
        monkeypatch.setattr(os, "replace", self.replace)

    def open(self, file, mode="r", *args, **kwargs):
        ours = mode == "wb" and (isinstance(file, int) or str(file).startswith(self.build))
        if not ours:
            return self.real_open(file, mode, *args, **kwargs)
        with self.lock:
            self.opened += 1
            second = self.opened == 2
            if self.opened == 1:
                self.first_thread = threading.current_thread()
        if second:
            self.first_renaming.wait(5)
        return HalfThenPause(self.real_open(file, mode, *args, **kwargs), self if second else None)

    def replace(self, src, dst):
        if threading.current_thread() is self.first_thread and not self.first_renaming.is_set():
            self.first_renaming.set()
            self.second_half_written.wait(5)
        return self.real_replace(src, dst)


class HalfThenPause:
    """A file whose write, for the second writer, stops half way until the
    first build has read its artifact."""

    def __init__(self, f, race: Interleaving | None):
        self.f, self.race = f, race

    def write(self, data) -> int:
        view = memoryview(data)
        if self.race is None:
            return self.f.write(view)
        half = len(view) // 2
        self.f.write(view[:half])
        self.f.flush()
        self.race.second_half_written.set()
        self.race.first_read.wait(5)
        self.f.write(view[half:])
        return len(view)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_two_builds_at_once_never_put_a_half_written_artifact_in_place(project, tmp_path, monkeypatch):
    # GIVEN two `tmctl up` runs building the same artifact at once, in the race's worst order
    build = build_dir(tmp_path)
    race = Interleaving(monkeypatch, build)
    seen: dict[str, tuple[bytes, str]] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            art = package.function_artifact(project, build, "TaskApiCodeKey", "task_api")
            seen[name] = (art.path.read_bytes(), art.sha256)  # what `up` would upload next
            race.first_read.set()
        except BaseException as err:  # noqa: BLE001 - reported below, with the other build's
            errors.append(err)
            race.first_read.set()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    # THEN each build finds its artifact whole (the bytes its key names), neither fails,
    # and no temp file is left behind
    assert race.opened == 2, "both builds wrote the artifact"
    assert {name: hashlib.sha256(data).hexdigest() == sha for name, (data, sha) in seen.items()} == {
        "one": True, "two": True}
    assert errors == []
    assert [p.name for p in build.iterdir()] == [f"task_api-{seen['one'][1][:20]}.zip"]


def test_a_cached_artifact_that_is_not_whole_is_built_again(project, tmp_path):
    # GIVEN an artifact cut short in the build dir (a run killed by an older tmctl, a full disk)
    build = build_dir(tmp_path)
    art = package.function_artifact(project, build, "TaskApiCodeKey", "task_api")
    whole = art.path.read_bytes()
    art.path.write_bytes(whole[: len(whole) // 2])

    # WHEN the same code is built again, THEN the artifact is whole again, under the same key
    again = package.function_artifact(project, build, "TaskApiCodeKey", "task_api")
    assert (again.key, again.path.read_bytes()) == (art.key, whole)


def test_build_all_on_the_real_project(tmp_path, template):
    # WHEN the real project is built
    artifacts = package.build_all(ROOT, tmp_path / "build")

    # THEN there is one artifact per *Key parameter the template declares
    key_params = {name for name in template["Parameters"] if name.endswith("Key")}
    assert len(artifacts) == 5
    assert {a.parameter for a in artifacts} == key_params

    by_param = {a.parameter: a for a in artifacts}
    for art in artifacts:
        data = art.path.read_bytes()
        assert art.sha256 == hashlib.sha256(data).hexdigest()
        assert art.sha256[:20] in art.key
        assert art.size == len(data) > 0

    # each function zip is its handler plus taskcore, and nothing compiled
    for param, source in package.FUNCTIONS.items():
        art = by_param[param]
        assert art.key == f"lambdas/{source}-{art.sha256[:20]}.zip"
        names = zip_names(art.path.read_bytes())
        assert "app.py" in names and "taskcore/model.py" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    # the layer keeps Powertools under python/, as Lambda layers must
    layer = zip_names(by_param["DepsLayerKey"].path.read_bytes())
    assert "python/aws_lambda_powertools/__init__.py" in layer
    assert by_param["StateMachineDefinitionKey"].path.read_bytes() == (
        ROOT / "cloudformation" / "statemachine.asl.json").read_bytes()

    # AND a second build gives the same keys (no spurious uploads/updates)
    assert [a.key for a in package.build_all(ROOT, tmp_path / "build2")] == [a.key for a in artifacts]


def test_each_template_function_uses_the_artifact_parameter_the_packager_fills(template):
    # The template's Code.S3Key Refs and package.FUNCTIONS must name the same parameters.
    refs = {res["Properties"]["Code"]["S3Key"]["Ref"] for res in template["Resources"].values()
            if res["Type"] == "AWS::Lambda::Function"}

    assert refs == set(package.FUNCTIONS)
