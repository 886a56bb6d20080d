"""Plain-dict <-> DynamoDB wire format, without the resource layer's import cost."""

from __future__ import annotations

from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_wire_safe(value):
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_wire_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_wire_safe(v) for v in value]
    return value


def _from_decimal(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_decimal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_decimal(v) for v in value]
    return value


def to_item(data: dict) -> dict:
    return {k: _ser.serialize(_to_wire_safe(v)) for k, v in data.items()}


def to_value(value) -> dict:
    return _ser.serialize(_to_wire_safe(value))


def from_item(item: dict) -> dict:
    return {k: _from_decimal(_de.deserialize(v)) for k, v in item.items()}
