"""Shared test set-up. Markers (unit, integration) are declared in pyproject.toml
and enforced with --strict-markers.

`python -m pytest` runs on parallel workers (pytest-xdist, `-n auto` in
pyproject.toml), whole modules per worker (`--dist loadfile`: a module's
fixtures are built once); each worker's integration tests deploy to an emulator
of their own, on a stage of their own."""

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int:
    """One worker per core (at most MAX_WORKERS); none for a run of single files
    or tests, where starting workers would cost more than it saves."""
    if config.args and all(arg.endswith(".py") or "::" in arg for arg in config.args):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cpus))


def pytest_ignore_collect(collection_path, config):
    """`-m unit` selects no integration test: leave their modules unimported (the
    contract fuzz builds the API's schema at import, ~1.5 s per worker)."""
    if config.getoption("markexpr") == "unit" and "integration" in collection_path.parts:
        return True
    return None
