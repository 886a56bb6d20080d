"""A stage's runtime configuration: the SSM parameters its stack created under
/<app>/<stage>/. The stack is the one statement of which keys exist and what
each may hold (its AllowedPattern); tmctl refuses anything else before it
writes, so a typo never becomes a parameter no function reads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from tmctl.core.contract import PRODUCTION_STAGES
from tmctl.core.errors import NotFound, UsageError
from tmctl.core.target import Target

# How long the functions keep a value before reading SSM again (the template's
# ConfigCacheSeconds; `tmctl up --local` passes this), unless the stack says.
LOCAL_CACHE_SECONDS = 5
# taskcore.config.INJECTION_POINTS (the Lambda package is not importable from an
# installed tmctl; a unit test keeps the two equal).
INJECTION_POINTS = ("processor", "validate", "enrich", "process")


@dataclass(frozen=True)
class Setting:
    key: str  # the name below the stage's path, e.g. "intake"
    name: str  # the full parameter name
    value: str
    description: str
    allowed_pattern: str
    version: int
    last_modified: datetime | None
    type: str = "String"


def config_path(target: Target) -> str:
    return f"/{target.app}/{target.stage}/"


def list_settings(ssm, path: str) -> list[Setting]:
    """Every parameter under `path`, with its value and what it may hold."""
    meta = {}
    for page in ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Path", "Option": "OneLevel", "Values": [path.rstrip("/")]}]):
        for p in page["Parameters"]:
            meta[p["Name"]] = p
    settings = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path.rstrip("/"), Recursive=False):
        for p in page["Parameters"]:
            m = meta.get(p["Name"], {})
            settings.append(Setting(
                key=p["Name"][len(path):], name=p["Name"], value=p["Value"], description=m.get("Description", ""),
                allowed_pattern=m.get("AllowedPattern", ""), version=int(p.get("Version", 0)),
                last_modified=p.get("LastModifiedDate"), type=p.get("Type", "String")))
    return sorted(settings, key=lambda s: s.key)


def get_setting(ssm, path: str, key: str) -> Setting:
    settings = {s.key: s for s in list_settings(ssm, path)}
    if not settings:
        raise NotFound(f"no configuration under {path}", "deploy the stage first: tmctl up")
    if key not in settings:
        raise UsageError(f"unknown configuration key {key!r}", f"one of: {', '.join(settings)}")
    return settings[key]


def validate(setting: Setting, value: str, *, stage: str) -> None:
    """Refuse a value the functions would ignore or fall back from."""
    if setting.type == "SecureString":
        raise UsageError(f"{setting.key} is a SecureString", "tmctl config only writes plain configuration")
    if setting.allowed_pattern and not re.fullmatch(setting.allowed_pattern, value):
        raise UsageError(f"invalid value {value!r} for {setting.key}",
                         f"it must match {setting.allowed_pattern}" + (
                             f" ({setting.description})" if setting.description else ""))
    if setting.key == "failure-injection":
        _validate_failure_rules(value, stage=stage)


def _validate_failure_rules(value: str, *, stage: str) -> None:
    example = '[{"at": "process", "match": "boom-*"}]'
    try:
        rules = json.loads(value)
    except ValueError:
        raise UsageError("failure-injection is not JSON", f"give a JSON list such as '{example}'") from None
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and set(r) <= {"at", "match"} and r.get("at") in INJECTION_POINTS
            and isinstance(r.get("match", "*"), str) for r in rules):
        raise UsageError("failure-injection must be a list of {\"at\", \"match\"} objects",
                         f"'at' is one of {', '.join(INJECTION_POINTS)}; 'match' a taskID glob; e.g. '{example}'")
    if rules and stage.lower() in PRODUCTION_STAGES:
        raise UsageError(f"failure injection is ignored on the production stage {stage!r}",
                         "use it on a non-production stage")


def set_setting(ssm, path: str, key: str, value: str, *, stage: str) -> tuple[Setting, Setting]:
    """Write one value; returns (before, after). Description and pattern are
    written back with it, so no engine drops them on overwrite."""
    before = get_setting(ssm, path, key)
    validate(before, value, stage=stage)
    if value == before.value:
        return before, before
    kwargs = {"Description": before.description} if before.description else {}
    if before.allowed_pattern:
        kwargs["AllowedPattern"] = before.allowed_pattern
    put = ssm.put_parameter(Name=before.name, Value=value, Type=before.type, Overwrite=True, **kwargs)
    after = Setting(key=key, name=before.name, value=value, description=before.description,
                    allowed_pattern=before.allowed_pattern, version=int(put.get("Version", before.version + 1)),
                    last_modified=None, type=before.type)
    return before, after
