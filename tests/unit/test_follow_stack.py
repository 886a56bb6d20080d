"""tmctl.core.deploy.follow_stack: which stack events belong to this deploy is
decided by CloudFormation's own event ids and clock, never by this machine's."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

from tmctl.core.deploy import ChangeSet, delete_stack, execute_change_set
from tmctl.core.errors import DeployFailed
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit

STACK = "taskmanager-dev"
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK}/1"
SKEW = 5.0  # seconds this machine's clock runs ahead of CloudFormation's
TYPES = {STACK: "AWS::CloudFormation::Stack", "Bucket": "AWS::S3::Bucket"}


class SkewedCloudFormation:
    """CloudFormation as deploy calls it, answered from memory by operation
    (not by call order, so any correct way of reading the events passes), its
    clock SKEW seconds behind this machine's. Events are listed newest first,
    `page_size` a page, as DescribeStackEvents does. An operation (execute a
    change set, delete the stack) appends its events and settles at once."""

    def __init__(self, history: list[tuple[str, str, str]], outcome: list[tuple[str, str, str]], final: str, *,
                 exists: bool = True, page_size: int = 2):
        self.events: list[dict] = []  # oldest first
        self.exists, self.status, self.page_size = exists, "UPDATE_COMPLETE", page_size
        self.outcome, self.final = outcome, final
        self.pages_read = 0
        self._record(history, ago=3600.0)

    def _record(self, rows: list[tuple[str, str, str]], ago: float) -> None:
        start = time.time() - ago
        for logical, status, reason in rows:
            n = len(self.events)
            ev = {"EventId": f"ev-{n}", "StackId": STACK_ID, "StackName": STACK, "LogicalResourceId": logical,
                  "ResourceType": TYPES.get(logical, "AWS::Lambda::Function"),
                  "ResourceStatus": status, "Timestamp": dt.datetime.fromtimestamp(start + n / 100, dt.UTC)}
            if reason:
                ev["ResourceStatusReason"] = reason
            self.events.append(ev)

    def _operate(self) -> None:
        self.exists = True
        self._record(self.outcome, ago=SKEW)  # "now" by CloudFormation's clock
        self.status = self.final

    # --- the API
    def describe_stacks(self, StackName: str) -> dict:
        if not self.exists:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "does not exist"}}, "DescribeStacks")
        return {"Stacks": [{"StackName": STACK, "StackId": STACK_ID, "StackStatus": self.status}]}

    def describe_stack_events(self, StackName: str, NextToken: str | None = None) -> dict:
        if not self.exists:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "does not exist"}},
                              "DescribeStackEvents")
        self.pages_read += 1
        newest_first = list(reversed(self.events))
        start = int(NextToken or 0)
        page = {"StackEvents": newest_first[start:start + self.page_size]}
        if start + self.page_size < len(newest_first):
            page["NextToken"] = str(start + self.page_size)
        return page

    def get_paginator(self, name: str):
        assert name == "describe_stack_events"
        return self

    def paginate(self, StackName: str):
        token = None
        while True:
            page = self.describe_stack_events(StackName=StackName, **({"NextToken": token} if token else {}))
            yield page
            token = page.get("NextToken")
            if not token:
                return

    def execute_change_set(self, ChangeSetName: str) -> dict:
        self._operate()
        return {}

    def delete_stack(self, StackName: str) -> dict:
        self._operate()
        return {}


# A deploy of yesterday that failed, then one that succeeded: history this deploy must not report.
HISTORY = [(STACK, "UPDATE_IN_PROGRESS", ""),
           ("ApiFn", "UPDATE_FAILED", "an old failure, fixed since"),
           (STACK, "UPDATE_ROLLBACK_COMPLETE", ""),
           (STACK, "UPDATE_IN_PROGRESS", ""),
           ("ApiFn", "UPDATE_COMPLETE", ""),
           (STACK, "UPDATE_COMPLETE", "")]
FAILED_UPDATE = [(STACK, "UPDATE_IN_PROGRESS", "User Initiated"),
                 ("StepsFn", "UPDATE_FAILED", "Failed to fetch code from s3://gone/steps.zip"),
                 (STACK, "UPDATE_ROLLBACK_IN_PROGRESS", ""),
                 (STACK, "UPDATE_ROLLBACK_COMPLETE", "")]


def _deploy(cfn: SkewedCloudFormation, lines: list[str], change_type: str = "UPDATE") -> None:
    execute_change_set(cfn, resolve_target(region="us-east-1", env={}),
                       ChangeSet(STACK, change_type, "cs-1", "tmctl-x"),
                       progress=lambda m, detail=False: lines.append(m), timeout=5)


def test_a_clock_ahead_of_cloudformations_still_sees_why_the_deploy_failed():
    # GIVEN this machine's clock 5 s ahead of CloudFormation's, and a deploy that fails
    cfn = SkewedCloudFormation(HISTORY, FAILED_UPDATE, "UPDATE_ROLLBACK_COMPLETE")
    lines: list[str] = []

    # WHEN the change set is executed and followed
    with pytest.raises(DeployFailed) as caught:
        _deploy(cfn, lines)

    # THEN the failure and its reason are reported: the events are told apart by
    # CloudFormation's ids, so the local clock hides none of them …
    assert caught.value.message.endswith("first failure: StepsFn (AWS::Lambda::Function) UPDATE_FAILED: "
                                         "Failed to fetch code from s3://gone/steps.zip")
    assert [line.split()[1:3] for line in lines] == [[s, logical] for logical, s, _ in FAILED_UPDATE]
    # … and no earlier deploy's event is taken for this one's (its old failure least of all)
    assert not any("old failure" in line for line in lines)


def test_following_stops_reading_at_the_last_event_before_the_deploy():
    # GIVEN a long history (3 pages of 2) and a deploy that adds 4 events
    cfn = SkewedCloudFormation(HISTORY, FAILED_UPDATE, "UPDATE_ROLLBACK_COMPLETE")
    cfn.pages_read = 0

    with pytest.raises(DeployFailed):
        _deploy(cfn, [])

    # THEN one page marks where the deploy starts, and following reads only the 2
    # pages of its events and the one holding that mark, never the older history
    assert cfn.pages_read == 1 + 3


def test_a_brand_new_stack_reports_every_event():
    # GIVEN no stack yet (nothing to mark) and a create that rolls back
    created = [(STACK, "CREATE_IN_PROGRESS", "User Initiated"),
               ("ApiFn", "CREATE_FAILED", "Role is invalid"),
               (STACK, "ROLLBACK_COMPLETE", "")]
    cfn = SkewedCloudFormation([], created, "ROLLBACK_COMPLETE", exists=False)
    lines: list[str] = []

    with pytest.raises(DeployFailed) as caught:
        _deploy(cfn, lines, "CREATE")

    # THEN all of them are this deploy's
    assert caught.value.message.endswith("first failure: ApiFn (AWS::Lambda::Function) CREATE_FAILED: "
                                         "Role is invalid")
    assert len(lines) == len(created)


def test_a_clock_ahead_still_sees_why_a_delete_failed():
    # GIVEN the same skew and a delete CloudFormation cannot finish
    cfn = SkewedCloudFormation(HISTORY, [(STACK, "DELETE_IN_PROGRESS", "User Initiated"),
                                         ("Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty"),
                                         (STACK, "DELETE_FAILED", "")], "DELETE_FAILED")

    with pytest.raises(DeployFailed) as caught:
        delete_stack(cfn, resolve_target(region="us-east-1", env={}), timeout=5)

    # THEN the error carries CloudFormation's reason, not "?"
    assert caught.value.message == ("delete of taskmanager-dev failed: Bucket (AWS::S3::Bucket) DELETE_FAILED: "
                                    "The bucket you tried to delete is not empty")
