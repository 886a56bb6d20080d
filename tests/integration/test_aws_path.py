"""The AWS path, end to end, against the embedded emulator in AWS mode.

TMCTL_AWS_ENDPOINT_URL (tmctl/core/target.py) makes an AWS target — region
and credentials from boto3's chain (here a profile in a temp config file),
the change-set question, the typed-name `down`, no emulator-only shortcuts —
whose calls go to this test's own emulator. Nothing of AWS is faked: the CLI
runs as a user runs it, in a subprocess, stdin not a terminal unless a pty is
given. Its own emulator, port and stage: it shares nothing with the session
stack of conftest.py."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from tmctl.core.local import emulator
from tmctl.core.target import resolve_target

from .conftest import free_port

pytestmark = pytest.mark.integration

STAGE = "awsit"
STACK = f"taskmanager-{STAGE}"
PROFILE = "awsit"
REGION = "us-east-1"  # the profile's region; none is passed on the command line


@dataclasses.dataclass
class AwsMode:
    endpoint: str
    env: dict[str, str]
    cfn: object
    s3: object

    def tmctl(self, *args: str, tty_input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the real CLI. stdin is /dev/null (no terminal), or a pty fed `tty_input`."""
        cmd = [sys.executable, "-m", "tmctl", "--profile", PROFILE, *args]
        if tty_input is None:
            return subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout)
        master, slave = pty.openpty()
        try:
            os.write(master, tty_input.encode())  # buffered by the terminal until the question reads it
            return subprocess.run(cmd, env=self.env, stdin=slave, capture_output=True, text=True, timeout=timeout)
        finally:
            os.close(slave)
            os.close(master)

    def stack_status(self) -> str | None:
        try:
            return self.cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        except ClientError:
            return None

    def change_sets(self) -> list[dict]:
        """Change sets not executed (AWS drops executed ones; MiniStack lists them as EXECUTE_COMPLETE)."""
        try:
            summaries = self.cfn.list_change_sets(StackName=STACK)["Summaries"]
        except ClientError:
            return []
        return [s for s in summaries if s.get("ExecutionStatus") != "EXECUTE_COMPLETE"]

    def buckets(self) -> list[str]:
        return [b["Name"] for b in self.s3.list_buckets().get("Buckets", [])]


@pytest.fixture(scope="module")
def aws(tmp_path_factory) -> Iterator[AwsMode]:
    tmp = tmp_path_factory.mktemp("aws-mode")
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage=STAGE, env={}), state_dir=tmp / "state")
    (tmp / "config").write_text(f"[profile {PROFILE}]\nregion = {REGION}\n")
    # The emulator's root keys, given as any AWS user gives keys: in the credentials file.
    (tmp / "credentials").write_text(f"[{PROFILE}]\naws_access_key_id = test\naws_secret_access_key = test\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TMCTL_"))}
    env.update({"TMCTL_AWS_ENDPOINT_URL": endpoint, "TMCTL_STAGE": STAGE, "TMCTL_STATE_DIR": str(tmp / "state"),
                "AWS_CONFIG_FILE": str(tmp / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "credentials"),
                "AWS_EC2_METADATA_DISABLED": "true", "NO_COLOR": "1", "COLUMNS": "200"})
    _, proc = emulator.start(target)
    assert proc is not None, f"something already answers on {endpoint}"
    try:
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        yield AwsMode(endpoint, env, session.client("cloudformation", endpoint_url=endpoint),
                      session.client("s3", endpoint_url=endpoint))
    finally:
        emulator.stop(target)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tmctl: error:"), result.stderr
    return result.stderr


