"""Task API: POST /tasks, GET /tasks/{taskID}, GET /tasks, behind either front door:
an HTTP API (payload 2.0) or a REST API (proxy payload 1.0), one contract.

The edge (routing, body decoding, error shaping) is Powertools: the routes and
error handlers are declared once on a `Router`, included into an HTTP and a REST
resolver, and each event goes to the resolver of its shape. The work is in
`TaskService`, which takes its clients as arguments."""

from __future__ import annotations

import base64
import json
import os
import re
import time

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from botocore.exceptions import BotoCoreError, ClientError
from taskcore import config
from taskcore.aws import BOTO_CONFIG, THROTTLING_CODES
from taskcore.contract import task_created_message
from taskcore.dynamo import from_item, to_item, to_value
from taskcore.model import (
    MAX_BODY_BYTES,
    TASK_ID_PATTERN,
    Status,
    TaskInput,
    ValidationError,
    now_iso,
    parse_json_body,
    public_view,
)

logger = Logger(service="task-api")
# The routes and error handlers, once; the resolvers at the end of the module include them.
router = Router()

TABLE = os.environ.get("TABLE_NAME", "")
QUEUE_URL = os.environ.get("QUEUE_URL", "")
STATUS_INDEX = os.environ.get("STATUS_INDEX", "byStatus")
MAX_LIMIT = 100
# The operations of cloudformation/openapi.yaml by path (after the stage). Another
# method on one of these paths is a 405 that names the methods it has; any other
# path is a 404. The HTTP API's $default route and the REST API's ANY methods send both here.
DECLARED_PATHS = (
    (re.compile(r"/tasks"), ("GET", "POST")),
    (re.compile(r"/tasks/[^/]+"), ("GET",)),
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
    return Response(status_code=status, content_type="application/json",
                    body=json.dumps({"error": code, "message": message}),
                    headers={"Retry-After": str(retry_after)} if retry_after else None)


def json_response(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(status_code=status, content_type="application/json",
                    body=json.dumps(payload, default=str), headers=headers)


class TaskService:
    """Create/get/list tasks. The dual write (item, then event) lives here."""

    def __init__(self, ddb, sqs, table: str, queue_url: str, status_index: str = "byStatus"):
        self.ddb, self.sqs = ddb, sqs
        self.table, self.queue_url, self.status_index = table, queue_url, status_index

    def get(self, task_id: str) -> dict | None:
        got = self.ddb.get_item(TableName=self.table, Key={"taskID": {"S": task_id}}, ConsistentRead=True)
        return from_item(got["Item"]) if "Item" in got else None

    def create(self, task: TaskInput) -> tuple[int, dict]:
        """Returns (http status, task). Identical replay → same answer; a
        different body under a known taskID → 409; a failed publish → 503 with
        the failure recorded on the task, and a replay publishes it again."""
        at = now_iso()
        item = task.new_item(at)
        try:
            self.ddb.put_item(TableName=self.table, Item=to_item(item),
                              ConditionExpression="attribute_not_exists(taskID)")
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            existing = self.get(task.taskID)
            if existing is None:  # deleted in between: let the client retry
                raise ApiError(503, "RETRY", "the task changed while being created; retry") from None
            if existing.get("requestHash") != task.fingerprint():
                raise ApiError(409, "CONFLICT",
                               f"task '{task.taskID}' exists with a different body") from None
            if existing["status"] != Status.PENDING:
                return 202, existing
            item = existing  # a replay of a task whose event never went out: publish again
        return self._publish(item)

    def _publish(self, item: dict) -> tuple[int, dict]:
        task_id = item["taskID"]
        try:
            sent = self.sqs.send_message(QueueUrl=self.queue_url, **task_created_message(task_id, item))
        except (ClientError, BotoCoreError) as err:
            logger.exception("publish failed", extra={"taskID": task_id})
            failure = {"code": "PUBLISH_FAILED", "message": str(err)[:500], "at": now_iso()}
            try:
                self.ddb.update_item(
                    TableName=self.table, Key={"taskID": {"S": task_id}},
                    UpdateExpression="SET #e = :e, updatedAt = :at",
                    ConditionExpression="#s = :pending",
                    ExpressionAttributeNames={"#e": "error", "#s": "status"},
                    ExpressionAttributeValues={":e": to_value(failure), ":at": {"S": failure["at"]},
                                               ":pending": {"S": Status.PENDING}},
                )
            except (ClientError, BotoCoreError):
                logger.exception("could not record the publish failure", extra={"taskID": task_id})
            raise ApiError(503, "PUBLISH_FAILED",
                           f"task '{task_id}' is stored but its event was not published; "
                           "repeat the same request to retry") from err
        at = now_iso()
        entry = {"step": "queued", "outcome": "ok", "at": at, "detail": sent["MessageId"]}
        queued = to_value([entry])
        try:
            self.ddb.update_item(
                TableName=self.table, Key={"taskID": {"S": task_id}},
                UpdateExpression="SET #s = :queued, updatedAt = :at, #h = list_append(#h, :h) REMOVE #e",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status", "#h": "history", "#e": "error"},
                ExpressionAttributeValues={
                    ":queued": {"S": Status.QUEUED}, ":pending": {"S": Status.PENDING}, ":at": {"S": at},
                    ":h": queued,
                },
            )
            # The condition held, so the stored item is exactly this: no need to read it back.
            item = {k: v for k, v in item.items() if k != "error"}
            item.update(status=Status.QUEUED, updatedAt=at, history=[*item["history"], entry])
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # The workflow already moved it forward (never backwards): that is success,
            # and the 'queued' entry (with its MessageId) still belongs on the history.
            got = self.ddb.update_item(
                TableName=self.table, Key={"taskID": {"S": task_id}},
                UpdateExpression="SET #h = list_append(#h, :h)", ConditionExpression="attribute_exists(taskID)",
                ExpressionAttributeNames={"#h": "history"},
                ExpressionAttributeValues={":h": queued}, ReturnValues="ALL_NEW")
            item = from_item(got["Attributes"])
        logger.append_keys(taskID=task_id, taskStatus=item["status"])  # on the request's access line
        return 202, item

    def list(self, status: str | None, limit: int, next_token: str | None) -> dict:
        kwargs: dict = {"TableName": self.table, "Limit": limit}
        if next_token:
            kwargs["ExclusiveStartKey"] = decode_token(next_token)
        try:
            if status:
                kwargs.update(IndexName=self.status_index, KeyConditionExpression="#s = :s",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":s": {"S": status}}, ScanIndexForward=False)
                page = self.ddb.query(**kwargs)
            else:
                page = self.ddb.scan(**kwargs)
        except ClientError as err:
            # A token from another listing (say, a scan token used with ?status=) fails key validation.
            if next_token and err.response["Error"]["Code"] == "ValidationException":
                raise ApiError(400, "INVALID_TOKEN", "'nextToken' does not belong to this listing") from None
            raise
        out = {"items": [public_view(from_item(i)) for i in page.get("Items", [])]}
        if page.get("LastEvaluatedKey"):
            out["nextToken"] = encode_token(page["LastEvaluatedKey"])
        return out


def encode_token(key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


KEY_ATTRIBUTES = frozenset({"taskID", "status", "createdAt"})


def decode_token(token: str) -> dict:
    """A LastEvaluatedKey we encoded: only key attributes, each a plain string value.
    Decoded under the body's limits: a token is client input too."""
    try:
        key = parse_json_body(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeEncodeError):  # ValidationError and binascii.Error are ValueErrors
        key = None
    if not (isinstance(key, dict) and "taskID" in key and set(key) <= KEY_ATTRIBUTES
            and all(isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) for v in key.values())):
        raise ApiError(400, "INVALID_TOKEN", "'nextToken' is not a token this API returned")
    return key


_service: TaskService | None = None


def service() -> TaskService:
    """Built on first use (and replaceable in tests); reused while warm."""
    global _service
    if _service is None:
        _service = TaskService(boto3.client("dynamodb", config=BOTO_CONFIG), boto3.client("sqs", config=BOTO_CONFIG),
                               TABLE, QUEUE_URL, STATUS_INDEX)
    return _service


def read_json_body() -> object:
    """The body's bytes, checked at the edge (media type, charset, size), then
    parsed under the JSON limits of `parse_json_body` (depth, numbers, strings,
    duplicate names). Every refusal is an ApiError or a ValidationError: a 4xx."""
    event = router.current_event
    content_type = (event.headers or {}).get("content-type", "")
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    if content_type and "json" not in media_type:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the task as application/json")
    charset = next((p.split("=", 1)[1].strip('" ') for p in params if p.startswith("charset=")), "utf-8")
    if charset not in {"utf-8", "utf8"}:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"send the task as UTF-8 JSON, not {charset}")
    raw = event.body or ""
    if event.is_base64_encoded:
        if len(raw) > (MAX_BODY_BYTES + 2) // 3 * 4:  # too long before it is even decoded
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is over the limit of {MAX_BODY_BYTES} bytes")
        try:
            data = base64.b64decode(raw, validate=True)
        except ValueError:
            raise ApiError(400, "MALFORMED_BODY", "the body is not valid base64") from None
    else:
        # The event's JSON can carry a lone surrogate ("\ud800") in a text body: encoded as it
        # is, the UTF-8 check refuses it (a strict encode would raise instead).
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    if not data.strip():
        raise ApiError(400, "MALFORMED_JSON", "the body is empty; send a JSON object")
    return parse_json_body(data)


