"""The front door with ApiAuth=AWS_IAM, on the embedded emulator: a second
stage of the same template, deployed beside the session's open one.

MiniStack 1.5.33 refuses an unsigned request to an AWS_IAM route (403) but
does not verify the signature itself (that part is proven by
tests/unit/test_api_signing.py against the documented algorithm); what this
shows is that the template's routes really are IAM-protected when asked, that
tmctl reads the stack's ApiAuth output and signs, and that the seed's body
goes through signed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tmctl.core.api import ok, task_api

from .conftest import STACK_PARAMS, another_stage
from .openapi import assert_conforms

pytestmark = [pytest.mark.integration, pytest.mark.needs("apigatewayv2", "lambda", "cloudformation")]


@pytest.fixture(scope="module")
def iam_stage(env):
    with another_stage(env.target, "itiam", {**STACK_PARAMS, "ApiAuth": "AWS_IAM"}, warm=False) as deployed:
        yield deployed


def test_an_iam_stage_refuses_unsigned_requests_and_takes_tmctls_signed_ones(iam_stage):
    clients, stack = iam_stage
    assert stack.outputs["ApiAuth"] == "AWS_IAM"

    # WHEN the seed's request is sent unsigned, as curl would
    unsigned = urllib.request.Request(stack.api_url + "/tasks", data=json.dumps({"taskID": "task-173"}).encode(),
                                      method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)  # noqa: S310 - the emulator on 127.0.0.1

    # THEN the gateway refuses it before the function runs, as the OpenAPI document says
    assert refused.value.code == 403
    assert_conforms("POST", "/tasks", 403, json.loads(refused.value.read()))

    # WHEN tmctl sends it, choosing the client from the stack's outputs
    api = task_api(stack, clients.session)
    assert api.signer is not None
    created = ok(api.create({"taskID": "task-173"}))

    # THEN it is accepted and readable, signed
    assert created["taskID"] == "task-173"
    assert ok(api.get("task-173"))["taskID"] == "task-173"


def test_the_session_stage_stays_open_for_local_use(env):
    # tmctl up --local passes ApiAuth=NONE: the seed's open POST /tasks
    assert env.stack.outputs["ApiAuth"] == "NONE"
    assert task_api(env.stack, env.clients.session).signer is None