def test_the_aws_path_from_nothing_to_deleted(aws: AwsMode):
    # GIVEN an AWS target with no stack, and no terminal on stdin
    # WHEN `up` runs without --yes
    refused = aws.tmctl("up")
    # THEN it refuses in one stderr line, exit 2, having created nothing
    assert refused.returncode == 2, refused.stderr
    assert "--yes" in one_error_line(refused) and refused.stdout == ""
    assert aws.stack_status() is None
    assert not [b for b in aws.buckets() if b.startswith("tmctl-artifacts-")]

    # WHEN `diff` runs: every resource shows as an Add, as a table and as JSON
    table = aws.tmctl("--output", "table", "diff")
    assert table.returncode == 0, table.stderr
    assert "change set for taskmanager-awsit (create)" in table.stdout
    assert "AWS::DynamoDB::Table" in table.stdout and " Add " in table.stdout
    planned = json.loads(aws.tmctl("--output", "json", "diff").stdout)
    assert planned["changeType"] == "CREATE" and len(planned["changes"]) > 10
    assert {c["action"] for c in planned["changes"]} == {"Add"}
    # THEN it left nothing behind: no stack shell, no change set, no bucket
    assert aws.stack_status() is None
    assert not [b for b in aws.buckets() if b.startswith("tmctl-artifacts-")]

    # WHEN `up --yes` deploys
    t0 = time.monotonic()
    up = aws.tmctl("--output", "json", "up", "--yes", "--no-warm")
    deploy_seconds = time.monotonic() - t0
    assert up.returncode == 0, up.stderr
    # THEN the region came from the profile, the change set was shown, and the
    # stack events streamed as lines (AWS: every one kept, not folded)
    assert f"on AWS {REGION} (profile {PROFILE}) via {aws.endpoint}" in up.stderr
    assert "change set for taskmanager-awsit (create)" in up.stderr
    events = [line for line in up.stderr.splitlines() if "CREATE_COMPLETE" in line]
    assert len(events) > 10 and any("AWS::DynamoDB::Table" in line for line in events), up.stderr
    assert json.loads(up.stdout)["changed"] is True and aws.stack_status() == "CREATE_COMPLETE"
    # AND the artifact bucket is private, encrypted, TLS-only and expires old artifacts
    bucket = next(b for b in aws.buckets() if b.startswith("tmctl-artifacts-"))
    assert bucket.endswith(f"-{REGION}")
    rule = aws.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(aws.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(aws.s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Effect"] == "Deny"
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert lifecycle["Status"] == "Enabled" and lifecycle["Expiration"]["Days"] > 0

    # WHEN `up --yes` runs again with nothing changed
    events_before = len(aws.cfn.describe_stack_events(StackName=STACK)["StackEvents"])
    again = aws.tmctl("--output", "json", "up", "--yes", "--no-warm")
    # THEN no artifact is uploaded and no change set is created or executed
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert (data["changed"], data["uploaded"]) == (False, [])
    assert "no changes" in again.stderr and "change set for" not in again.stderr
    assert len(aws.cfn.describe_stack_events(StackName=STACK)["StackEvents"]) == events_before
    assert aws.change_sets() == []

    # WHEN a parameter changes, `diff` shows the log groups as Modify, and changes nothing
    modified = json.loads(aws.tmctl("--output", "json", "diff", "-p", "LogRetentionDays=3").stdout)
    assert modified["changeType"] == "UPDATE"
    # (AWS would list only the log groups; MiniStack marks more resources Modify on any update)
    assert "AWS::Logs::LogGroup" in {c["type"] for c in modified["changes"] if c["action"] == "Modify"}
    assert aws.change_sets() == [] and aws.stack_status() == "CREATE_COMPLETE"

    # WHEN `up` with that change is asked on a terminal and answered no
    declined = aws.tmctl("up", "-p", "LogRetentionDays=3", tty_input="n\n")
    # THEN the table was shown, nothing ran, and no change set is left
    assert declined.returncode == 1, declined.stderr
    assert "Modify" in declined.stderr and "Execute change set" in declined.stderr
    assert "nothing was changed" in declined.stderr
    assert aws.change_sets() == [] and aws.stack_status() == "CREATE_COMPLETE"

    # WHEN a deploy fails (code that cannot be fetched: the bucket does not exist)
    failed = aws.tmctl("up", "--yes", "--no-warm", "-p", "ArtifactBucket=no-such-bucket")
    # THEN the events show it, and the error names the first failing resource and its reason
    assert failed.returncode == 1, failed.stderr
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("tmctl: error: deploy of taskmanager-awsit ended UPDATE_ROLLBACK_COMPLETE; first failure: "
                            "TaskApiFunction (AWS::Lambda::Function) UPDATE_FAILED: "), error
    assert "no-such-bucket" in error
    assert aws.stack_status() == "UPDATE_ROLLBACK_COMPLETE"

    # WHEN `down` runs without --yes and no terminal, or with a mistyped name
    for refused_down, code in ((aws.tmctl("down"), 2), (aws.tmctl("down", tty_input="taskmanager\n"), 1)):
        # THEN it refuses and the stack stays
        assert refused_down.returncode == code, refused_down.stderr
        assert aws.stack_status() == "UPDATE_ROLLBACK_COMPLETE"
    # WHEN `down --yes`
    down = aws.tmctl("down", "--yes")
    # THEN the stack is deleted (MiniStack deletes at once: no events to show, unlike AWS)
    assert down.returncode == 0, down.stderr
    assert f"deleted {STACK}" in down.stderr
    assert aws.stack_status() in (None, "DELETE_COMPLETE")
    print(f"\nAWS-mode deploy from nothing: {deploy_seconds:.1f}s")