@router.post("/tasks")
def create_task():
    task = TaskInput.parse(read_json_body())
    if not config.intake_open():
        raise ApiError(503, "INTAKE_PAUSED", "the stage is not taking new tasks right now (its 'intake' "
                       "parameter is 'paused'); retry later", retry_after=30)
    status, item = service().create(task)
    return json_response(status, public_view(item), headers={"Location": f"tasks/{item['taskID']}"})


@router.get("/tasks/<task_id>")
def get_task(task_id: str):
    if not TASK_ID_PATTERN.fullmatch(task_id):
        raise ApiError(400, "INVALID_TASK_ID", "'taskID' has characters or a length the API never accepts")
    item = service().get(task_id)
    if item is None:
        raise ApiError(404, "NOT_FOUND", f"no task '{task_id}'")
    return json_response(200, public_view(item))


@router.get("/tasks")
def list_tasks():
    params = router.current_event.query_string_parameters or {}
    unknown = sorted(set(params) - {"status", "limit", "nextToken"})
    if unknown:
        raise ApiError(400, "UNKNOWN_FIELD", f"unknown query parameter(s): {', '.join(unknown)}")
    status = params.get("status")
    if status is not None:
        # Any ASCII spelling; str.upper() alone would also map "faıled" (dotless i) to FAILED.
        status = status.upper() if status.isascii() else ""
        if status not in Status.__members__:
            raise ApiError(400, "VALIDATION_ERROR", f"'status' must be one of {', '.join(Status)}")
    raw_limit = params.get("limit", "50")
    # Decimal ASCII digits only: int() would also take " 5", "+5", "1_0" and "٥".
    limit = int(raw_limit) if re.fullmatch(r"[0-9]{1,3}", raw_limit) else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "VALIDATION_ERROR", f"'limit' must be an integer from 1 to {MAX_LIMIT}")
    return json_response(200, service().list(status, limit, params.get("nextToken")))


