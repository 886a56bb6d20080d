"""Read-only views of a deployed stack: queue depths, executions by status,
the whole-stack status at a glance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from tmctl.core.api import task_api
from tmctl.core.contract import Status
from tmctl.core.stack import StackInfo

EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
TASK_STATUSES = tuple(s.value for s in Status)  # the Lambdas' own, in their order
COUNT_CAP = 1000


@dataclass(frozen=True)
class QueueDepth:
    name: str
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass
class StackStatus:
    stack: str
    stack_status: str
    api_url: str
    api_ok: bool
    api_detail: str
    queue: QueueDepth
    dlq: QueueDepth
    executions: dict[str, int] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    engine: str = ""
    tasks: dict[str, int] = field(default_factory=dict)  # by status, each capped at COUNT_CAP

    @property
    def healthy(self) -> bool:
        return self.api_ok and self.dlq.total == 0 and self.stack_status.endswith("_COMPLETE") and \
            "ROLLBACK" not in self.stack_status

    def to_dict(self) -> dict:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def queue_depth(sqs, url: str) -> QueueDepth:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return QueueDepth(url.rsplit("/", 1)[-1], int(attrs.get("ApproximateNumberOfMessages", 0)),
                      int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                      int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)))


def count_executions(sfn, state_machine_arn: str, status: str, cap: int = COUNT_CAP) -> int:
    n = 0
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter=status,
                                   PaginationConfig={"PageSize": 1000}):
        n += len(page["executions"])
        if n >= cap:
            return cap
    return n


def executions_by_status(sfn, state_machine_arn: str) -> dict[str, int]:
    return {s: count_executions(sfn, state_machine_arn, s) for s in EXECUTION_STATUSES}


def count_tasks(ddb, table: str, status: str, cap: int = COUNT_CAP) -> int:
    """Tasks in one status, from the byStatus index (COUNT queries: no items read back)."""
    n = 0
    for page in ddb.get_paginator("query").paginate(
            TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :s", Select="COUNT",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}}):
        n += page["Count"]
        if n >= cap:
            return cap
    return n


def tasks_by_status(ddb, table: str, cap: int = COUNT_CAP) -> dict[str, int]:
    return {s: count_tasks(ddb, table, s, cap) for s in TASK_STATUSES}


def stack_status(sqs, sfn, lam, ddb, stack: StackInfo, engine: str = "", session=None) -> StackStatus:
    api = task_api(stack, session, timeout=5, max_attempts=1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        api_f = pool.submit(api.request, "GET", "/tasks?limit=1", retry=False)
        q_f = pool.submit(queue_depth, sqs, stack.queue_url)
        d_f = pool.submit(queue_depth, sqs, stack.dlq_url)
        ex_f = pool.submit(executions_by_status, sfn, stack.state_machine_arn)
        tasks_f = pool.submit(tasks_by_status, ddb, stack.table)
        fn_f = {name: pool.submit(lam.get_function, FunctionName=name) for name in stack.functions.values()}
        try:
            resp = api_f.result()
            api_ok, api_detail = resp.status == 200, f"HTTP {resp.status}"
        except Exception as err:  # unreachable API is a finding here, not a crash
            api_ok, api_detail = False, str(err)
        functions = {}
        for name, fut in fn_f.items():
            cfg = fut.result()
            conc = (cfg.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
            functions[name] = f"{cfg['Configuration'].get('State', 'Active')}" + (
                f", reserved {conc}" if conc is not None else "")
        return StackStatus(stack.name, stack.status, stack.api_url, api_ok, api_detail, q_f.result(),
                           d_f.result(), ex_f.result(), functions, engine, tasks_f.result())
