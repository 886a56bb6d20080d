"""tmctl.core.package: same input → same bytes → same key; changed input → new key."""

from __future__ import annotations

import hashlib
import io
import os
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
