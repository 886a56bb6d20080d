"""tmctl.core.deploy: the template as tmctl reads it, the artifact bucket, change sets."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tmctl.core import deploy
from tmctl.core.deploy import (
    ARTIFACT_DAYS,
    ChangeSet,
    artifact_bucket,
    create_change_set,
    declared_concurrency,
    discard_change_set,
    ensure_bucket,
    execute_change_set,
    is_unchanged,
    stack_parameters,
    tls_only_policy,
    upload_artifacts,
)
from tmctl.core.errors import DeployFailed, TmctlError
from tmctl.core.package import Artifact
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit


def test_load_template_keeps_intrinsics_as_cloudformation_json(template):
    # !GetAtt / !Ref / !Sub in YAML become their JSON forms
    props = template["Resources"]["TaskQueue"]["Properties"]

    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": "DeadLetterQueue.Arn"}
    assert props["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert props["QueueName"] == {"Fn::Sub": "${AppName}-${Stage}-tasks"}


def test_the_template_defaults_are_aws_limits_with_no_reservation_on_the_front_door(template):
    # AWS: the Task API takes the account's pool (ApiConcurrency 0 resolves to no
    # ReservedConcurrentExecutions at all, not to 0, which would throttle every call),
    # the processing side is bounded.
    assert declared_concurrency(template, {}) == {
        "TaskApiFunction": None, "EventProcessorFunction": 2, "WorkflowStepsFunction": 20}
    route = template["Resources"]["ApiStage"]["Properties"]["DefaultRouteSettings"]
    params = template["Parameters"]
    assert route == {"ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
                     "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"}}
    assert (params["ApiThrottleRate"]["Default"], params["ApiThrottleBurst"]["Default"]) == (500, 1000)


def test_declared_concurrency_follows_parameter_overrides(template):
    got = declared_concurrency(template, {"ApiConcurrency": "3", "StepsConcurrency": "5"})

    assert got == {"TaskApiFunction": 3, "EventProcessorFunction": 2, "WorkflowStepsFunction": 5}


def test_declared_concurrency_ignores_functions_without_a_limit():
    template = {"Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {}},
                              "Q": {"Type": "AWS::SQS::Queue", "Properties": {"ReservedConcurrentExecutions": 1}}}}

    assert declared_concurrency(template, {}) == {}


def test_stack_parameters_fill_every_template_parameter_without_a_default(template, tmp_path):
    # Every parameter CloudFormation cannot default must come from tmctl.
    target = resolve_target(env={})
    artifacts = [Artifact(p, f"key/{p}", tmp_path / p, "0" * 64) for p in template["Parameters"] if p.endswith("Key")]

    params = stack_parameters(target, "bucket", artifacts)

    required = {name for name, spec in template["Parameters"].items() if "Default" not in spec}
    assert required <= set(params)
    assert params["ArtifactBucket"] == "bucket" and params["Stage"] == "dev"


def test_local_stacks_get_local_values_that_overrides_still_beat(template, tmp_path):
    # An emulator gets the fast back-off (a poison event in the DLQ within seconds); AWS keeps the
    # template's default; an explicit --param wins over both.
    local, aws = resolve_target(local=True, env={}), resolve_target(env={})

    assert stack_parameters(local, "b", [])["RetryBaseSeconds"] == "1"
    assert {"ApiConcurrency", "StepsConcurrency"} <= set(stack_parameters(local, "b", []))
    assert not {"ApiConcurrency", "StepsConcurrency"} & set(stack_parameters(aws, "b", []))
    assert "RetryBaseSeconds" not in stack_parameters(aws, "b", [])
    assert stack_parameters(local, "b", [], {"RetryBaseSeconds": "5"})["RetryBaseSeconds"] == "5"
    assert set(stack_parameters(local, "b", [])) <= set(template["Parameters"])


# ------------------------------------------------------------------ the artifact bucket (moto)


@pytest.fixture
def s3():
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("s3", region_name="eu-west-1")


def _artifacts(tmp_path, **contents: bytes) -> list[Artifact]:
    out = []
    for name, body in contents.items():
        (tmp_path / name).write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        out.append(Artifact(f"{name}Key", f"lambdas/{name}-{sha[:20]}.zip", tmp_path / name, sha))
    return out


def test_the_artifact_bucket_is_created_once_private_encrypted_tls_only_and_expiring(s3):
    # WHEN the bucket is ensured twice in eu-west-1
    created = [ensure_bucket(s3, "tmctl-artifacts-123456789012-eu-west-1", "eu-west-1", "123456789012")
               for _ in range(2)]

    # THEN it is created once, in that region, with every protection set
    bucket = "tmctl-artifacts-123456789012-eu-west-1"
    assert created == [True, False]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy == tls_only_policy(bucket)
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert (lifecycle["Status"], lifecycle["Expiration"]["Days"]) == ("Enabled", ARTIFACT_DAYS)


def test_a_bucket_whose_set_up_fails_is_deleted_so_the_next_run_starts_clean(s3, monkeypatch):
    # GIVEN S3 refusing the bucket policy (say, an SCP or a missing permission)
    def refuse(**_kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutBucketPolicy")

    monkeypatch.setattr(s3, "put_bucket_policy", refuse)

    # WHEN the bucket is ensured
    with pytest.raises(TmctlError) as caught:
        ensure_bucket(s3, "half-made", "eu-west-1", "123456789012")

    # THEN the error names the bucket, and no half-configured bucket is left to be trusted later
    assert "half-made" in str(caught.value) and "AccessDenied" in str(caught.value)
    assert s3.list_buckets()["Buckets"] == []


def test_artifacts_upload_only_when_their_content_hash_is_new(s3, tmp_path):
    # (a plain bucket: moto applies the TLS-only policy to its own calls, which it counts as plain HTTP)
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    first = _artifacts(tmp_path, api=b"v1", steps=b"v1")

    assert upload_artifacts(s3, "bkt", "123456789012", first) == [a.key for a in first]
    assert upload_artifacts(s3, "bkt", "123456789012", first) == []  # same bytes, same keys: nothing
    changed = _artifacts(tmp_path, api=b"v2", steps=b"v1")
    assert upload_artifacts(s3, "bkt", "123456789012", changed) == [changed[0].key]


def test_a_cached_artifact_that_is_not_the_bytes_its_key_names_is_refused_before_upload(s3, tmp_path):
    # GIVEN an artifact whose file was cut short after it was built (a concurrent
    # writer, a full disk): its content-hash key now names other bytes
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    (art,) = _artifacts(tmp_path, api=b"PK whole zip bytes")
    art.path.write_bytes(b"PK whole")

    # WHEN it is uploaded
    with pytest.raises(TmctlError) as caught:
        upload_artifacts(s3, "bkt", "123456789012", [art])

    # THEN nothing reaches the bucket, where that key would keep the wrong bytes for good,
    # and the bad file is gone, so the next build writes it again rather than trusting it
    assert art.key in caught.value.message and "again" in caught.value.fix
    assert s3.list_objects_v2(Bucket="bkt").get("KeyCount") == 0
    assert not art.path.exists()


def test_a_key_holding_other_bytes_than_it_names_is_uploaded_again(s3, tmp_path):
    # GIVEN a key an older tmctl filled from a half-written zip (S3 stored that zip's SHA-256)
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    (art,) = _artifacts(tmp_path, api=b"PK whole zip bytes")
    s3.put_object(Bucket="bkt", Key=art.key, Body=b"PK whole", ChecksumAlgorithm="SHA256")

    # WHEN the artifacts are uploaded, THEN that key is not taken as present: it gets the whole zip
    assert upload_artifacts(s3, "bkt", "123456789012", [art]) == [art.key]
    assert s3.get_object(Bucket="bkt", Key=art.key)["Body"].read() == b"PK whole zip bytes"


def test_the_upload_hands_s3_the_sha256_of_the_bytes_it_sends(tmp_path):
    # S3 recomputes it on arrival and refuses a body that does not match (BadDigest):
    # the checksum must be of the bytes read for this upload, not one computed elsewhere
    import boto3

    s3 = boto3.client("s3", region_name="eu-west-1")
    (art,) = _artifacts(tmp_path, api=b"PK zip bytes")
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_response("put_object", {}, {
            "Bucket": "bkt", "Key": art.key, "Body": b"PK zip bytes", "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(b"PK zip bytes").digest()).decode(),
            "ExpectedBucketOwner": "123456789012"})

        assert upload_artifacts(s3, "bkt", "123456789012", [art]) == [art.key]
        stub.assert_no_pending_responses()


def test_the_bucket_is_named_by_account_and_the_resolved_region():
    class Sts:
        def get_caller_identity(self):
            return {"Account": "123456789012"}

    resolved = resolve_target(region="eu-west-1", env={})
    assert artifact_bucket(Sts(), resolved) == ("tmctl-artifacts-123456789012-eu-west-1", "123456789012")
    with pytest.raises(ValueError, match="resolved region"):
        artifact_bucket(Sts(), resolve_target(env={}))  # never a bucket named "...-None"


# ------------------------------------------------------------------ change sets (Stubber)


TEMPLATE_BODY = "Parameters:\n  Retention:\n    Type: Number\n    Default: 14\nResources: {}\n"


def _cfn():
    import boto3

    return boto3.client("cloudformation", region_name="us-east-1")


def _deployed(params: dict[str, str], status: str = "UPDATE_COMPLETE") -> dict:
    return {"StackName": "taskmanager-dev", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/taskmanager-dev/x",
            "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z",
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]}


def test_is_unchanged_sees_a_dropped_override_as_a_change():
    # GIVEN a stack deployed with `-p Retention=3`, and the same template text
    cfn = _cfn()
    with Stubber(cfn) as stub:
        for _ in range(2):
            stub.add_response("get_template", {"TemplateBody": TEMPLATE_BODY})
        stack = _deployed({"Stage": "dev", "Retention": "3"})

        # THEN `up` without the override is a change (CloudFormation would use the default, 14) …
        assert not is_unchanged(cfn, stack, TEMPLATE_BODY, {"Stage": "dev"})
        # … and with it, nothing to do
        assert is_unchanged(cfn, stack, TEMPLATE_BODY, {"Stage": "dev", "Retention": "3"})


def test_nothing_to_change_creates_no_change_set():
    cfn = _cfn()
    with Stubber(cfn) as stub:  # any call beyond these two would fail the stub
        stub.add_response("describe_stacks", {"Stacks": [_deployed({"Retention": "14"})]})
        stub.add_response("get_template", {"TemplateBody": TEMPLATE_BODY})

        cs = create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {"Retention": "14"})

    assert cs.empty and cs.change_type == "NONE" and cs.changes == []
    assert execute_change_set(cfn, resolve_target(region="us-east-1", env={}), cs).changed is False


def test_a_change_set_is_described_as_rows_and_discarded_with_its_empty_stack():
    cfn = _cfn()
    cs_id = "arn:aws:cloudformation:us-east-1:1:changeSet/tmctl-x/1"
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id taskmanager-dev does not exist")
        stub.add_response("create_change_set", {"Id": cs_id, "StackId": "s"})
        stub.add_response("describe_change_set", {
            "ChangeSetId": cs_id, "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE", "Changes": [
                {"Type": "Resource", "ResourceChange": {"Action": "Add", "LogicalResourceId": "TasksTable",
                                                        "ResourceType": "AWS::DynamoDB::Table"}},
                {"Type": "Resource", "ResourceChange": {"Action": "Modify", "LogicalResourceId": "Fn",
                                                        "ResourceType": "AWS::Lambda::Function",
                                                        "Replacement": "True", "PhysicalResourceId": "fn-1"}}]})
        cs = create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {})

        # WHEN it is discarded (a diff, a declined up): the change set and the REVIEW_IN_PROGRESS shell go
        stub.add_response("delete_change_set", {}, {"ChangeSetName": cs_id})
        stub.add_response("describe_stacks", {"Stacks": [_deployed({}, "REVIEW_IN_PROGRESS")]})
        stub.add_response("delete_stack", {}, {"StackName": "taskmanager-dev"})
        discard_change_set(cfn, cs)
        stub.assert_no_pending_responses()

    assert cs.change_type == "CREATE"
    assert [c.to_dict() for c in cs.changes] == [
        {"action": "Add", "logicalId": "TasksTable", "type": "AWS::DynamoDB::Table", "replacement": "",
         "physicalId": ""},
        {"action": "Modify", "logicalId": "Fn", "type": "AWS::Lambda::Function", "replacement": "True",
         "physicalId": "fn-1"}]


def test_ctrl_c_while_the_change_set_is_created_leaves_no_change_set_or_empty_stack(monkeypatch):
    # `tmctl diff` on a new stage, interrupted while CloudFormation computes the change set
    cfn = _cfn()
    cs_id = "arn:aws:cloudformation:us-east-1:1:changeSet/tmctl-x/1"

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "wait_change_set", interrupted)
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id taskmanager-dev does not exist")
        stub.add_response("create_change_set", {"Id": cs_id, "StackId": "s"})
        stub.add_response("delete_change_set", {}, {"ChangeSetName": cs_id})
        stub.add_response("describe_stacks", {"Stacks": [_deployed({}, "REVIEW_IN_PROGRESS")]})
        stub.add_response("delete_stack", {}, {"StackName": "taskmanager-dev"})

        with pytest.raises(KeyboardInterrupt):
            create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {}, dry_run=True)
        stub.assert_no_pending_responses()


def test_a_change_set_refused_for_credentials_says_so_not_cfn_lint():
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id taskmanager-dev does not exist")
        stub.add_client_error("create_change_set", "AccessDenied", "not authorized to perform CreateChangeSet")

        with pytest.raises(TmctlError) as err:
            create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {})

    assert "AccessDenied" in str(err.value) and "credentials" in (err.value.fix or "")


def test_a_failed_aws_stack_is_not_deleted_behind_the_users_back():
    # ROLLBACK_FAILED may still hold resources (and data): on AWS tmctl says what to do, it does not delete
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [_deployed({}, "ROLLBACK_FAILED")]})
        with pytest.raises(DeployFailed) as caught:
            create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {},
                              replace_failed=False)

    assert "ROLLBACK_FAILED" in caught.value.message and "tmctl down" in caught.value.fix


def test_a_diff_never_deletes_even_a_rolled_back_stack():
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [_deployed({}, "ROLLBACK_COMPLETE")]})
        with pytest.raises(DeployFailed) as caught:
            create_change_set(cfn, resolve_target(region="us-east-1", env={}), TEMPLATE_BODY, {}, dry_run=True)

    assert "tmctl up" in caught.value.fix


def _event(n: int, logical: str, status: str, reason: str = "") -> dict:
    ev = {"EventId": str(n), "StackId": "s", "StackName": "taskmanager-dev", "LogicalResourceId": logical,
          "ResourceType": "AWS::Lambda::Function" if logical != "taskmanager-dev" else "AWS::CloudFormation::Stack",
          "ResourceStatus": status, "Timestamp": dt.datetime(2030, 1, 1, 0, 0, n, tzinfo=dt.UTC)}
    if reason:
        ev["ResourceStatusReason"] = reason
    return ev


def test_a_failed_deploy_names_the_first_failing_resource_and_its_reason():
    # GIVEN a change set whose execution fails on one function and rolls back
    cfn = _cfn()
    events = [_event(1, "taskmanager-dev", "UPDATE_IN_PROGRESS"),
              _event(2, "ApiFn", "UPDATE_FAILED", "Failed to fetch code from s3://gone/api.zip"),
              _event(3, "StepsFn", "UPDATE_FAILED", "Resource update cancelled"),
              _event(4, "taskmanager-dev", "UPDATE_ROLLBACK_COMPLETE")]
    lines: list[tuple[str, bool]] = []
    previous = _event(0, "taskmanager-dev", "UPDATE_COMPLETE")  # the last deploy's: not this one's to report
    cs = ChangeSet("taskmanager-dev", "UPDATE", "cs-1", "tmctl-x")
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_events", {"StackEvents": [previous]}, {"StackName": "taskmanager-dev"})
        stub.add_response("execute_change_set", {}, {"ChangeSetName": "cs-1"})
        stub.add_response("describe_stacks", {"Stacks": [_deployed({}, "UPDATE_ROLLBACK_COMPLETE")]})
        stub.add_response("describe_stack_events", {"StackEvents": [*reversed(events), previous]})  # newest first

        with pytest.raises(DeployFailed) as caught:
            execute_change_set(cfn, resolve_target(region="us-east-1", env={}), cs,
                               progress=lambda m, detail=False: lines.append((m, detail)))

    # THEN the error is the cause, not just the final status
    assert caught.value.message == ("deploy of taskmanager-dev ended UPDATE_ROLLBACK_COMPLETE; first failure: ApiFn "
                                    "(AWS::Lambda::Function) UPDATE_FAILED: Failed to fetch code from s3://gone/api.zip")
    # AND every event was reported oldest first, failures never folded away
    assert [m.split()[1:3] for m, _ in lines] == [[e["ResourceStatus"], e["LogicalResourceId"]] for e in events]
    assert [d for _, d in lines] == [True, False, False, True]
