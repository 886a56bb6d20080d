"""Snapshots on the real stack: the suite's stage (a completed task, a
dead-lettered one with its DLQ message, config) saved through the CLI, loaded
into a second stage on the same engine, compared byte for byte, and the
dead-lettered task redriven to COMPLETED there; and a test that starts from a
known state loaded by the `load_snapshot` fixture."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
import uuid

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import STACK_PARAMS, wait_for
from tmctl.cli.app import app
from tmctl.core.api import TaskApi
from tmctl.core.backend import detect
from tmctl.core.config import config_path
from tmctl.core.deploy import delete_stack
from tmctl.core.queues import inspect_messages
from tmctl.core.target import Clients
from tmctl.core.up import bring_up

pytestmark = pytest.mark.integration
SECOND_STAGE = "itsnap"
CONFIG_CACHE_SECONDS = 5  # the Lambdas cache the failure switch this long (taskcore.config)


def cli(cli_env, *args: str):
    return CliRunner().invoke(app, [*args, "--output", "json"], env=cli_env)


def typed_item(clients, table: str, task_id: str) -> dict | None:
    return clients.dynamodb.get_item(TableName=table, Key={"taskID": {"S": task_id}},
                                     ConsistentRead=True).get("Item")


def dlq_message(target, url: str, task_id: str):
    found = [m for m in inspect_messages(detect(target), url) if m.task_id == task_id]
    return found[0] if found else None


def parameters(clients, path: str) -> dict[str, str]:
    got = clients.ssm.get_parameters_by_path(Path=path.rstrip("/"))["Parameters"]
    return {p["Name"][len(path):]: p["Value"] for p in got}


@pytest.fixture(scope="module")
def saved(env, tmp_path_factory):
    """The suite's stage with a completed and a dead-lettered task, saved by the CLI."""
    run = uuid.uuid4().hex[:10]
    ok_id, poison_id = f"snap-ok-{run}", f"poison-snap-{run}"  # poison-*: the session's processor rule
    assert env.api.create({"taskID": ok_id, "title": "fine", "priority": "HIGH"}).status == 202
    assert env.api.create({"taskID": poison_id, "title": "sick ✓", "description": "fails in the processor"}
                          ).status == 202
    assert wait_for(lambda: env.api.get(ok_id).body.get("status"), lambda s: s == "COMPLETED") == "COMPLETED"
    assert wait_for(lambda: env.api.get(poison_id).body.get("status"), lambda s: s == "DEAD_LETTERED",
                    timeout=30) == "DEAD_LETTERED"
    assert wait_for(lambda: dlq_message(env.target, env.stack.dlq_url, poison_id), bool, timeout=15)
    path = tmp_path_factory.mktemp("snap") / "it.snap.gz"
    result = cli(env.cli_env, "snapshot", "save", str(path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["dlq"] >= 1
    return path, ok_id, poison_id


@pytest.fixture(scope="module")
def second_stage(env):
    target = dataclasses.replace(env.target, stage=SECOND_STAGE)
    clients = Clients(target)
    stack = bring_up(clients, target, overrides=STACK_PARAMS).stack
    try:
        yield target, clients, stack, {**env.cli_env, "TMCTL_STAGE": SECOND_STAGE}
    finally:
        delete_stack(clients.cloudformation, target)


def test_a_stage_loaded_into_a_second_stage_is_byte_exact_and_its_dead_letter_redrives(env, saved, second_stage):
    path, ok_id, poison_id = saved
    target2, clients2, stack2, cli_env2 = second_stage

    # GIVEN the snapshot describes itself without loading
    shown = cli(env.cli_env, "snapshot", "show", str(path))
    assert shown.exit_code == 0 and json.loads(shown.stdout)["source"]["stage"] == env.target.stage

    # WHEN it is loaded into the second stage (replace; --yes: no terminal here)
    loaded = cli(cli_env2, "snapshot", "load", str(path), "--yes")
    assert loaded.exit_code == 0, loaded.output
    tallies = json.loads(loaded.stdout)["tallies"]
    counts = json.loads(shown.stdout)["counts"]
    assert {k: v["written"] for k, v in tallies.items() if k != "config"} == {
        k: counts[k] for k in ("tasks", "main", "dlq")}
    assert tallies["config"]["failed"] == 0 and tallies["config"]["written"] >= 4

    # THEN items, the DLQ message (body and attributes) and the config are byte-exact
    for task_id in (ok_id, poison_id):
        assert typed_item(clients2, stack2.table, task_id) == typed_item(env.clients, env.stack.table, task_id)
    original = dlq_message(env.target, env.stack.dlq_url, poison_id)
    copy = dlq_message(target2, stack2.dlq_url, poison_id)
    assert copy is not None and copy.body == original.body
    assert copy.message_attributes == original.message_attributes
    assert copy.md5_of_body == original.md5_of_body
    assert parameters(clients2, config_path(target2)) == parameters(env.clients, config_path(env.target))

    # WHEN the cause is fixed on the second stage and its DLQ redriven
    clients2.ssm.put_parameter(Name=stack2.out("FailureInjectionParameterName"), Value="[]", Type="String",
                               Overwrite=True)
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)
    redrive = cli(cli_env2, "dlq", "redrive", "--task-id", poison_id, "--yes")
    assert redrive.exit_code == 0, redrive.output
    assert json.loads(redrive.stdout)["moved"] == 1

    # THEN the dead-lettered task completes there, its history carried over and continued
    api2 = TaskApi(stack2.api_url)
    done = wait_for(lambda: api2.get(poison_id).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                    timeout=30)
    assert done["status"] == "COMPLETED", done
    steps = [h["step"] for h in done["history"]]
    assert steps[:3] == ["created", "queued", "dead-lettered"] and "redriven" in steps
    # AND the first stage is untouched: its task still dead-lettered
    assert env.api.get(poison_id).body["status"] == "DEAD_LETTERED"


def seed_from(src, dst, old_id: str, new_id: str):
    """A known state cut from a real snapshot: one dead-lettered task and its DLQ
    message, under a new taskID (the file is text: the id is replaced everywhere)."""
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    header = json.loads(lines[0])
    keep = []
    for line in lines[1:]:
        rec = json.loads(line)
        if (rec["kind"] == "task" and rec["item"]["taskID"]["S"] == old_id) or (
                rec["kind"] == "message" and rec["queue"] == "dlq" and old_id in rec["body"]):
            keep.append(line.replace(old_id, new_id))
    header["counts"] = {"tasks": 1, "main": 0, "dlq": 1, "config": 0}
    dst.write_bytes(gzip.compress(("\n".join([json.dumps(header), *keep]) + "\n").encode()))
    return dst


def test_a_test_can_start_from_a_known_state_loaded_by_the_fixture(env, saved, load_snapshot, tmp_path):
    path, _ok_id, poison_id = saved
    # GIVEN a known state: a dead-lettered task with its message in the DLQ (not a poison-* name)
    seeded = f"seeded-{uuid.uuid4().hex[:10]}"
    report = load_snapshot(seed_from(path, tmp_path / "seed.snap.gz", poison_id, seeded))
    assert report.tallies["tasks"].written == 1 and report.tallies["dlq"].written == 1
    assert env.api.get(seeded).body["status"] == "DEAD_LETTERED"

    # WHEN its message is redriven
    redrive = cli(env.cli_env, "dlq", "redrive", "--task-id", seeded, "--yes")
    assert redrive.exit_code == 0, redrive.output

    # THEN the seeded task runs to COMPLETED
    done = wait_for(lambda: env.api.get(seeded).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                    timeout=30)
    assert done["status"] == "COMPLETED", done