@router.exception_handler(ValidationError)
def on_validation_error(err: ValidationError):
    return error_response(400, err.code, err.message)


@router.exception_handler(ApiError)
def on_api_error(err: ApiError):
    return error_response(err.status, err.code, err.message, err.retry_after)


@router.exception_handler(NotFoundError)
def on_no_route(_err: NotFoundError):
    event = router.current_event
    method = event.http_method.upper()
    for pattern, allowed in DECLARED_PATHS:
        if pattern.fullmatch(event.path):
            if method in allowed:  # the route exists but its parameter has characters the router never matches
                return error_response(400, "INVALID_TASK_ID",
                                      "'taskID' has characters or a length the API never accepts")
            response = error_response(405, "METHOD_NOT_ALLOWED",
                                      f"{event.path} allows {', '.join(allowed)}, not {method}")
            response.headers["Allow"] = ", ".join(allowed)
            return response
    return error_response(404, "NOT_FOUND", "no such route; see the OpenAPI document")


@router.exception_handler(ClientError)
def on_aws_error(err: ClientError):
    # A 5xx only when AWS itself fails; the role's gaps surface here too.
    logger.exception("AWS call failed")
    code = err.response.get("Error", {}).get("Code", "AWSError")
    return error_response(503 if code in THROTTLING_CODES else 500, "BACKEND_ERROR", f"an AWS call failed ({code})")


