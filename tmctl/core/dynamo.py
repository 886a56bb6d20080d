"""Reading task items straight from DynamoDB (the API is the write path)."""

from __future__ import annotations

from decimal import Decimal


def plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [plain(v) for v in value]
    return value


def get_task_item(ddb, table: str, task_id: str) -> dict | None:
    from boto3.dynamodb.types import TypeDeserializer

    got = ddb.get_item(TableName=table, Key={"taskID": {"S": task_id}}, ConsistentRead=True)
    if "Item" not in got:
        return None
    de = TypeDeserializer()
    return {k: plain(de.deserialize(v)) for k, v in got["Item"].items()}
