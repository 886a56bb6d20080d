"""What the console shows and does, as plain Python: every figure and every
action is a call to the same tmctl.core function the CLI makes (named beside
each method). No web code here: the pages render these dataclasses, the tests
drive them with moto or fakes."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tmctl.core.backend import Backend
from tmctl.core.contract import PRODUCTION_STAGES, Status
from tmctl.core.errors import TmctlError
from tmctl.core.queues import PeekResult, QueueStats, age_text
from tmctl.core.redrive import RedriveReport
from tmctl.core.stack import StackInfo
from tmctl.core.target import Target

TASK_STATUSES = tuple(s.value for s in Status)
EXECUTIONS_WINDOW = dt.timedelta(hours=1)
DLQ_PEEK_LIMIT = 50
FINGERPRINT_EXECUTIONS = 10  # the newest executions a live tick looks at
# Tasks counted per status at most (`tmctl status` stops at 1,000): a COUNT query still reads the index
# (~65 ms for 1,000 tasks on the embedded emulator), so the overview's cost grows with the stage up to this.
TASK_COUNT_CAP = 10_000


@dataclass
class Overview:
    """The pipeline's figures at one moment (`tmctl status`, `tmctl queue stats`)."""

    stack: str
    stack_status: str
    engine: str
    api_url: str
    tasks: dict[str, int]  # by status (status.tasks_by_status)
    queue: QueueStats | None
    dlq: QueueStats | None
    executions: dict[str, int]  # started in the last hour, by status
    at: float = field(default_factory=time.time)

    def figures(self) -> dict[str, Any]:
        """Flat name → value: the page's data-figure attributes and the live events' payload."""
        out: dict[str, Any] = {f"tasks.{k}": v for k, v in self.tasks.items()}
        out["tasks.total"] = sum(self.tasks.values())
        for role, q in (("queue", self.queue), ("dlq", self.dlq)):
            out[f"{role}.visible"] = q.visible if q else None
            out[f"{role}.in_flight"] = q.in_flight if q else None
            out[f"{role}.delayed"] = q.delayed if q else None
            out[f"{role}.total"] = q.total if q else None
            out[f"{role}.oldest"] = age_text(q.oldest_age_seconds) if q else "-"
        out.update({f"executions.{k}": v for k, v in self.executions.items()})
        return out


@dataclass
class TaskView:
    task_id: str
    trace: Any  # tmctl.core.trace.TaskTrace
    definition: dict | None  # the deployed state machine's ASL
    can_redrive: bool
    can_retry: bool
    ran: dict[str, dict] = field(default_factory=dict)  # execution arn → the definition it ran (else `definition`)

    def definition_of(self, execution_arn: str) -> dict | None:
        return self.ran.get(execution_arn) or self.definition


@dataclass
class DlqView:
    name: str
    url: str
    peek: PeekResult | None
    peek_note: str  # how it was looked at, or why not
    stats: QueueStats | None
    messages: list[dict]  # each peeked message with its pretty body and age, for the page


