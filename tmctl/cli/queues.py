"""The main queue and its DLQ: stats, a non-consuming peek, redrive, purge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import State, state

if TYPE_CHECKING:
    from tmctl.core.backend import Backend
    from tmctl.core.queues import PeekResult, QueuePair, QueueStats
    from tmctl.core.redrive import RedriveReport

queue_app = typer.Typer(help="The stack's main queue and its DLQ side by side (or any pair with --queue).\n\n"
                             "Example: tmctl --local queue stats", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue: look at it, move its messages back, or empty it.\n\n"
                           "Example: tmctl --local dlq redrive --dry-run", no_args_is_help=True)

QueueOpt = Annotated[str | None, typer.Option(
    "--queue", "-q", help="Work on this queue (NAME, URL or ARN) and its pair instead of the stack's: a queue "
                          "with a RedrivePolicy and its DLQ, or a DLQ and the queue whose policy targets it.")]
CountOpt = Annotated[int, typer.Option("--count", "-n", min=1, help="How many messages to show.")]


def _resolve(ctx: typer.Context, queue: str | None) -> tuple[State, object, Backend, QueuePair]:
    """The SQS client, the backend and the queue pair, with as little start-up as
    possible: the backend probe runs while boto3 loads, and the stack's pair is
    found by its queue name — CloudFormation only if that name is not there."""
    from concurrent.futures import ThreadPoolExecutor

    from tmctl.core.queues import resolve_pair, stack_queue_name

    st = state(ctx)
    target = st.target()
    with ThreadPoolExecutor(max_workers=1) as pool:
        backend_f = pool.submit(st.backend)
        sqs = st.clients().sqs
        backend = backend_f.result()
    pair = resolve_pair(sqs, backend, queue, default_name=stack_queue_name(target.app, target.stage),
                        stack_outputs=lambda: st.stack().outputs)
    return st, sqs, backend, pair


def _render_stats(stats: list[QueueStats], found_by: str):
    from tmctl.core.queues import age_text

    by_role = {s.role: s for s in stats}
    cols = [r for r in ("main", "dlq") if r in by_role]
    rows = [
        ("queue", *(by_role[r].name for r in cols)),
        ("visible", *(by_role[r].visible for r in cols)),
        ("in flight", *(by_role[r].in_flight for r in cols)),
        ("delayed", *(by_role[r].delayed for r in cols)),
        ("oldest message", *(age_text(by_role[r].oldest_age_seconds) for r in cols)),
        ("fifo", *("yes" if by_role[r].fifo else "no" for r in cols)),
        ("visibility timeout", *(f"{by_role[r].visibility_timeout}s" for r in cols)),
    ]
    if "main" in by_role:
        m = by_role["main"]
        policy = (f"after {m.max_receive_count} receives → {m.redrive_target.rsplit(':', 1)[-1]}"
                  if m.redrive_target else "none")
        rows.append(("redrive policy", policy, *([""] * (len(cols) - 1))))
    parts = [out.table(None, ["", *cols], rows)]
    parts += [f"oldest message ({s.role}): {s.oldest_age_note}" for s in stats
              if s.oldest_age_seconds is None and s.oldest_age_note != "empty"]
    parts.append(f"pair found by: {found_by}")
    return parts


@queue_app.command("stats")
def stats(
    ctx: typer.Context,
    queue: QueueOpt = None,
    age: Annotated[bool, typer.Option(
        "--age", help="Find the oldest message's age even in a queue of over 1,000 messages (an emulator's "
                      "inspection endpoint returns them all: ~40 ms per 1,000).")] = False,
) -> None:
    """The main queue and its DLQ side by side: visible, in flight, delayed, the
    oldest message's age (on an emulator, from its inspection endpoint; AWS gives
    it only through CloudWatch, so it is omitted there) and the redrive policy.

    Example: tmctl --local queue stats -o json
    """
    from dataclasses import asdict

    from tmctl.core.queues import queue_stats

    st, _sqs, backend, pair = _resolve(ctx, queue)
    result = queue_stats(backend, pair, **({"age_scan_limit": None} if age else {}))
    data = {s.role: {**asdict(s), "total": s.total} for s in result}
    data["foundBy"] = pair.found_by
    out.emit(st, data, lambda: _render_stats(result, pair.found_by))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _render_peek(result: PeekResult, title: str):
    def attrs(m) -> str:
        return ", ".join(f"{k}={_short(str(v.get('StringValue', v.get('BinaryValue', ''))), 20)}"
                         for k, v in m.message_attributes.items())

    rows = [(m.message_id[:8], m.task_id or "-", m.receive_count if m.receive_count is not None else "-",
             _when(m.sent_timestamp), {True: "yes", False: "no", None: "?"}[m.visible], out.escape(_short(m.body)),
             out.escape(attrs(m))) for m in result.messages]
    shown = f"{len(result.messages)}" + (f" of {result.total}" if result.total is not None else "")
    return [out.table(f"{title}: {shown} message(s), by {result.method}",
                      ["id", "taskID", "receives", "sent (UTC)", "visible", "body", "attributes"], rows)]


def _peek(ctx: typer.Context, queue: str | None, dlq: bool, count: int, allow_receive: bool) -> None:
    from tmctl.core.queues import peek

    st, sqs, backend, pair = _resolve(ctx, queue)
    target = pair.require_dlq() if dlq else pair.require_main()
    # On AWS a look is a receive: on the DLQ that only raises counts nobody acts on;
    # on the main queue each one counts toward maxReceiveCount, so only when asked.
    if backend.peek_url is None and (dlq or allow_receive):
        out.progress("AWS has no non-consuming peek: looking by ReceiveMessage with VisibilityTimeout=0, which "
                     "raises each message's receive count (on a main queue, toward the DLQ), may show one twice "
                     "and may miss some in a large queue")
    result = peek(sqs, backend, target.url, limit=count, allow_receive=allow_receive or dlq)
    data = {"queue": target.url, "method": result.method, "raisedReceiveCounts": result.consumed_receives,
            "total": result.total, "messages": [m.to_dict() for m in result.messages]}
    out.emit(st, data, lambda: _render_peek(result, target.name))


@queue_app.command("peek")
def queue_peek(
    ctx: typer.Context,
    queue: QueueOpt = None,
    dlq: Annotated[bool, typer.Option("--dlq", help="Peek the DLQ of the pair instead of the main queue.")] = False,
    count: CountOpt = 10,
    allow_receive: Annotated[bool, typer.Option(
        "--allow-receive", help="AWS only (it has no non-consuming peek): look by ReceiveMessage with "
                                "VisibilityTimeout=0. Each receive counts toward the queue's maxReceiveCount: "
                                "peeking can push a message to the DLQ.")] = False,
) -> None:
    """Messages in the main queue (or the DLQ with --dlq) without consuming them:
    body, attributes, receive count, sent time, taskID. On an emulator the receive
    counts do not change.

    Example: tmctl --local queue peek -n 5
    """
    _peek(ctx, queue, dlq, count, allow_receive)


@dlq_app.command("peek")
def dlq_peek(ctx: typer.Context, queue: QueueOpt = None, count: CountOpt = 10) -> None:
    """Messages in the DLQ without consuming them. On AWS this is ReceiveMessage
    with VisibilityTimeout=0 (said on stderr: it raises receive counts).

    Example: tmctl --local dlq peek -n 20 -o json
    """
    _peek(ctx, queue, True, count, False)


class _Bar:
    """A Rich progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int | None, label: str):
        self.progress = None
        if out.stderr_console().is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=out.stderr_console())
            self.task = self.progress.add_task(label, total=total or None)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __call__(self, report: RedriveReport) -> None:
        if self.progress is None:
            return
        done = report.moved if report.mode == "server-side" else report.scanned
        total = report.to_move if report.mode == "server-side" else None
        self.progress.update(self.task, completed=done, total=total or self.progress.tasks[0].total,
                             description=f"moved {report.moved}, skipped {report.skipped}, failed {report.failed}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _render_report(r: RedriveReport):
    rows = [("scanned", r.scanned), ("matched", r.matched), ("moved", r.moved), ("skipped", r.skipped),
            ("failed", r.failed)]
    if r.not_deleted:
        rows.append(("  of which sent, not deleted (duplicates)", r.not_deleted))
    rows += [("seconds", f"{r.seconds:.2f}"), ("rate", f"{r.rate:.0f} msg/s")]
    to = r.destination.rsplit("/", 1)[-1] if r.destination else "the queues they came from"
    title = f"{r.mode} redrive {r.source.rsplit('/', 1)[-1]} → {to}" + (
        " (cancelled)" if r.cancelled else "") + (" (stopped following; the task still runs)" if r.detached else "") + (
        f" (followed the move task running since {r.task_started or '?'})" if r.followed else "")
    parts = [out.table(title, ["", "messages"], rows)]
    if r.sample:
        parts.append(out.table("sample of what would move", ["id", "taskID", "receives", "body"], [
            (s["messageId"][:8], s["taskID"] or "-", s["receiveCount"], out.escape(_short(s["body"])))
            for s in r.sample]))
    parts += [f"[red]error:[/red] {out.escape(e)}" for e in r.errors[:10]]
    return parts


@dlq_app.command("redrive")
def redrive(
    ctx: typer.Context,
    queue: QueueOpt = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="Destination queue (NAME, URL or ARN). Default: the queue whose RedrivePolicy targets the DLQ.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and show a sample; move nothing.")] = False,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Move at most N messages.")] = None,
    filter_expr: Annotated[str | None, typer.Option(
        "--filter", help="JMESPath over {body: parsed JSON or raw text, attributes: {...}, messageAttributes: "
                         "{name: value}}; only matching messages move. E.g. \"body.priority == 'HIGH'\".")] = None,
    task_id: Annotated[list[str] | None, typer.Option(
        "--task-id", help="Only the message(s) of this taskID (repeatable).")] = None,
    task_ids_file: Annotated[Path | None, typer.Option(
        "--task-ids-file", help="A file of taskIDs, one a line: only their messages move.")] = None,
    rate: Annotated[float | None, typer.Option("--rate", min=0.1, help="At most N messages per second.")] = None,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Append each message that moves to this file as a JSON line, written before it moves.")
    ] = None,
    client_side: Annotated[bool, typer.Option(
        "--client-side", help="Send-then-delete from here even where the backend has a server-side move task.")
    ] = False,
    visibility_timeout: Annotated[int, typer.Option(
        "--visibility-timeout", min=1, max=43200,
        help="Seconds a received batch stays hidden while it moves (client-side); after a crash, messages are "
             "back in the DLQ after this long.")] = 30,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Client-side worker threads.")] = 4,
    no_lineage: Annotated[bool, typer.Option(
        "--no-lineage", help="Do not add the tmctl.redrive.originalMessageId / tmctl.redrive.count attributes.")
    ] = False,
    yes: opt.Yes = False,
) -> None:
    """Move DLQ messages back to their queue. Server-side (SQS's own move task)
    where the backend has it, unless messages are selected (--filter, --task-id,
    --max, --export) or --client-side; else client-side send-then-delete, which keeps
    bodies and attributes byte-exact. A crash may duplicate a message, never lose
    one. Exit code 1 if any message failed, 130 if interrupted (Ctrl-C cancels a
    move task this run started; one already running is only no longer followed).

    Example: tmctl --local dlq redrive --filter "body.priority == 'HIGH'" --max 100 --yes
    """
    from tmctl.core.redrive import RedriveOptions, check_outcome, execute, plan_redrive, read_task_ids

    st, sqs, backend, pair = _resolve(ctx, queue)
    opts = RedriveOptions(dry_run=dry_run, max_messages=max_messages, filter_expr=filter_expr,
                          task_ids=read_task_ids(task_id, task_ids_file), rate=rate,
                          visibility_timeout=visibility_timeout, workers=workers, lineage=not no_lineage)
    plan = plan_redrive(sqs, backend, pair, opts, to=to, export=export, client_side=client_side)
    if not dry_run:
        out.confirm(plan.question(), yes=yes)
    with _Bar(plan.count, "redrive") as bar:
        report = execute(sqs, backend, plan, on_progress=bar, on_notice=out.progress)
    out.emit(st, report.to_dict(), lambda: _render_report(report))
    check_outcome(report)


@dlq_app.command("purge")
def purge(
    ctx: typer.Context,
    queue: QueueOpt = None,
    yes: opt.Yes = False,
) -> None:
    """Delete every message in the DLQ (PurgeQueue), after asking; says how many were there.

    Example: tmctl --local dlq purge --yes
    """
    from tmctl.core.queues import approximate_count
    from tmctl.core.queues import purge as purge_queue

    st, sqs, _backend, pair = _resolve(ctx, queue)
    dlq = pair.require_dlq()
    out.confirm(f"Purge {approximate_count(sqs, dlq.url)} message(s) from {dlq.name}? They cannot be recovered",
                yes=yes)
    result = purge_queue(sqs, dlq)
    out.progress(f"purged {dlq.name}: {result.messages_before} message(s) were there")
    out.emit(st, {"queue": result.queue, "url": result.url, "messagesBefore": result.messages_before},
             lambda: out.table(None, ["queue", "messages before"], [(result.queue, result.messages_before)]))
