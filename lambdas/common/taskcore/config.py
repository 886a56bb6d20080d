"""Runtime configuration read from SSM Parameter Store.

The stack creates the parameters under /<app>/<stage>/…; each function is told
the names it may read by environment (`*_PARAM`), and its role may read only
those. Powertools Parameters caches each value for CONFIG_CACHE_SECONDS (the
template's ConfigCacheSeconds: 30 on AWS, where SSM's GetParameter quota is
shared by the account; 5 locally). A value that cannot be refreshed keeps the
last one read, so a paused intake stays paused while SSM throttles a burst; one
never read, or invalid, falls back to the documented default. Either way real
work goes on, with a warning in the log."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import threading

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from botocore.exceptions import BotoCoreError, ClientError

from taskcore.aws import BOTO_CONFIG
from taskcore.contract import PRODUCTION_STAGES

logger = Logger(child=True)

CONFIG_MAX_AGE = int(os.environ.get("CONFIG_CACHE_SECONDS", "30"))
# config key → the environment variable holding its parameter name.
PARAM_ENV = {
    "failure-injection": "FAILURE_INJECTION_PARAM",
    "intake": "INTAKE_PARAM",
    "log-level": "LOG_LEVEL_PARAM",
    "retry-base-seconds": "RETRY_BASE_PARAM",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
INTAKE_STATES = ("open", "paused")
INJECTION_POINTS = ("processor", "validate", "enrich", "process")
RETRY_BASE_MAX = 60  # the processor caps every back-off here

_last_good: dict[str, str] = {}  # parameter name → the last value read
_provider_lock = threading.Lock()


def _provider() -> None:
    """Powertools' SSM provider on the handlers' own (default) boto3 session, built
    once even when the processor's record threads get here first. (Powertools
    would build a new Session, loading botocore's endpoint data again: ~8 MB
    more per worker.)"""
    if "ssm" in DEFAULT_PROVIDERS:
        return
    with _provider_lock:
        if "ssm" not in DEFAULT_PROVIDERS:
            DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=boto3.client("ssm", config=BOTO_CONFIG))


def forget() -> None:
    """Drop cached and last-read values (tests)."""
    parameters.clear_caches()
    _last_good.clear()


def _value(key: str) -> str | None:
    """This function's value for `key`, or None (not given to it, missing, unreadable).

    One GetParameter per name, each cached on its own, so reading one key never
    refreshes another. (GetParameters would be one call, but MiniStack
    authorizes it against "*" rather than each name, so the per-name grants AWS
    honours would be denied locally.)"""
    name = os.environ.get(PARAM_ENV[key])
    if not name:
        return None
    try:
        _provider()
        value = parameters.get_parameter(name, max_age=CONFIG_MAX_AGE)
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as err:
        kept = _last_good.get(name)
        logger.warning("configuration parameter unreadable; " + (
            "keeping the last value read" if kept is not None else "using its default"),
            extra={"parameter": name, "error": str(err)[:300]})
        return kept
    if isinstance(value, str):
        _last_good[name] = value
        return value
    return None


def _choice(key: str, allowed: tuple[str, ...], default: str) -> str:
    raw = _value(key)
    if raw is None:
        return default
    value = raw.strip()
    if key == "log-level":
        value = value.upper()
    if value not in allowed:
        logger.warning("invalid configuration value; using the default", extra={"key": key, "default": default})
        return default
    return value


def intake_open() -> bool:
    """The maintenance switch: 'paused' refuses new tasks (503), reads go on."""
    return _choice("intake", INTAKE_STATES, "open") == "open"


def log_level() -> str:
    return _choice("log-level", LOG_LEVELS, os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO").upper())


def apply_log_level(target_logger: Logger) -> None:
    """Follow the stage's log-level parameter without a redeploy."""
    level = log_level()
    if logging.getLevelName(target_logger.log_level) != level:
        target_logger.setLevel(level)


def retry_base_seconds(default: int) -> int:
    """First back-off of a failed record, in seconds (0-60)."""
    raw = _value("retry-base-seconds")
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= RETRY_BASE_MAX:
        logger.warning("invalid configuration value; using the default", extra={"key": "retry-base-seconds"})
        return default
    return value


def failure_rules() -> list[dict]:
    """The failure-injection switch: a JSON list of {"at": <processor|validate|
    enrich|process>, "match": <taskID glob>}. Ignored on production stages, so
    a stray value there can never fail real work."""
    if not os.environ.get(PARAM_ENV["failure-injection"]) or os.environ.get("STAGE", "").lower() in PRODUCTION_STAGES:
        return []
    raw = _value("failure-injection")
    try:
        rules = json.loads(raw or "[]")
    except ValueError:
        return []
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def injected_failure(at: str, task_id: str) -> bool:
    return any(r.get("at") == at and fnmatch.fnmatchcase(task_id, str(r.get("match", "*")))
               for r in failure_rules())
