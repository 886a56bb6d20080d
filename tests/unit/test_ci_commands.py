"""CI runs what a newcomer runs: the buildspec's test phase, .ci/run and the
README's quick start share one test command, and CodeBuild and .ci/run run the
same checks before it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def buildspec() -> dict:
    return yaml.safe_load((ROOT / "buildspec.yml").read_text())


def ci_run_commands() -> list[str]:
    """.ci/run's commands, comments and blank lines dropped."""
    lines = (line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def readme_test_command() -> str:
    """The one command in the code block the quick start gives for running the tests."""
    text = (ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    after = quick_start.split("Run the tests", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block, "the quick start has no code block after 'Run the tests'"
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 1, commands
    return commands[0]


def test_the_buildspec_ci_and_readme_run_the_same_test_command():
    # GIVEN the three places that say how the tests are run
    readme = readme_test_command()
    ci = [c for c in ci_run_commands() if "pytest" in c]
    build = [c for c in buildspec()["phases"]["build"]["commands"] if "pytest" in c]

    # THEN each runs it once, word for word
    assert ci == [readme]
    assert build == [readme]


def test_the_junit_report_comes_from_pytests_own_variable_and_feeds_codebuild():
    # The test command stays the README's; the report is asked for through PYTEST_ADDOPTS.
    spec = buildspec()
    addopts = shlex.split(spec["env"]["variables"]["PYTEST_ADDOPTS"])
    path = next(a.split("=", 1)[1] for a in addopts if a.startswith("--junitxml="))
    report = spec["reports"]["pytest"]

    assert report["file-format"] == "JUNITXML"
    assert Path(report.get("base-directory", "."), report["files"][0]) == Path(path)


CHECKERS = ("ruff", "cfn-lint", "checkov", "detect-secrets-hook")


def checks(commands: list[str]) -> dict[str, list[list[str]]]:
    """Each checker's invocations, by name, with their arguments: the same
    check whichever venv it is run from (`.venv-lint/bin/checkov` is checkov)."""
    found: dict[str, list[list[str]]] = {}
    for command in commands:
        words = shlex.split(command)
        name = Path(words[0]).name if words else ""
        if name in CHECKERS:
            found.setdefault(name, []).append(words[1:])
    return found


def test_codebuild_runs_the_same_checks_as_ci():
    ci = checks(ci_run_commands())
    build = checks(buildspec()["phases"]["pre_build"]["commands"])

    assert {"ruff", "cfn-lint", "detect-secrets-hook"} <= set(ci)
    assert build == ci


def cloudformation_templates() -> set[str]:
    return {f"cloudformation/{p.name}" for p in (ROOT / "cloudformation").glob("*.yaml")
            if re.search(r"^Resources:", p.read_text(), re.M)}


@pytest.mark.parametrize("source", ["ci", "buildspec"])
def test_cfn_lint_covers_every_template(source):
    commands = ci_run_commands() if source == "ci" else buildspec()["phases"]["pre_build"]["commands"]
    linted = {arg for args in checks(commands).get("cfn-lint", []) for arg in args}

    assert cloudformation_templates() <= linted
    assert {"cloudformation/template.yaml", "cloudformation/pipeline.yaml"} <= cloudformation_templates()


def test_both_install_the_same_extras():
    ci = [c for c in ci_run_commands() if "pip install" in c and "-e" in c]
    build = [c for c in buildspec()["phases"]["install"]["commands"] if "pip install" in c and "-e" in c]

    assert [c.replace("--quiet ", "") for c in ci] == build


def test_the_deploy_is_the_last_step_and_only_after_everything_passed():
    phases = buildspec()["phases"]
    build = phases["build"]["commands"]

    # Each phase stops the build at its first failing command, so the deploy,
    # last in `build`, runs only when install, lint, scan, tests and package passed.
    assert all(phases[p].get("on-failure") == "ABORT" for p in ("install", "pre_build", "build"))
    assert re.fullmatch(r'.*tmctl --stage "\$DEPLOY_STAGE" up --yes -p RolePermissionsBoundary="\$ROLE_BOUNDARY_ARN"',
                        build[-1])
    assert build.index(readme_test_command()) < len(build) - 1
    assert "post_build" not in phases  # nothing deploys "finally"


def test_the_pipeline_project_sets_the_variables_the_buildspec_reads():
    from tmctl.core.deploy import load_template

    project = load_template(ROOT / "cloudformation" / "pipeline.yaml")["Resources"]["BuildProject"]["Properties"]
    names = {v["Name"] for v in project["Environment"]["EnvironmentVariables"]}

    assert project["Source"]["BuildSpec"] == "buildspec.yml"
    assert names == {"DEPLOY_APP", "DEPLOY_STAGE", "ROLE_BOUNDARY_ARN"} <= set(buildspec()["env"]["variables"])


def test_the_deploy_gives_the_stage_roles_the_pipelines_boundary():
    # The build role may create the stage's roles only with RoleBoundaryPolicy as their
    # boundary (tests/unit/test_pipeline.py): the deploy must pass it, as the parameter the
    # template sets on every role.
    from tmctl.core.deploy import load_template

    deploy = shlex.split(buildspec()["phases"]["build"]["commands"][-1])
    params = [deploy[i + 1] for i, word in enumerate(deploy) if word in ("-p", "--param")]
    template = load_template(ROOT / "cloudformation" / "template.yaml")

    assert params == ["RolePermissionsBoundary=$ROLE_BOUNDARY_ARN"]
    assert "RolePermissionsBoundary" in template["Parameters"]
    assert buildspec()["env"]["variables"]["ROLE_BOUNDARY_ARN"] == ""  # a hand-made project: no boundary


def test_the_secret_scan_baseline_allows_nothing_by_line_and_still_catches_a_key(tmp_path, monkeypatch):
    # The baseline carries filters (each explained in the README), never audited
    # findings whose line numbers would drift; and the filters do not swallow a real key.
    import json

    from detect_secrets.core import baseline
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import transient_settings

    data = json.loads((ROOT / ".secrets.baseline").read_text())
    assert data["results"] == {}
    leak = tmp_path / "leak.py"
    leak.write_text('aws_secret_access_key = "kR9vQ2mX7pL4tW8zN3bF6hJ1cY5dS0gA2eU7iO4q"\n')  # pragma: allowlist secret
    monkeypatch.chdir(tmp_path)

    with transient_settings({"plugins_used": data["plugins_used"], "filters_used": data["filters_used"]}):
        found = SecretsCollection()
        found.scan_file(str(leak))

    assert baseline.format_for_output(found)["results"], "the baseline's filters hide a real-looking secret"
