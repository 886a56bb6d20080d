"""The dual write's safety net: tasks stored but never published (the Task
API died, or SQS failed, between its PutItem and SendMessage) sit PENDING.
Replaying the identical create through the API publishes them; the API's
idempotency makes a replay of anything already published a no-op."""

from __future__ import annotations

import datetime as dt

from tmctl.core.api import TaskApi
from tmctl.core.dynamo import from_item

CLIENT_FIELDS = ("taskID", "title", "description", "priority", "dueDate")


def stuck_pending(ddb, table: str, older_than: float) -> list[dict]:
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)).isoformat(timespec="milliseconds")
    cutoff = cutoff.replace("+00:00", "Z")
    found = []
    for page in ddb.get_paginator("query").paginate(
            TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :p AND createdAt <= :cut",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {"S": "PENDING"}, ":cut": {"S": cutoff}}):
        found += [from_item(item) for item in page["Items"]]
    return found


def republish_pending(ddb, table: str, api: TaskApi, *, older_than: float = 60.0, dry_run: bool = False) -> list[dict]:
    results = []
    for task in stuck_pending(ddb, table, older_than):
        row = {"taskID": task["taskID"], "createdAt": task["createdAt"], "result": "would republish"}
        if not dry_run:
            resp = api.create({k: task[k] for k in CLIENT_FIELDS if task.get(k) is not None})
            row["result"] = f"{resp.body.get('status')}" if resp.status == 202 else \
                f"error {resp.status} {resp.body.get('error')}"
        results.append(row)
    return results
