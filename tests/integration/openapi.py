"""Check live responses against cloudformation/openapi.yaml."""

from __future__ import annotations

from functools import cache

import yaml
from jsonschema import Draft202012Validator

from tests.conftest import PROJECT


@cache
def document() -> dict:
    return yaml.safe_load((PROJECT / "cloudformation" / "openapi.yaml").read_text())


def response_schema(method: str, path: str, status: int) -> dict:
    doc = document()
    response = doc["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response["content"]["application/json"]["schema"]


def assert_conforms(method: str, path: str, status: int, body: dict) -> None:
    """The documented status exists for this operation and the body matches its schema."""
    schema = {**response_schema(method, path, status), "components": document()["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status} breaks the OpenAPI document: {[e.message for e in errors]}"