class ConsoleSource:
    """One target and stage, its clients built once by the caller (the CLI's
    State) and shared by every request and the live poller (boto3 clients are
    thread-safe)."""

    def __init__(self, target: Target, stack: StackInfo, backend: Backend, *, sqs, ddb, sfn, ssm, logs,
                 session=None, allow_writes: bool = False):
        self.target, self.stack, self.backend = target, stack, backend
        self.sqs, self.ddb, self.sfn, self.ssm, self.logs = sqs, ddb, sfn, ssm, logs
        self.session = session
        self.allow_writes = allow_writes
        self._ran: dict[str, dict] = {}  # execution arn → the definition it ran
        self._ran_lock = threading.Lock()

    # ------------------------------------------------------------ who may write

    @property
    def production(self) -> bool:
        return self.target.stage.lower() in PRODUCTION_STAGES

    @property
    def read_only(self) -> bool:
        """An AWS production stage, unless --allow-writes."""
        return self.production and not self.target.local and not self.allow_writes

    @property
    def engine(self) -> str:
        return self.backend.describe() if self.backend.is_emulator else f"AWS {self.target.region or ''}".strip()

    # ------------------------------------------------------------ figures

    def pair(self):
        """The stack's main queue and DLQ (queues.resolve_pair, as `tmctl queue stats`)."""
        from tmctl.core.queues import resolve_pair, stack_queue_name

        return resolve_pair(self.sqs, self.backend, default_name=stack_queue_name(self.target.app, self.target.stage),
                            stack_outputs=lambda: self.stack.outputs)

    def overview(self) -> Overview:
        """status.tasks_by_status (`tmctl status`), queues.queue_stats (`tmctl queue stats`),
        executions.list_executions --since 1h (`tmctl executions list --since 1h`)."""
        from tmctl.core.executions import count_by_status, list_executions
        from tmctl.core.queues import queue_stats
        from tmctl.core.status import tasks_by_status

        since = dt.datetime.now(dt.UTC) - EXECUTIONS_WINDOW
        with ThreadPoolExecutor(max_workers=3) as pool:
            tasks_f = pool.submit(tasks_by_status, self.ddb, self.stack.table, TASK_COUNT_CAP)
            stats_f = pool.submit(lambda: queue_stats(self.backend, self.pair()))
            ex_f = pool.submit(list_executions, self.sfn, self.stack.state_machine_arn, since=since, limit=None)
            stats = {s.role: s for s in stats_f.result()}
            return Overview(self.stack.name, self.stack.status, self.engine, self.stack.api_url, tasks_f.result(),
                            stats.get("main"), stats.get("dlq"), count_by_status(ex_f.result()))

    def fingerprint(self) -> tuple:
        """A cheap look that changes whenever the pipeline moves (queue depths,
        the newest executions and their statuses): the live poller reads the
        full figures only when this changes (or every few seconds)."""
        from tmctl.core.executions import list_executions
        from tmctl.core.status import queue_depth

        with ThreadPoolExecutor(max_workers=3) as pool:
            q_f = pool.submit(queue_depth, self.sqs, self.stack.queue_url)
            d_f = pool.submit(queue_depth, self.sqs, self.stack.dlq_url)
            ex_f = pool.submit(list_executions, self.sfn, self.stack.state_machine_arn,
                               limit=FINGERPRINT_EXECUTIONS, page_size=FINGERPRINT_EXECUTIONS)
            return q_f.result(), d_f.result(), tuple((e.name, e.status) for e in ex_f.result())

    def task_statuses(self, watched: frozenset[str] = frozenset()) -> dict[str, str]:
        """taskID → status of the newest tasks and of `watched` ones (tasks.recent_tasks, dynamo.get_task_item)."""
        return _statuses(self, watched)

    # ------------------------------------------------------------ tasks

    def tasks(self, *, status: str | None = None, before: str | None = None, q: str | None = None,
              limit: int = 25):
        """tasks.recent_tasks / tasks.search_tasks (the byStatus index, newest first)."""
        from tmctl.core.errors import UsageError
        from tmctl.core.tasks import recent_tasks, search_tasks

        if status and status not in TASK_STATUSES:
            raise UsageError(f"status {status!r} is not a task status", "one of " + ", ".join(TASK_STATUSES))
        if q:
            return search_tasks(self.ddb, self.stack.table, q, limit=limit)
        return recent_tasks(self.ddb, self.stack.table, TASK_STATUSES, status=status, before=before, limit=limit)

    def task(self, task_id: str, log_limit: int = 50) -> TaskView:
        """trace.trace_task (`tmctl task trace`) and the deployed definition."""
        from tmctl.core.trace import trace_task

        trace = trace_task(ddb=self.ddb, sqs=self.sqs, sfn=self.sfn, logs=self.logs, backend=self.backend,
                           stack=self.stack, task_id=task_id, log_limit=log_limit)
        status = (trace.task or {}).get("status")
        ran = {e.execution.arn: d for e in trace.executions if (d := self.execution_definition(e.execution.arn))}
        return TaskView(task_id, trace, self.definition(), can_redrive=trace.location.where == "DLQ",
                        can_retry=status == Status.FAILED, ran=ran)

    def definition(self) -> dict | None:
        """executions.state_machine_definition: the deployed machine, read per page (a `tmctl dev` swap or a
        deploy may change it while the console runs)."""
        from tmctl.core.executions import state_machine_definition

        try:
            return state_machine_definition(self.sfn, self.stack.state_machine_arn)
        except TmctlError:
            return None

    def execution_definition(self, execution_arn: str) -> dict | None:
        """executions.execution_definition: what an execution ran, kept (it never changes), at most 256."""
        if execution_arn not in self._ran:
            from tmctl.core.executions import execution_definition

            try:
                found = execution_definition(self.sfn, execution_arn)
            except TmctlError:
                return None  # the page draws the deployed machine instead
            with self._ran_lock:  # requests run on a thread pool
                if len(self._ran) >= 256:
                    self._ran.pop(next(iter(self._ran)))
                self._ran[execution_arn] = found
            return found
        return self._ran.get(execution_arn)

    def retry(self, task_id: str):
        """executions.retry_task (`tmctl task retry`)."""
        from tmctl.core.executions import retry_task

        return retry_task(self.sfn, self.ddb, self.stack, task_id, can_redrive=self.backend.has_redrive_execution,
                          settle=2.0)

    def queues(self):
        """The main queue and its DLQ side by side, and the main queue's messages where the engine can show
        them without a receive (queues.queue_stats + queues.peek, as `tmctl queue stats` / `queue peek`).
        On AWS the main queue is never looked at from here: each look would count toward the DLQ."""
        from tmctl.core.queues import peek, queue_stats

        pair = self.pair()
        stats = queue_stats(self.backend, pair)
        main = pair.require_main()
        result = None
        if self.backend.peek_url is not None:
            result = peek(self.sqs, self.backend, main.url, limit=DLQ_PEEK_LIMIT)
        now = time.time()
        messages = [{"m": m, "body": shown_body(m.body),
                     "age": age_text(now - m.sent_timestamp) if m.sent_timestamp else "-"}
                    for m in (result.messages if result else [])]
        return stats, pair, result, messages

    def executions(self, status: str | None = None, limit: int = 50):
        """executions.list_executions (`tmctl executions list`), newest first; the failed ones with their
        error (executions.with_errors: ListExecutions carries none)."""
        from tmctl.core.executions import list_executions, with_errors

        found = list_executions(self.sfn, self.stack.state_machine_arn, status=status or None, limit=limit,
                                page_size=limit)
        return with_errors(self.sfn, found)

    # ------------------------------------------------------------ the DLQ

    def dlq(self, *, allow_receive: bool = False) -> DlqView:
        """queues.peek + queues.queue_stats (`tmctl dlq peek`, `tmctl queue stats`)."""
        from tmctl.core.queues import PeekUnavailable, peek, queue_stats

        pair = self.pair()
        dlq = pair.require_dlq()
        stats = {s.role: s for s in queue_stats(self.backend, pair)}.get("dlq")
        result, note = None, ""
        try:
            result = peek(self.sqs, self.backend, dlq.url, limit=DLQ_PEEK_LIMIT, allow_receive=allow_receive)
            note = f"by {result.method}" + (": receive counts went up by one" if result.consumed_receives else
                                            ", nothing received")
        except PeekUnavailable:
            note = ("AWS has no non-consuming look: showing the messages means receiving them (each receive "
                    "counts toward maxReceiveCount)")
        now = time.time()
        messages = [{"m": m, "body": shown_body(m.body),
                     "age": age_text(now - m.sent_timestamp) if m.sent_timestamp else "-"}
                    for m in (result.messages if result else [])]
        return DlqView(dlq.name, dlq.url, result, note, stats, messages)

    def plan(self, *, filter_expr: str | None = None, task_ids: frozenset[str] | None = None,
             max_messages: int | None = None, dry_run: bool = False):
        """redrive.plan_redrive (`tmctl dlq redrive`), on the stack's pair."""
        from tmctl.core.redrive import RedriveOptions, plan_redrive

        opts = RedriveOptions(dry_run=dry_run, max_messages=max_messages, filter_expr=filter_expr or None,
                              task_ids=task_ids or None)
        return plan_redrive(self.sqs, self.backend, self.pair(), opts)

    def redrive(self, *, filter_expr: str | None = None, task_ids: frozenset[str] | None = None,
                max_messages: int | None = None, dry_run: bool = False) -> tuple[RedriveReport, list[str]]:
        """redrive.plan_redrive → execute → check_outcome, as `tmctl dlq redrive --yes`; returns the
        accounting and the notices the CLI would print on stderr."""
        from tmctl.core.redrive import execute

        notices: list[str] = []
        plan = self.plan(filter_expr=filter_expr, task_ids=task_ids, max_messages=max_messages, dry_run=dry_run)
        report = execute(self.sqs, self.backend, plan, on_notice=notices.append)
        return report, notices

    def purge(self):
        """queues.purge (`tmctl dlq purge`)."""
        from tmctl.core.queues import purge

        return purge(self.sqs, self.pair().require_dlq())

    # ------------------------------------------------------------ config

    def config_path(self) -> str:
        from tmctl.core.config import config_path

        return config_path(self.target)

    def settings(self):
        """config.list_settings (`tmctl config list`)."""
        from tmctl.core.config import list_settings

        return list_settings(self.ssm, self.config_path())

    def config_cache_seconds(self) -> str | None:
        """How soon the functions follow a change, as the stack says (as `tmctl config set` reports it)."""
        return self.stack.outputs.get("ConfigCacheSeconds")

    def set_setting(self, key: str, value: str):
        """config.set_setting (`tmctl config set`): refused before writing when invalid."""
        from tmctl.core.config import set_setting

        return set_setting(self.ssm, self.config_path(), key, value, stage=self.target.stage)


