"""`tmctl snapshot save|load|show`: a stage's data (tasks, queue and DLQ
messages, config) as one portable file. The work is in tmctl/core/snapshot.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import State, state

if TYPE_CHECKING:
    from tmctl.core.snapshot import LoadReport, SaveReport, SnapshotInfo, StageRefs

app = typer.Typer(help="A stage's data as one portable file: tasks (every attribute), the queue's and the DLQ's "
                       "messages (byte-exact), config. Between engines, ports and non-production stages.\n\n"
                       "Example: tmctl --local snapshot save broken.snap.gz && "
                       "tmctl --local --stage demo snapshot load broken.snap.gz --yes",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The snapshot file (gzip'd JSON lines).", dir_okay=False)]


def _refs(st: State) -> StageRefs:
    from tmctl.core.config import config_path
    from tmctl.core.snapshot import StageRefs

    target = st.target()
    stack = st.stack()
    return StageRefs(target.app, target.stage, stack.table, stack.queue_url, stack.dlq_url, config_path(target))


def _clients(st: State):
    c = st.clients()
    return c.client("dynamodb"), c.sqs, c.ssm


class _Bar:
    """A Rich progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, label: str):
        self.progress = None
        if out.stderr_console().is_terminal and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=out.stderr_console())
            self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __call__(self, done: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _render_info(info: SnapshotInfo):
    h = info.header
    src = h.source
    rows = [("format", f"{h.format} v{h.version}"), ("created", h.created_at),
            ("from", f"{src.get('app', '?')}-{src.get('stage', '?')} on {src.get('engine', '?')}"),
            ("size", f"{info.bytes:,} bytes"),
            ("tasks", h.counts["tasks"]), ("queue messages", h.counts["main"]), ("DLQ messages", h.counts["dlq"]),
            ("config parameters", h.counts["config"])]
    rows += [(f"skipped: {k}", out.escape(v)) for k, v in h.skipped.items()]
    return out.table(info.path, ["", ""], rows)


@app.command("show")
def show(
    ctx: typer.Context,
    file: FileArg,
    check: Annotated[bool, typer.Option(
        "--check", help="Also read every record and check it as `load` would (format, counts, each item).")] = False,
) -> None:
    """What a snapshot holds (format version, source stage and engine, counts per
    kind, what was skipped), from its header line: nothing is loaded, no AWS call.

    Example: tmctl snapshot show broken.snap.gz -o json
    """
    from tmctl.core.snapshot import read_info, validate

    st = state(ctx)
    info = validate(file) if check else read_info(file)
    data = info.to_dict() | ({"checked": True} if check else {})
    out.emit(st, data, lambda: _render_info(info))


def _render_save(r: SaveReport):
    rows = [("tasks", r.counts["tasks"], "scan"), ("queue messages", r.counts["main"],
                                                   r.method.get("main") or "skipped"),
            ("DLQ messages", r.counts["dlq"], r.method.get("dlq") or "skipped"),
            ("config parameters", r.counts["config"], "GetParametersByPath")]
    return [out.table(f"saved {r.path} ({r.bytes:,} bytes, {r.seconds:.2f} s)", ["kind", "count", "read by"], rows)]


@app.command("save")
def save(
    ctx: typer.Context,
    file: FileArg,
    allow_receive: Annotated[bool, typer.Option(
        "--allow-receive", help="AWS only (it has no non-consuming way to read a queue): include the queues by "
                                "ReceiveMessage. Each message's receive count rises by one — on the main queue "
                                "toward maxReceiveCount and the DLQ — and each is hidden from the processor while "
                                "the queue is read.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Save the stage's tasks (every attribute, DynamoDB's typed JSON), its queue's
    and DLQ's messages (read without consuming them on an emulator) and its config
    parameters to FILE. On AWS the queues are skipped (said on stderr) unless
    --allow-receive.

    Example: tmctl --local snapshot save before-demo.snap.gz
    """
    from tmctl.core.errors import UsageError
    from tmctl.core.snapshot import save as save_snapshot

    if file.exists() and not force:
        raise UsageError(f"{file} exists", "pass --force to overwrite it, or give another name")
    st = state(ctx)
    ddb, sqs, ssm = _clients(st)
    backend = st.backend()
    if backend.peek_url is None and allow_receive:
        out.progress("AWS: reading the queues by ReceiveMessage; each message's receive count rises by one "
                     "(on the main queue toward the DLQ)")
    refs = _refs(st)
    with out.Reporter(f"saving {refs.stage}") as report:
        result = save_snapshot(ddb, sqs, ssm, backend, refs, file, allow_receive=allow_receive,
                               notice=lambda m: report(m, detail=not m.endswith("skipped") and "skipped" not in m))
    out.emit(st, result.to_dict(), lambda: _render_save(result))


def _render_load(r: LoadReport):
    names = {"tasks": "tasks", "main": "queue messages", "dlq": "DLQ messages", "config": "config parameters"}
    rows = [(names[k], t.written, t.skipped, t.failed) for k, t in r.tallies.items()]
    title = f"loaded into {r.stage} ({'merge' if r.merge else 'replace'}, {r.seconds:.2f} s)"
    parts = [out.table(title, ["kind", "written", "skipped", "failed"], rows)]
    if not r.merge:
        parts.append(f"removed first: {r.removed['tasks']} task(s); purged ~{r.removed['main']} + "
                     f"{r.removed['dlq']} message(s)")
    parts += [f"[red]error:[/red] {out.escape(e)}" for e in r.errors[:10]]
    return parts


@app.command("load")
def load(
    ctx: typer.Context,
    file: FileArg,
    merge: Annotated[bool, typer.Option(
        "--merge", help="Keep what the stage holds; add the snapshot's tasks (overwriting by key), messages and "
                        "parameters (messages are added: loading twice adds them twice). Default: replace — empty the "
                        "table and purge both queues first.")] = False,
    yes: opt.Yes = False,
) -> None:
    """Load FILE into the stage, after checking the whole file (format version,
    counts, every record) and asking. Refuses production stages. Parameters the
    stage does not have are skipped. Messages loaded into the main queue are
    processed by the stage's processor. Ends with written/skipped/failed per kind;
    exit code 1 if anything failed.

    Example: tmctl --local --stage demo snapshot load broken.snap.gz --yes
    """
    from tmctl.core.snapshot import check_outcome, plan_load, read_info, refuse_production
    from tmctl.core.snapshot import load as load_snapshot

    st = state(ctx)
    target = st.target()
    refuse_production(target.stage)  # before any call: the stage name alone decides
    read_info(file)  # a wrong file is said before the backend is even asked
    out.require_answerable(f"loading {file} into stage {target.stage!r}", yes)
    ddb, sqs, ssm = _clients(st)
    backend = st.backend()
    plan = plan_load(ddb, sqs, ssm, backend, _refs(st), file, merge=merge)
    if plan.unknown_parameters:
        out.progress(f"parameters stage {target.stage!r} does not have, skipped: {', '.join(plan.unknown_parameters)}")
    out.confirm(plan.question(), yes=yes)
    c = plan.info.header.counts
    # One live display at a time on a terminal (Rich refuses two): the bar, with notices as plain lines.
    with _Bar(sum(c.values()), "loading") as bar:
        result = load_snapshot(ddb, sqs, ssm, plan, on_progress=bar, notice=out.progress)
    out.emit(st, result.to_dict(), lambda: _render_load(result))
    check_outcome(result)
