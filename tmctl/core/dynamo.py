"""Reading task items straight from DynamoDB (the API is the write path)."""

from __future__ import annotations

from decimal import Decimal


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def from_item(item: dict) -> dict:
    """A DynamoDB item (wire format) as plain Python values."""
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    return {k: _plain(de.deserialize(v)) for k, v in item.items()}


def get_task_item(ddb, table: str, task_id: str) -> dict | None:
    got = ddb.get_item(TableName=table, Key={"taskID": {"S": task_id}}, ConsistentRead=True)
    return from_item(got["Item"]) if "Item" in got else None
