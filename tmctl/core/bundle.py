"""Where tmctl finds what it deploys: cloudformation/ and lambdas/.

A checkout wins: TMCTL_PROJECT_DIR, then the working directory and its
parents, then the tree tmctl itself is imported from (an editable install's
checkout). Otherwise the copy an installed wheel carries in tmctl/_bundle/
(setup.py puts it there at build time), so `pipx install` works anywhere."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tmctl.core.errors import UsageError
from tmctl.core.target import ENV_PROJECT_DIR

# What makes a directory this project's tree (not any repo with a template.yaml).
MARKERS = ("cloudformation/template.yaml", "cloudformation/statemachine.asl.json", "lambdas/common/taskcore")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../tmctl
SOURCE_TREE = PACKAGE_DIR.parent  # the checkout, when tmctl is imported from one
BUNDLE_DIR = PACKAGE_DIR / "_bundle"


def is_project(base: Path) -> bool:
    return all((base / marker).exists() for marker in MARKERS)


def project_dir(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """A directory holding cloudformation/ and lambdas/: env, then a checkout, then the bundle."""
    env = os.environ if env is None else env
    if env.get(ENV_PROJECT_DIR):
        base = Path(env[ENV_PROJECT_DIR]).expanduser()
        if not is_project(base):
            raise UsageError(f"{ENV_PROJECT_DIR}={base} holds no tmctl project (cloudformation/, lambdas/)",
                             f"point {ENV_PROJECT_DIR} at a checkout, or unset it")
        return base
    here = Path.cwd() if cwd is None else cwd
    for base in (here, *here.parents, SOURCE_TREE, BUNDLE_DIR):
        if is_project(base):
            return base
    raise UsageError("cannot find cloudformation/ and lambdas/: no checkout here and this tmctl carries no bundle",
                     f"reinstall tmctl from its wheel, run it inside a checkout, or set {ENV_PROJECT_DIR}")
