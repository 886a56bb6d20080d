"""Snapshots (tmctl.core.snapshot and `tmctl snapshot`): a stage saved and loaded
into another stage of the same moto account, the file's checks, merge vs
replace, and the CLI's refusals."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from moto import mock_aws
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.cli.context import State
from tmctl.core.backend import Backend
from tmctl.core.errors import ExitCode, UsageError
from tmctl.core.snapshot import (
    FORMAT_VERSION,
    StageRefs,
    load,
    plan_load,
    read_info,
    save,
    validate,
)
from tmctl.core.stack import StackInfo

pytestmark = pytest.mark.unit
AWS = Backend("aws")
CLI_ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TMCTL_STAGE": "b"}

# Every attribute type DynamoDB has, nested too; numbers whose text must survive as written.
RICH_ITEM = {
    "taskID": {"S": "task-rich"},
    "title": {"S": "ünïcode ✓ \"quoted\"\nnewline"},
    "priority": {"N": "3"},
    "weight": {"N": "1.50"},
    "big": {"N": "12345678901234567890.123456789"},
    "done": {"BOOL": False},
    "error": {"NULL": True},
    "blob": {"B": b"\x00\xffbinary\x10"},
    "tags": {"SS": ["a", "b c"]},
    "scores": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [b"\x01", b"\x02\x03"]},
    "history": {"L": [{"M": {"step": {"S": "created"}, "at": {"S": "2026-12-04T20:00:00Z"},
                             "n": {"N": "0"}, "nested": {"L": [{"NULL": True}, {"BOOL": True}]}}},
                      {"M": {"step": {"S": "dead-lettered"}, "receives": {"N": "3"}}}]},
    "meta": {"M": {"empty": {"M": {}}, "list": {"L": []}}},
}
MESSAGE_ATTRS = {
    "taskID": {"DataType": "String", "StringValue": "task-rich"},
    "n": {"DataType": "Number", "StringValue": "1.50"},
    "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
    "custom": {"DataType": "String.custom", "StringValue": "x"},
}


def make_stage(ddb, sqs, ssm, stage: str) -> StageRefs:
    table = f"tm-{stage}-tasks"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "taskID", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "taskID", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    dlq = sqs.create_queue(QueueName=f"tm-{stage}-tasks-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = sqs.create_queue(QueueName=f"tm-{stage}-tasks", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
    path = f"/tm/{stage}/"
    ssm.put_parameter(Name=path + "intake", Value="open", Type="String", AllowedPattern="^(open|paused)$")
    ssm.put_parameter(Name=path + "failure-injection", Value="[]", Type="String", Description="rules")
    return StageRefs("tm", stage, table, main, dlq, path)


@pytest.fixture(autouse=True)
def short_polls(monkeypatch):
    """moto answers an empty queue at once: no long poll needed to know it is empty."""
    monkeypatch.setattr("tmctl.core.snapshot.RECEIVE_WAIT_SECONDS", 0)


@pytest.fixture
def aws(aws_clients):
    # the session's clients (tests/unit/conftest.py): building three per test cost more than the test
    with mock_aws():
        yield aws_clients["dynamodb"], aws_clients["sqs"], aws_clients["ssm"]


@pytest.fixture
def stages(aws):
    ddb, sqs, ssm = aws
    a, b = make_stage(ddb, sqs, ssm, "a"), make_stage(ddb, sqs, ssm, "b")
    ddb.put_item(TableName=a.table, Item=RICH_ITEM)
    for start in range(0, 60, 25):  # more than one BatchWriteItem and SendMessageBatch
        ddb.batch_write_item(RequestItems={a.table: [
            {"PutRequest": {"Item": {"taskID": {"S": f"t-{i:03d}"}, "status": {"S": "COMPLETED"}}}}
            for i in range(start, min(60, start + 25))]})
    sqs.send_message(QueueUrl=a.dlq_url, MessageBody='{"taskID": "task-rich"}', MessageAttributes=MESSAGE_ATTRS)
    for start in (0, 10):
        sqs.send_message_batch(QueueUrl=a.queue_url, Entries=[
            {"Id": str(i), "MessageBody": f"  body {i} ✓ not json ",
             "MessageAttributes": {"i": {"DataType": "Number", "StringValue": str(i)}}}
            for i in range(start, min(12, start + 10))])
    ssm.put_parameter(Name=a.config_path + "intake", Value="paused", Type="String", Overwrite=True)
    ssm.put_parameter(Name=a.config_path + "failure-injection", Value='[{"at":"processor","match":"poison-*"}]',
                      Type="String", Overwrite=True)
    return a, b


def items(ddb, table: str) -> dict[str, dict]:
    got = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {i["taskID"]["S"]: i for i in got}


def messages(sqs, url: str) -> list[tuple]:
    """(body, attributes) of every message, sorted; received and left hidden."""
    out = {}
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return sorted((m["Body"], json.dumps(m.get("MessageAttributes", {}), sort_keys=True, default=repr))
                          for m in out.values())
        out.update({m["MessageId"]: m for m in got})


def params(ssm, path: str) -> dict[str, str]:
    got = ssm.get_parameters_by_path(Path=path.rstrip("/"))["Parameters"]
    return {p["Name"][len(path):]: p["Value"] for p in got}


def test_a_stage_saved_and_loaded_into_another_stage_is_identical(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    # GIVEN stage b holds something of its own
    ddb.put_item(TableName=b.table, Item={"taskID": {"S": "only-in-b"}})
    sqs.send_message(QueueUrl=b.dlq_url, MessageBody="b's own")
    before_a = (items(ddb, a.table), params(ssm, a.config_path))
    f = tmp_path / "a.snap.gz"

    # WHEN stage a is saved (AWS: by receive, allowed) and loaded into b, replacing
    saved = save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    plan = plan_load(ddb, sqs, ssm, AWS, b, f, merge=False)
    plan.purge_settle_seconds = 0  # moto purges at once
    report = load(ddb, sqs, ssm, plan)

    # THEN b's items, messages and parameters are a's, byte for byte; nothing else remains
    assert saved.counts == {"tasks": 61, "main": 12, "dlq": 1, "config": 2}
    assert report.ok and {k: t.written for k, t in report.tallies.items()} == saved.counts
    assert items(ddb, b.table) == before_a[0]
    assert items(ddb, b.table)["task-rich"] == RICH_ITEM
    assert params(ssm, b.config_path) == before_a[1]
    b_dlq = messages(sqs, b.dlq_url)
    assert b_dlq == messages(sqs, a.dlq_url)
    assert messages(sqs, b.queue_url) == messages(sqs, a.queue_url)
    dlq_body, dlq_attrs = b_dlq[0]
    assert dlq_body == '{"taskID": "task-rich"}' and json.dumps(repr(b"\x00\x01\xfe"))[1:-1] in dlq_attrs
    # AND the stage's own parameter metadata is kept (AllowedPattern, Description)
    meta = {p["Name"]: p for p in ssm.describe_parameters()["Parameters"]}
    assert meta[b.config_path + "intake"].get("AllowedPattern") == "^(open|paused)$"


def test_the_file_is_gzipped_json_lines_with_a_header_and_typed_items(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, _ = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "tmctl-snapshot" and header["version"] == FORMAT_VERSION
    recs = [json.loads(x) for x in lines[1:]]
    rich = next(r for r in recs if r["kind"] == "task" and r["item"]["taskID"]["S"] == "task-rich")
    blob = "AP9iaW5hcnkQ"  # pragma: allowlist secret - base64 of the test's binary attribute, not a credential
    assert rich["item"]["blob"] == {"B": blob} and rich["item"]["weight"] == {"N": "1.50"}
    dlq = next(r for r in recs if r["kind"] == "message" and r["queue"] == "dlq")
    assert dlq["messageAttributes"]["raw"] == {"DataType": "Binary", "BinaryValue": "AAH+"}
    assert dlq["receiveCount"] == 1 and dlq["sentTimestamp"]
    assert {r["name"] for r in recs if r["kind"] == "parameter"} == {"intake", "failure-injection"}


def test_on_aws_without_allow_receive_the_queues_are_skipped_and_said_so(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, _ = stages
    said = []
    r = save(ddb, sqs, ssm, AWS, a, tmp_path / "a.snap.gz", notice=said.append)
    assert r.counts["main"] == r.counts["dlq"] == 0 and set(r.skipped) == {"main", "dlq"}
    assert "--allow-receive" in r.skipped["dlq"] and any("skipped" in s for s in said)
    assert read_info(tmp_path / "a.snap.gz").header.skipped == r.skipped
    # AND nothing was received: the DLQ message's receive count is still 0
    attrs = sqs.get_queue_attributes(QueueUrl=a.dlq_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_show_reads_the_counts_from_the_header_without_loading(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, _ = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    # A file whose records after the header are garbage: show still answers (it reads only line 1) …
    header = gzip.decompress(f.read_bytes()).decode().splitlines()[0]
    broken = tmp_path / "broken.snap.gz"
    broken.write_bytes(gzip.compress((header + "\nnot json at all\n").encode()))
    result = CliRunner().invoke(app, ["snapshot", "show", str(broken), "-o", "json"], env=CLI_ENV)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["counts"] == {"tasks": 61, "main": 12, "dlq": 1, "config": 2}
    assert data["source"]["stage"] == "a"
    # … and --check reads it all and refuses it
    checked = CliRunner().invoke(app, ["snapshot", "show", str(broken), "--check"], env=CLI_ENV)
    assert checked.exit_code == ExitCode.USAGE and "not JSON" in checked.stderr


def rewrite(src: Path, dst: Path, edit) -> Path:
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    dst.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))
    return dst


def _header(lines: list[str], **changes) -> list[str]:
    h = json.loads(lines[0])
    h.update(changes)
    return [json.dumps(h), *lines[1:]]


def _bad_number(lines: list[str]) -> list[str]:
    out = list(lines)
    rec = json.loads(out[1])
    rec["item"]["taskID"] = {"N": "not-a-number"}
    out[1] = json.dumps(rec)
    return out


@pytest.mark.parametrize(("case", "expect"), [
    ("truncated", "corrupt or truncated"),
    ("record dropped", "counts do not match"),
    ("newer format", "upgrade tmctl"),
    ("malformed item", "malformed 'N'"),
    ("not a snapshot", "not a tmctl snapshot"),
])
def test_a_bad_file_is_refused_before_anything_is_written(aws, stages, tmp_path, case, expect):
    ddb, sqs, ssm = aws
    a, b = stages
    good = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, good, allow_receive=True)
    bad = tmp_path / "bad.snap.gz"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "record dropped":
        rewrite(good, bad, lambda lines: lines[:-1])
    elif case == "newer format":
        rewrite(good, bad, lambda lines: _header(lines, version=FORMAT_VERSION + 1))
    elif case == "malformed item":
        rewrite(good, bad, _bad_number)
    else:
        bad.write_bytes(gzip.compress(b'{"hello": 1}\n'))
    ddb.put_item(TableName=b.table, Item={"taskID": {"S": "only-in-b"}})
    before = (items(ddb, b.table), params(ssm, b.config_path))

    with pytest.raises(UsageError) as err:
        plan_load(ddb, sqs, ssm, AWS, b, bad, merge=False)

    assert expect in str(err.value)
    assert (items(ddb, b.table), params(ssm, b.config_path)) == before
    assert messages(sqs, b.queue_url) == messages(sqs, b.dlq_url) == []


def test_validate_accepts_the_file_save_wrote(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, _ = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    assert validate(f).header.counts["tasks"] == 61


def test_a_production_stage_is_refused_and_nothing_written(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, _ = stages
    prod = make_stage(ddb, sqs, ssm, "prod")
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    with pytest.raises(UsageError, match="production stage 'prod'"):
        plan_load(ddb, sqs, ssm, AWS, prod, f, merge=True)
    assert items(ddb, prod.table) == {} and params(ssm, prod.config_path)["intake"] == "open"


def test_merge_keeps_what_is_there_and_replace_does_not(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)
    ddb.put_item(TableName=b.table, Item={"taskID": {"S": "only-in-b"}})
    ddb.put_item(TableName=b.table, Item={"taskID": {"S": "t-000"}, "status": {"S": "FAILED"}})
    sqs.send_message(QueueUrl=b.dlq_url, MessageBody="b's own")

    merged = load(ddb, sqs, ssm, plan_load(ddb, sqs, ssm, AWS, b, f, merge=True))
    got = items(ddb, b.table)
    assert merged.ok and merged.removed == {"tasks": 0, "main": 0, "dlq": 0}
    assert "only-in-b" in got and got["t-000"]["status"] == {"S": "COMPLETED"}  # overwritten by key
    assert len(got) == 62
    assert "b's own" in [body for body, _ in messages(sqs, b.dlq_url)]

    plan = plan_load(ddb, sqs, ssm, AWS, b, f, merge=False)
    plan.purge_settle_seconds = 0
    replaced = load(ddb, sqs, ssm, plan)
    assert replaced.ok and replaced.removed["tasks"] == 62
    assert set(items(ddb, b.table)) == set(items(ddb, a.table))


def test_unprocessed_items_are_retried_until_written(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)

    class Throttled:
        """DynamoDB returning the second half of every batch as UnprocessedItems, twice."""

        def __init__(self, real):
            self.real, self.left = real, 2

        def __getattr__(self, name):
            return getattr(self.real, name)

        def batch_write_item(self, RequestItems):  # noqa: N803 - boto3's name
            (table, reqs), = RequestItems.items()
            if self.left and len(reqs) > 1 and "PutRequest" in reqs[0]:
                self.left -= 1
                half = len(reqs) // 2
                self.real.batch_write_item(RequestItems={table: reqs[:half]})
                return {"UnprocessedItems": {table: reqs[half:]}}
            return self.real.batch_write_item(RequestItems=RequestItems)

    flaky = Throttled(ddb)
    report = load(flaky, sqs, ssm, plan_load(flaky, sqs, ssm, AWS, b, f, merge=True), sleep=lambda _s: None)
    assert flaky.left == 0 and report.ok and report.tallies["tasks"].written == 61
    assert items(ddb, b.table) == items(ddb, a.table)


def test_a_parameter_the_stage_does_not_have_is_skipped_and_a_refused_value_refused(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    ssm.put_parameter(Name=a.config_path + "extra", Value="1", Type="String")
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f)
    report = load(ddb, sqs, ssm, plan_load(ddb, sqs, ssm, AWS, b, f, merge=True))
    assert report.tallies["config"].skipped == 1 and report.tallies["config"].written == 2
    assert "extra" not in params(ssm, b.config_path)

    bad = rewrite(f, tmp_path / "bad.snap.gz", lambda lines: [
        line.replace('"value": "paused"', '"value": "closed"') for line in lines])
    with pytest.raises(UsageError, match="AllowedPattern"):
        plan_load(ddb, sqs, ssm, AWS, b, bad, merge=True)


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_stage(aws, stages, monkeypatch, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f, allow_receive=True)

    def stack_info(self):
        stage = self.target().stage
        refs = {"a": a, "b": b}[stage]
        return StackInfo(f"tm-{stage}", "CREATE_COMPLETE", {
            "TasksTableName": refs.table, "TaskQueueUrl": refs.queue_url, "DeadLetterQueueUrl": refs.dlq_url}, {}, "")

    monkeypatch.setattr(State, "stack", stack_info)
    monkeypatch.setenv("TMCTL_APP", "tm")
    return f, a, b


def test_load_refuses_without_a_terminal_or_yes_and_writes_nothing(aws, cli_stage):
    ddb, _sqs, _ssm = aws
    f, _a, b = cli_stage
    result = CliRunner().invoke(app, ["snapshot", "load", str(f)], env=CLI_ENV)
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == "" and "--yes" in result.stderr
    assert items(ddb, b.table) == {}


def test_load_into_production_is_refused_by_the_cli(aws, cli_stage):
    f, _a, _b = cli_stage
    result = CliRunner().invoke(app, ["snapshot", "load", str(f), "--yes", "--stage", "production"], env=CLI_ENV)
    assert result.exit_code == ExitCode.USAGE and "production" in result.stderr


def test_load_with_yes_prints_the_accounting(aws, cli_stage):
    ddb, _sqs, _ssm = aws
    f, a, b = cli_stage
    result = CliRunner().invoke(app, ["snapshot", "load", str(f), "--yes", "--merge", "-o", "json"], env=CLI_ENV)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and data["tallies"]["tasks"] == {"written": 61, "skipped": 0, "failed": 0}
    assert data["tallies"]["dlq"]["written"] == 1
    assert items(ddb, b.table) == items(ddb, a.table)


def test_save_refuses_to_overwrite_a_file_without_force(aws, cli_stage):
    f, _a, _b = cli_stage
    result = CliRunner().invoke(app, ["snapshot", "save", str(f), "--stage", "a"], env=CLI_ENV)
    assert result.exit_code == ExitCode.USAGE and "--force" in result.stderr


def test_on_aws_replace_waits_out_the_purge_only_when_a_queue_had_messages(aws, stages, tmp_path):
    ddb, sqs, ssm = aws
    a, b = stages
    f = tmp_path / "a.snap.gz"
    save(ddb, sqs, ssm, AWS, a, f)  # queues skipped: the file holds no messages
    slept: list[float] = []

    # GIVEN empty queues on b: no purge, no wait
    load(ddb, sqs, ssm, plan_load(ddb, sqs, ssm, AWS, b, f, merge=False), sleep=slept.append)
    assert 60 not in slept

    # GIVEN a message in b's DLQ: purged, then AWS's minute is waited out before anything is sent
    sqs.send_message(QueueUrl=b.dlq_url, MessageBody="old")
    report = load(ddb, sqs, ssm, plan_load(ddb, sqs, ssm, AWS, b, f, merge=False), sleep=slept.append)
    assert slept.count(60) == 1 and report.removed["dlq"] == 1
    assert messages(sqs, b.dlq_url) == []


def test_save_on_aws_says_the_queues_are_skipped_or_what_receiving_costs(aws, cli_stage, tmp_path):
    _f, _a, _b = cli_stage
    skipped = CliRunner().invoke(app, ["snapshot", "save", str(tmp_path / "s.gz"), "--stage", "a", "-o", "json"],
                                 env=CLI_ENV)
    assert skipped.exit_code == 0, skipped.stderr
    assert "queue skipped" in skipped.stderr and "--allow-receive" in skipped.stderr
    assert json.loads(skipped.stdout)["counts"]["dlq"] == 0

    received = CliRunner().invoke(app, ["snapshot", "save", str(tmp_path / "r.gz"), "--stage", "a",
                                        "--allow-receive", "-o", "json"], env=CLI_ENV)
    assert received.exit_code == 0, received.stderr
    assert "receive count rises by one" in received.stderr
    assert json.loads(received.stdout)["counts"] == {"tasks": 61, "main": 12, "dlq": 1, "config": 2}
