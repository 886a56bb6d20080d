"""Runtime configuration read from SSM Parameter Store (names come from the
environment; values are cached by Powertools Parameters)."""

from __future__ import annotations

import fnmatch
import json
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters

logger = Logger(child=True)

CONFIG_MAX_AGE = int(os.environ.get("CONFIG_CACHE_SECONDS", "5"))
PRODUCTION_STAGES = frozenset({"prod", "production"})


def failure_rules() -> list[dict]:
    """The failure-injection switch: a JSON list of {"at": <processor|validate|
    enrich|process>, "match": <taskID glob>}. Ignored on production stages, so
    a stray value there can never fail real work."""
    name = os.environ.get("FAILURE_INJECTION_PARAM")
    if not name or os.environ.get("STAGE", "").lower() in PRODUCTION_STAGES:
        return []
    try:
        raw = parameters.get_parameter(name, max_age=CONFIG_MAX_AGE)
    except parameters.exceptions.GetParameterError:
        # A missing or unreadable switch must not stop real work: no rules.
        logger.warning("failure-injection parameter unreadable; injecting nothing", extra={"parameter": name})
        return []
    try:
        rules = json.loads(raw or "[]")
    except ValueError:
        return []
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def injected_failure(at: str, task_id: str) -> bool:
    return any(r.get("at") == at and fnmatch.fnmatchcase(task_id, str(r.get("match", "*")))
               for r in failure_rules())
