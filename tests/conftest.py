"""Shared test set-up. Markers (unit, integration) are declared in pyproject.toml
and enforced with --strict-markers."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