BODY_SHOWN = 2000  # characters of a message body on the DLQ page (50 bodies of up to 256 KiB would not be light)


def shown_body(body: str, limit: int = BODY_SHOWN) -> str:
    pretty = pretty_body(body)
    if len(pretty) <= limit:
        return pretty
    return pretty[:limit] + f"\n… ({len(body.encode())} bytes in all: the export has every byte)"


def pretty_body(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return body


def choices(allowed_pattern: str) -> list[str] | None:
    """The values of a `^(a|b|c)$` AllowedPattern, for a select; None for any other pattern."""
    import re

    m = re.fullmatch(r"\^?\(([A-Za-z0-9_|-]+)\)\$?", allowed_pattern or "")
    return m.group(1).split("|") if m else None


def _statuses(source: ConsoleSource, watched: frozenset[str], newest: int = 50) -> dict[str, str]:
    from tmctl.core.dynamo import get_task_item
    from tmctl.core.tasks import recent_tasks

    page = recent_tasks(source.ddb, source.stack.table, TASK_STATUSES, limit=newest)
    out = {t["taskID"]: t.get("status", "") for t in page.items}
    for task_id in watched - set(out):
        item = get_task_item(source.ddb, source.stack.table, task_id)
        if item is not None:
            out[task_id] = item.get("status", "")
    return out
