"""Tasks read straight from the table for browsing: newest first across every
status, a page at a time, and a search by taskID.

The HTTP API's `GET /tasks` (what `tmctl task list` calls) pages a Scan when no
status is given, so it has no order; the byStatus index (status → createdAt)
has one per status. Newest first across statuses is therefore a merge of one
descending Query per status, continued from a cursor (the last row's createdAt
and taskID). Each Query reads at most a page of items: a page costs the same
with 10 tasks or 100,000.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tmctl.core.dynamo import from_item, get_task_item
from tmctl.core.errors import UsageError

STATUS_INDEX = "byStatus"  # cloudformation/template.yaml: TasksTable GlobalSecondaryIndexes
LIST_FIELDS = ("taskID", "status", "title", "priority", "createdAt", "updatedAt", "error")
MAX_PAGE = 100
SEARCH_SCAN_LIMIT = 5000  # items a search reads at most (a Scan costs every item it reads on AWS)


@dataclass(frozen=True)
class TaskPage:
    items: list[dict]  # newest first
    next_cursor: str | None  # pass as `before` for the next (older) page
    scanned: int = 0  # search only: items read to find these


def encode_cursor(created_at: str, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, task_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise UsageError("the page cursor is not one this listing gave", "start again from the first page")
    return value[0], value[1]


def _key(item: dict) -> tuple[str, str]:
    return str(item.get("createdAt") or ""), str(item.get("taskID") or "")


def _newest_in_status(ddb, table: str, status: str, before: tuple[str, str] | None, limit: int) -> list[dict]:
    kwargs: dict = {
        "TableName": table, "IndexName": STATUS_INDEX, "ScanIndexForward": False, "Limit": limit,
        "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": status}},
    }
    if before is not None:
        # <=, not <: another task may share the cursor's millisecond; those already shown are dropped below
        kwargs["KeyConditionExpression"] += " AND createdAt <= :c"
        kwargs["ExpressionAttributeValues"][":c"] = {"S": before[0]}
    found: list[dict] = []
    while True:  # the rows dropped below (the cursor's own, its millisecond's) are made up from the next page
        page = ddb.query(**kwargs)
        found += [i for i in map(from_item, page.get("Items", [])) if before is None or _key(i) < before]
        if len(found) >= limit or "LastEvaluatedKey" not in page:
            return found[:limit]
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def recent_tasks(ddb, table: str, statuses: Iterable[str], *, status: str | None = None, before: str | None = None,
                 limit: int = 25) -> TaskPage:
    """A page of tasks, newest first: of one status, or of all `statuses`
    merged. `before` is the previous page's `next_cursor`."""
    limit = max(1, min(limit, MAX_PAGE))
    cursor = decode_cursor(before) if before else None
    wanted = [status] if status else list(statuses)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(wanted)))) as pool:
        pages = list(pool.map(lambda s: _newest_in_status(ddb, table, s, cursor, limit + 1), wanted))
    merged = sorted((i for page in pages for i in page), key=_key, reverse=True)
    items = merged[:limit]
    more = len(merged) > limit
    next_cursor = encode_cursor(*_key(items[-1])) if more and items else None
    return TaskPage([{k: i[k] for k in LIST_FIELDS if k in i} for i in items], next_cursor)


def search_tasks(ddb, table: str, text: str, *, limit: int = 25, scan_limit: int = SEARCH_SCAN_LIMIT) -> TaskPage:
    """Tasks whose taskID is `text`, else contains it (a bounded Scan), newest first."""
    text = text.strip()
    if not text:
        return TaskPage([], None)
    exact = get_task_item(ddb, table, text)
    if exact is not None:
        return TaskPage([{k: exact[k] for k in LIST_FIELDS if k in exact}], None, 1)
    found: list[dict] = []
    scanned = 0
    kwargs: dict = {"TableName": table, "FilterExpression": "contains(taskID, :q)",
                    "ExpressionAttributeValues": {":q": {"S": text}}}
    while scanned < scan_limit:
        page = ddb.scan(**kwargs, Limit=min(1000, scan_limit - scanned))
        scanned += page.get("ScannedCount", 0)
        found += [from_item(i) for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found.sort(key=_key, reverse=True)
    return TaskPage([{k: i[k] for k in LIST_FIELDS if k in i} for i in found[:limit]], None, scanned)
