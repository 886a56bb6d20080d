"""The README's screenshots of `tmctl console`, refreshed from a real run.

    python benchmarks/console_screenshots.py [--out benchmarks/console-screenshots]

Its own embedded emulator (as bench_console.py: a free 127.0.0.1 port, a temp
state dir, stopped by pid at the end), `tmctl up`, a few tasks through the API:
completed ones, two the processor keeps failing (dead-lettered: the DLQ page),
one whose `process` step fails (FAILED: the failed path in red). Then
`tmctl console --no-open --port 0` and Debian's chromium at 1280×800: overview,
tasks, the failed task, a completed task, queues, executions, the DLQ and the
config, one PNG each
(the viewport, not the whole page; each well under 150 KB).
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from bench_console import Console, browser, local_stage, tab

from tmctl.core.status import tasks_by_status

HERE = Path(__file__).resolve().parent
MAX_BYTES = 150 * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "console-screenshots")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:4]
    with local_stage("tmctl-console-shots-") as stage:
        stage.set_failure_rules([{"at": "processor", "match": "poison-*"}, {"at": "process", "match": "boom-*"}])
        time.sleep(6)  # the Lambdas cache the switch for up to 5 s
        done = [f"order-{run}-{i}" for i in range(1, 9)]
        failed, dead = f"boom-{run}-1", [f"poison-{run}-{i}" for i in (1, 2)]
        for i, task_id in enumerate([*done, failed, *dead]):
            assert stage.api.create({"taskID": task_id, "title": f"invoice batch {i + 1}",
                                     "priority": ("LOW", "MEDIUM", "HIGH")[i % 3]}).status == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            by = tasks_by_status(stage.clients.dynamodb, stage.stack.table)
            if by["COMPLETED"] == len(done) and by["FAILED"] == 1 and by["DEAD_LETTERED"] == len(dead):
                break
            time.sleep(0.5)
        console = Console(stage)
        try:
            with browser() as b, tab(b, console) as page:
                shots = {"overview": "/", "tasks": "/tasks", "task-failed": f"/tasks/{failed}",
                         "task-completed": f"/tasks/{done[0]}", "queues": "/queues", "executions": "/executions",
                         "dlq": "/dlq", "config": "/config"}
                for name, path in shots.items():
                    page.goto(console.base_url + path)
                    if name in ("overview", "tasks", "task-failed", "task-completed"):
                        page.wait_for_selector('#live[data-state="on"]')
                    if name.startswith("task-"):  # the workflow's path, not only the item, in the picture
                        page.locator('[data-testid^="execution-"]').first.evaluate(
                            "el => { el.scrollIntoView({block: 'start'}); window.scrollBy(0, -70); }")
                    page.wait_for_timeout(700)  # the live figures' highlight has faded
                    file = args.out / f"{name}.png"
                    page.screenshot(path=file)
                    size = file.stat().st_size
                    print(f"{file.relative_to(HERE.parent)}  {size / 1024:.0f} KB"
                          + ("  (over 150 KB)" if size > MAX_BYTES else ""))
        finally:
            console.stop()


if __name__ == "__main__":
    main()
