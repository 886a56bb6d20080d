"""A burst right after a cold deploy is absorbed, not refused: 32 plain
clients (no retries, as curl, hey or a browser) post 300 tasks to a fresh
stage (new functions, no workers, no warm-up) while its workers are still
starting; every POST gets a 2xx and every task reaches COMPLETED, one workflow
each, DLQ empty. (benchmarks/bench.py does the same with 1,000 tasks and
measures memory and throughput.)"""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import STACK_PARAMS, wait_for
from tmctl.core.api import TaskApi
from tmctl.core.deploy import delete_stack
from tmctl.core.local.limits import Machine, local_limits
from tmctl.core.target import Clients
from tmctl.core.up import bring_up

pytestmark = pytest.mark.integration
BURST = 300
CLIENTS = 32


def test_burst_after_cold_deploy_loses_nothing(env):
    target = dataclasses.replace(env.target, stage="cold")
    clients = Clients(target)
    stack = bring_up(clients, target, overrides=STACK_PARAMS, warm=False).stack
    try:
        # The front door's limit on this machine is the derived one, and fits the clients
        reserved = clients.lambda_.get_function_concurrency(FunctionName=stack.functions["TaskApi"])
        assert reserved["ReservedConcurrentExecutions"] == int(local_limits(Machine.this())["ApiConcurrency"])
        assert reserved["ReservedConcurrentExecutions"] >= CLIENTS

        # One attempt per POST, no retries; a patient timeout (hey: 20 s, curl: none) as 32 workers cold-start
        api = TaskApi(stack.api_url, max_attempts=1, timeout=60)
        run = uuid.uuid4().hex[:8]
        ids = [f"cold-{run}-{i:04d}" for i in range(BURST)]
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
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

        # Beyond the front door's limit (here lowered to 1) a client gets a clean 429 it can retry,
        # and a refused POST stores nothing.
        clients.lambda_.put_function_concurrency(FunctionName=stack.functions["TaskApi"],
                                                 ReservedConcurrentExecutions=1)
        over = [f"over-{run}-{i}" for i in range(16)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: api.create({"taskID": i, "title": "one too many"}), over))
        refused = [a for a in answers if a.status == 429]
        assert refused and {a.status for a in answers} <= {202, 429}, [a.status for a in answers]
        assert all(isinstance(a.body, dict) and a.body for a in refused), refused[0].body
        refused_ids = [i for i, a in zip(over, answers, strict=True) if a.status == 429]
        assert all(api.get(i).status == 404 for i in refused_ids)
    finally:
        delete_stack(clients.cloudformation, target)
