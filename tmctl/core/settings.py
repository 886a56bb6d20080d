"""Every environment switch tmctl reads, in one place: its name, its default and
who it is for. Code reads a switch through its constant here, never by a
string of its own (tests/unit/test_settings.py checks that no other module
names a TMCTL_ variable, and that the README lists the user-facing ones).

Flags win over these; these win over defaults (tmctl.core.target resolves the
target from them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

USER, TEST, BENCHMARK = "user", "test", "benchmark"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    audience: str  # user | test | benchmark
    help: str

    def get(self, env: Mapping[str, str] | None = None) -> str | None:
        """The value set in `env` (the process environment by default), else the default.
        An empty value counts as unset."""
        value = (os.environ if env is None else env).get(self.name)
        return value if value else self.default

    def enabled(self, env: Mapping[str, str] | None = None) -> bool:
        return (self.get(env) or "").strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------- for users
LOCAL = Setting("TMCTL_LOCAL", None, USER, "1: target the local emulator, as --local does")
ENDPOINT_URL = Setting("TMCTL_ENDPOINT_URL", None, USER,
                       "the emulator's endpoint, as --endpoint-url (else AWS_ENDPOINT_URL, http://localhost:4566)")
STAGE = Setting("TMCTL_STAGE", "dev", USER, "the stage, as --stage")
APP = Setting("TMCTL_APP", "taskmanager", USER, "the app name: stacks are <app>-<stage>")
STATE_DIR = Setting("TMCTL_STATE_DIR", None, USER,
                    "where tmctl keeps the emulator's process record, log, state and build cache "
                    "(default $XDG_STATE_HOME/tmctl, else ~/.local/state/tmctl)")
PROJECT_DIR = Setting("TMCTL_PROJECT_DIR", None, USER,
                      "the checkout to deploy from (default: the working directory upwards, then the bundle)")
DEBUG = Setting("TMCTL_DEBUG", None, USER, "1: tracebacks instead of one-line errors, as --debug")
EMULATOR_LOG_LEVEL = Setting("TMCTL_EMULATOR_LOG_LEVEL", "WARNING", USER,
                             "the embedded emulator's LOG_LEVEL (its log: `tmctl local logs`)")
SFN_WAIT_SCALE = Setting("TMCTL_SFN_WAIT_SCALE", "0.1", USER,
                         "the embedded emulator's Step Functions wait/retry scale (1: AWS's timing)")
PERSIST = Setting("TMCTL_PERSIST", "1", USER,
                  "0: the embedded emulator forgets everything at `local stop` (default 1: its stack, tasks, "
                  "messages, config and executions come back at the next start)")
RECORD_CALLS = Setting("TMCTL_RECORD_CALLS", "1", USER,
                       "0: the embedded emulator does not record calls (`tmctl iam report` sees none)")

# ---------------------------------------------------------------- for tests
AWS_MODE_ENDPOINT_URL = Setting("TMCTL_AWS_ENDPOINT_URL", None, TEST,
                                "an AWS target in every respect whose calls go to this endpoint "
                                "(tests/integration/test_aws_path.py)")
TEST_ENGINE_LACKS = Setting("TMCTL_TEST_ENGINE_LACKS", None, TEST,
                            "features the engine under test lacks that no read-only call reveals, "
                            "e.g. lambda,dynamodb: their tests are skipped with that reason")
TEST_LOCALSTACK_PYTHON = Setting("TMCTL_TEST_LOCALSTACK_PYTHON", None, TEST,
                                 "the Python 3.13 of a venv with localstack-core 2026.3.0 that "
                                 "tests/integration/test_localstack_host.py starts LocalStack with "
                                 "(default: .venv-localstack/bin/python, as .ci/run makes it; neither: skipped)")
TEST_CHROMIUM = Setting("TMCTL_TEST_CHROMIUM", None, TEST,
                        "the chromium that tests/integration/test_console_browser.py, benchmarks/bench_console.py "
                        "and benchmarks/console_screenshots.py drive through Playwright (default: `chromium` on "
                        "PATH, Debian's package; neither: the browser test is skipped)")

# ---------------------------------------------------------------- for benchmarks
BENCH_AWSCLI = Setting("TMCTL_BENCH_AWSCLI", None, BENCHMARK,
                       "the aws CLI benchmarks/bench_queues.py compares `tmctl queue stats` with "
                       "(default: installed into a throwaway venv)")

ALL: tuple[Setting, ...] = (LOCAL, ENDPOINT_URL, STAGE, APP, STATE_DIR, PROJECT_DIR, DEBUG, EMULATOR_LOG_LEVEL,
                            SFN_WAIT_SCALE, RECORD_CALLS, PERSIST, AWS_MODE_ENDPOINT_URL, TEST_ENGINE_LACKS,
                            TEST_LOCALSTACK_PYTHON, TEST_CHROMIUM, BENCH_AWSCLI)