@router.exception_handler(BotoCoreError)
def on_aws_unreachable(err: BotoCoreError):
    # Timeouts and connection errors: transient, so the client should retry.
    logger.exception("AWS call did not complete")
    return error_response(503, "BACKEND_ERROR", f"an AWS call did not complete ({type(err).__name__}); retry")


@router.exception_handler(Exception)
def on_bug(err: Exception):
    # Last resort: no input should get here (every refusal above is a 4xx), but a
    # bug answers a JSON 500 instead of failing the invocation (a bare 502 from the gateway).
    logger.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", f"the API failed unexpectedly ({type(err).__name__})")


def with_stage_in_path(event: dict) -> dict:
    """HTTP API events only. AWS puts a named stage in rawPath ("/dev/tasks") and
    Powertools strips it; some emulators send "/tasks". Give the router AWS's
    shape either way. (A REST event needs nothing: its `path` is already after
    the stage, on AWS and on the emulators; the stage is only in
    requestContext.path.)"""
    stage = (event.get("requestContext") or {}).get("stage") or "$default"
    raw = event.get("rawPath") or "/"
    if stage != "$default" and raw != f"/{stage}" and not raw.startswith(f"/{stage}/"):
        event = {**event, "rawPath": f"/{stage}{raw}"}
    return event


# One resolver per front door, the same routes and error handlers in each (the
# template's FrontDoor parameter picks the door; the code takes either).
http_app = APIGatewayHttpResolver()
rest_app = APIGatewayRestResolver()
for _resolver in (http_app, rest_app):
    _resolver.include_router(router)


def is_rest_event(event: dict) -> bool:
    """A REST API proxy event (payload 1.0: httpMethod at the top) rather than
    an HTTP API one (version "2.0"). Anything else goes to the HTTP resolver,
    whose failure the handler answers as a JSON 500."""
    return event.get("version") != "2.0" and "httpMethod" in event


def route_of(event: dict) -> str | None:
    """What the access line calls the route: the HTTP API's routeKey, or the
    REST API's method and resource ("GET /tasks/{taskID}")."""
    if event.get("routeKey"):
        return event["routeKey"]
    if event.get("httpMethod"):
        return f"{event['httpMethod']} {event.get('resource', '')}"
    return None


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    config.apply_log_level(logger)
    if event.get("warmup"):
        service()
        logger.info("warm")
        return {"warm": True}
    started = time.perf_counter()
    try:
        if is_rest_event(event):
            response = rest_app.resolve(event, context)
        else:
            response = http_app.resolve(with_stage_in_path(event), context)
    except Exception as err:  # outside the routes (say, an event of a shape the resolver chokes on)
        logger.exception("unhandled error outside a route")
        response = {"statusCode": 500, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"error": "INTERNAL_ERROR",
                                        "message": f"the API failed unexpectedly ({type(err).__name__})"}),
                    "isBase64Encoded": False}
    # One access line per request: what operators grep for, and the emulator
    # returns as soon as a line arrives instead of waiting out its log window.
    path_id = (event.get("pathParameters") or {}).get("taskID")
    logger.info("request", extra={
        "route": route_of(event), "status": response.get("statusCode"),
        "ms": round((time.perf_counter() - started) * 1000, 1), **({"taskID": path_id} if path_id else {})})
    return response
