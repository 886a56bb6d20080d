"""Every TMCTL_ switch is declared once, in tmctl.core.settings, and the
user-facing ones are in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tmctl.core import settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"(?<![A-Za-z0-9_])TMCTL_[A-Z_]+")  # not Click's _TMCTL_COMPLETE
READS = re.compile(r"""(?:environ|getenv)[\[.(](?:get\()?\s*["'](TMCTL_[A-Z_]+)""")


def sources() -> list[Path]:
    files = [p for d in ("tmctl", "tests", "benchmarks", "lambdas") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50  # the tree was found
    return files


def test_every_tmctl_variable_named_in_the_code_is_declared():
    declared = {s.name for s in settings.ALL}
    named = {m for path in sources() for m in NAME.findall(path.read_text(encoding="utf-8"))}
    assert named, "no TMCTL_ variable found: the scan is broken"
    assert named <= declared, f"undeclared: {sorted(named - declared)}"


def test_no_module_reads_a_tmctl_variable_by_its_own_string():
    readers = {f"{path.relative_to(ROOT)}: {m}" for path in sources() if path.name != "settings.py"
               for m in READS.findall(path.read_text(encoding="utf-8"))}
    assert not readers, "read through tmctl.core.settings instead: " + ", ".join(sorted(readers))


def test_the_readme_lists_every_user_facing_switch():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    users = [s for s in settings.ALL if s.audience == settings.USER]
    assert users
    missing = [s.name for s in users if f"`{s.name}" not in readme]
    assert not missing, f"README lacks {missing}"


def test_a_setting_reads_the_environment_then_its_default(monkeypatch):
    monkeypatch.delenv(settings.STAGE.name, raising=False)
    assert settings.STAGE.get() == "dev"
    monkeypatch.setenv(settings.STAGE.name, "qa")
    assert settings.STAGE.get() == "qa"
    assert settings.STAGE.get({settings.STAGE.name: ""}) == "dev"  # empty = unset
    assert settings.RECORD_CALLS.enabled({}) and not settings.RECORD_CALLS.enabled({"TMCTL_RECORD_CALLS": "0"})
