"""Contract fuzzing: Schemathesis generates requests from cloudformation/openapi.yaml
(valid ones, and ones that break it on purpose) and sends them to the live API;
every answer must be documented (status code, content type, schema, headers), no
answer may be a 5xx, invalid input must be refused and valid input accepted.

Fixed seed, bounded examples: the same requests every run, in CI's time budget.
Both front doors: the session's HTTP API, and the REST API stage (`rest_env`) with
fewer examples (the routes and the function are the same; what differs is the
gateway in front, which the coverage phase and a few generated cases exercise).
It runs on the session's shared stacks, so it keeps out of other tests' way: no
generated taskID matches a failure-injection rule (nothing reaches the DLQ), and
every task it creates has finished before the module ends (the queue is drained)."""

from __future__ import annotations

import fnmatch

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from schemathesis.checks import positive_data_acceptance

from tests.conftest import PROJECT
from tests.integration.conftest import FAILURE_RULES, wait_for
from tests.integration.openapi import assert_conforms, document

pytestmark = pytest.mark.integration

OPENAPI = PROJECT / "cloudformation" / "openapi.yaml"
SEED = 20260309
MAX_EXAMPLES = 60  # per operation, fuzzing phase (the coverage phase has its own fixed set)
REST_MAX_EXAMPLES = 10


def task_count(env) -> int:
    return env.clients.dynamodb.scan(TableName=env.stack.table, Select="COUNT")["Count"]


def track_created(env):
    """taskIDs the fuzzing created (202s). Afterwards each has finished, so the
    queue is drained for the tests after this one, and they are the only new
    items: no refused request stored anything."""
    before = task_count(env)
    ids: set[str] = set()
    yield ids
    pending = wait_for(lambda: {i for i in ids if env.api.get(i).body.get("status") not in {"COMPLETED", "FAILED"}},
                       lambda rest: not rest, timeout=60, interval=0.5)
    assert not pending, f"fuzzed tasks never finished: {sorted(pending)[:5]}"
    assert task_count(env) == before + len(ids)


@pytest.fixture(scope="module")
def created(env):
    yield from track_created(env)


@pytest.fixture(scope="module")
def rest_created(rest_env):
    yield from track_created(rest_env)


# Loaded at import, not from a fixture: schemathesis.pytest.from_fixture needs a
# pytest internal (Node._nodeid) that pytest 9 no longer has. The live URL is
# given per call instead.
def load_schema(max_examples: int):
    return schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
        # A negative body can be over 16 KiB once encoded (4,001 four-byte characters): 413 is a refusal too.
        "checks": {"negative_data_rejection": {"expected-statuses": ["400", "404", "405", "409", "413", "415"]}},
    }))


schema = load_schema(MAX_EXAMPLES)
rest_schema = load_schema(REST_MAX_EXAMPLES)


def clear_of_failure_rules(case) -> None:
    """A generated taskID that a session rule fails (poison-*: to the DLQ) gets
    another first letter: same length and alphabet, so just as valid or invalid."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("taskID"), str):
        task_id = body["taskID"]
        if any(fnmatch.fnmatchcase(task_id, rule["match"]) for rule in FAILURE_RULES):
            body["taskID"] = "z" + task_id[1:]


def assert_documented(case, response) -> None:
    """Schemathesis skips its conformance checks on probes of a request's shape
    (an undeclared method, another Content-Type, no body); the document covers
    those answers too: a documented status with a body of its schema, or a 405
    that names the path's methods."""
    operations = document()["paths"][case.path]
    status = response.status_code
    if case.method.lower() in operations:
        documented = operations[case.method.lower()]["responses"]
        assert str(status) in documented, f"{case.method} {case.path} answered {status}, not in {sorted(documented)}"
        assert_conforms(case.method, case.path, status, response.json())
    elif case.method == "OPTIONS" and status == 403:
        pass  # MiniStack's gateway answers OPTIONS itself when CORS is off; on AWS the API answers 405
    else:
        assert status == 405, f"{case.method} {case.path} answered {status}, not 405"
        assert set(response.headers["allow"][0].split(", ")) == {m.upper() for m in operations}
        error_schema = {**document()["components"]["schemas"]["Error"], "components": document()["components"]}
        assert not list(Draft202012Validator(error_schema).iter_errors(response.json()))
        assert response.json()["error"] == "METHOD_NOT_ALLOWED"


def fuzz(case, env, created: set[str]) -> None:
    clear_of_failure_rules(case)
    # A nextToken is opaque: only one the API issued is valid, which a schema cannot say
    # (to it any string is). So a generated one may be refused, with a 400.
    forged_token = bool((case.query or {}).get("nextToken"))
    response = case.call_and_validate(base_url=env.stack.api_url,
                                      excluded_checks=[positive_data_acceptance] if forged_token else None)
    assert_documented(case, response)
    if forged_token:
        assert response.status_code in {200, 400}, response.text
    if case.method == "POST" and response.status_code == 202:
        created.add(response.json()["taskID"])


@schema.parametrize()
def test_live_api_conforms_to_its_document(case, env, created):
    fuzz(case, env, created)


@rest_schema.parametrize()
@pytest.mark.needs("apigateway")
def test_live_rest_api_conforms_to_its_document(case, rest_env, rest_created):
    fuzz(case, rest_env, rest_created)
