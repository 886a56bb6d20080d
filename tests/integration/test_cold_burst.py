"""300 tasks posted concurrently right after a cold deploy all reach COMPLETED:
a fresh stage (new functions, no workers, no warm-up) takes the burst while
its workers are still starting."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import STACK_PARAMS, wait_for
from tmctl.core.api import TaskApi
from tmctl.core.deploy import delete_stack
from tmctl.core.target import Clients
from tmctl.core.up import bring_up

pytestmark = pytest.mark.integration
BURST = 300


def test_burst_after_cold_deploy_loses_nothing(env):
    target = dataclasses.replace(env.target, stage="cold")
    clients = Clients(target)
    stack = bring_up(clients, target, overrides=STACK_PARAMS, warm=False).stack
    try:
        api = TaskApi(stack.api_url, max_attempts=30)
        run = uuid.uuid4().hex[:8]
        ids = [f"cold-{run}-{i:04d}" for i in range(BURST)]
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(lambda i: api.create({"taskID": i}).status, ids))
        assert statuses.count(202) == BURST, {s: statuses.count(s) for s in set(statuses)}

        def unfinished() -> list[str]:
            table = stack.table
            done = set()
            for page in clients.dynamodb.get_paginator("scan").paginate(
                    TableName=table, ProjectionExpression="taskID, #s", ExpressionAttributeNames={"#s": "status"}):
                done |= {i["taskID"]["S"] for i in page["Items"] if i["status"]["S"] == "COMPLETED"}
            return [i for i in ids if i not in done]

        started = time.monotonic()
        left = wait_for(unfinished, lambda rest: not rest, timeout=180, interval=1)
        assert left == [], f"{len(left)} of {BURST} tasks never completed (after {time.monotonic() - started:.0f}s)"
        dlq = clients.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["All"])["Attributes"]
        assert dlq["ApproximateNumberOfMessages"] == "0" and dlq["ApproximateNumberOfMessagesNotVisible"] == "0"
        executions = [e for p in clients.stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=stack.state_machine_arn) for e in p["executions"]]
        assert len(executions) == BURST and {e["status"] for e in executions} == {"SUCCEEDED"}
    finally:
        delete_stack(clients.cloudformation, target)
