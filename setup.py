"""The one build step pyproject.toml cannot declare. The repository keeps
cloudformation/ and lambdas/ at its top level; an installed tmctl needs them
to deploy, so the wheel carries a copy of them (and of docker-compose.yml) as
tmctl/_bundle/, read through tmctl.core.bundle. Editable installs skip the
copy: they read the checkout itself."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = Path("tmctl", "_bundle")
TREES = ("cloudformation", "lambdas")
FILES = ("docker-compose.yml",)  # for `tmctl local start --engine localstack`
SKIP = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".pytest_cache", "tests", "test_*.py")


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        dest = Path(self.build_lib, BUNDLE)
        shutil.rmtree(dest, ignore_errors=True)  # a reused build/ must not ship files deleted since
        for tree in TREES:
            if not (ROOT / tree).is_dir():  # an sdist built without MANIFEST.in's grafts
                raise FileNotFoundError(f"{tree}/ is missing from the source tree: cannot bundle it")
            shutil.copytree(ROOT / tree, dest / tree, ignore=SKIP)
        for name in FILES:
            shutil.copy2(ROOT / name, dest / name)


setup(cmdclass={"build_py": BuildPyWithBundle})
