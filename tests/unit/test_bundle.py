"""tmctl.core.bundle.project_dir: TMCTL_PROJECT_DIR, then a checkout (the
working directory upwards, then tmctl's own source tree), then the bundle an
installed wheel carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmctl.core import bundle as bundle_mod
from tmctl.core.errors import UsageError
from tmctl.core.target import ENV_PROJECT_DIR

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def make_project(base: Path) -> Path:
    for marker in bundle_mod.MARKERS:
        path = base / marker
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        else:
            path.mkdir(parents=True, exist_ok=True)
    return base


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """tmctl as a wheel installs it: site-packages is no checkout, the bundle is one."""
    site = tmp_path / "site-packages"
    bundle = make_project(site / "tmctl" / "_bundle")
    monkeypatch.setattr(bundle_mod, "SOURCE_TREE", site)
    monkeypatch.setattr(bundle_mod, "BUNDLE_DIR", bundle)
    return bundle


def test_the_repository_itself_is_a_project():
    assert bundle_mod.is_project(ROOT)
    assert bundle_mod.project_dir(env={}, cwd=ROOT / "tmctl" / "core") == ROOT


def test_env_wins_over_a_checkout_and_the_bundle(tmp_path, installed):
    # GIVEN a checkout around the working directory, and another one named by the env
    checkout = make_project(tmp_path / "checkout")
    named = make_project(tmp_path / "named")
    # THEN the env's
    assert bundle_mod.project_dir(env={ENV_PROJECT_DIR: str(named)}, cwd=checkout) == named


def test_a_checkout_above_the_working_directory_wins_over_the_bundle(tmp_path, installed):
    checkout = make_project(tmp_path / "checkout")
    deep = checkout / "lambdas" / "task_api"
    deep.mkdir(parents=True)
    assert bundle_mod.project_dir(env={}, cwd=deep) == checkout


def test_the_source_tree_tmctl_runs_from_wins_over_the_bundle(tmp_path, installed, monkeypatch):
    # An editable install run from elsewhere: its checkout, not a (stale) bundle.
    source = make_project(tmp_path / "source")
    monkeypatch.setattr(bundle_mod, "SOURCE_TREE", source)
    assert bundle_mod.project_dir(env={}, cwd=tmp_path / "elsewhere") == source


def test_outside_any_checkout_the_bundle(tmp_path, installed):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert bundle_mod.project_dir(env={}, cwd=elsewhere) == installed


def test_a_directory_with_only_some_of_the_tree_is_not_a_checkout(tmp_path, installed):
    # Any serverless repo may have a cloudformation/template.yaml; ours has the rest too.
    other = tmp_path / "other"
    (other / "cloudformation").mkdir(parents=True)
    (other / "cloudformation" / "template.yaml").write_text("{}")
    (other / "lambdas").mkdir()
    assert bundle_mod.project_dir(env={}, cwd=other) == installed


def test_an_env_pointing_at_no_project_is_a_usage_error(tmp_path, installed):
    with pytest.raises(UsageError, match=ENV_PROJECT_DIR) as err:
        bundle_mod.project_dir(env={ENV_PROJECT_DIR: str(tmp_path / "nothing")}, cwd=tmp_path)
    assert "unset it" in err.value.fix


def test_no_checkout_and_no_bundle_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "SOURCE_TREE", tmp_path / "site-packages")
    monkeypatch.setattr(bundle_mod, "BUNDLE_DIR", tmp_path / "site-packages" / "tmctl" / "_bundle")
    with pytest.raises(UsageError, match="no checkout") as err:
        bundle_mod.project_dir(env={}, cwd=tmp_path)
    assert "reinstall" in err.value.fix


def test_the_environment_and_working_directory_are_read_by_default(tmp_path, installed, monkeypatch):
    named = make_project(tmp_path / "named")
    monkeypatch.setenv(ENV_PROJECT_DIR, str(named))
    assert bundle_mod.project_dir() == named
    monkeypatch.delenv(ENV_PROJECT_DIR)
    monkeypatch.chdir(tmp_path)
    assert bundle_mod.project_dir() == installed
