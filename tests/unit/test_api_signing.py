"""tmctl's HTTP client against an AWS_IAM front door: every request SigV4-signed
for execute-api, the signature checked here against the algorithm as AWS
documents it (not against botocore itself), and the signing chosen from the
stack's ApiAuth output."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import json
import re
import urllib.error
import urllib.parse
from types import SimpleNamespace

import pytest
from botocore.credentials import Credentials

from tmctl.core import api as api_mod
from tmctl.core.api import SigV4, TaskApi, ok, task_api
from tmctl.core.errors import ApiError, UsageError
from tmctl.core.stack import StackInfo

pytestmark = pytest.mark.unit

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example"
REGION = "eu-west-1"
BASE = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
NOW = datetime.datetime(2026, 11, 27, 12, 30, 45, tzinfo=datetime.UTC)
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 "
                     r"Credential=(?P<key>[^/]+)/(?P<scope>\d{8}/[a-z0-9-]+/execute-api/aws4_request), "
                     r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$")


class FakeResponse(io.BytesIO):
    def __init__(self, status: int, body: dict):
        super().__init__(json.dumps(body).encode())
        self.status = status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def sent(monkeypatch):
    """The requests TaskApi sends (urlopen replaced: unit tests have no sockets);
    each answers 201 unless the test queues other answers."""
    requests, answers = [], []

    def urlopen(req, timeout):
        requests.append(req)
        answer = answers.pop(0) if answers else FakeResponse(201, {"taskID": "t-1", "status": "QUEUED"})
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(api_mod.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW)
    return SimpleNamespace(requests=requests, answers=answers)


def headers_of(req) -> dict[str, str]:
    return {k.lower(): v for k, v in req.header_items()}


def expected_signature(req, signed: list[str], secret: str, region: str) -> str:
    """SigV4 as AWS documents it (create-signed-request.html), from what was sent."""
    url = urllib.parse.urlsplit(req.full_url)
    headers = headers_of(req)
    headers.setdefault("host", url.netloc)
    # execute-api: each path segment URI-encoded twice (every service but S3)
    path = "/".join(urllib.parse.quote(urllib.parse.quote(seg, safe="-_.~"), safe="-_.~")
                    for seg in url.path.split("/"))
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                     for k, v in sorted(urllib.parse.parse_qsl(url.query, keep_blank_values=True)))
    canonical = "\n".join([
        req.get_method(), path, query,
        "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed),
        ";".join(signed),
        hashlib.sha256(req.data or b"").hexdigest(),
    ])
    amz_date = headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/execute-api/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signed_api(token: str | None = None) -> TaskApi:
    return TaskApi(BASE, signer=SigV4(Credentials(KEY, SECRET, token), REGION), max_attempts=3, backoff=0)


def test_a_signed_create_carries_a_valid_sigv4_authorization_header(sent):
    # GIVEN a client for an AWS_IAM stage
    api = signed_api()

    # WHEN it creates a task
    resp = api.create({"taskID": "task-173", "title": "signed"})

    # THEN the request carries a SigV4 signature for execute-api in the stage's region, over the
    # method, path, body and the headers that matter, and it verifies against the documented algorithm
    assert resp.status == 201
    (req,) = sent.requests
    headers = headers_of(req)
    match = AUTH_RE.match(headers["authorization"])
    assert match, headers["authorization"]
    assert match["key"] == KEY
    assert match["scope"] == f"20261127/{REGION}/execute-api/aws4_request"
    assert headers["x-amz-date"] == "20261127T123045Z"
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed) and signed == sorted(signed)
    assert match["sig"] == expected_signature(req, signed, SECRET, REGION)
    assert "x-amz-security-token" not in headers  # long-term keys carry no token


def test_a_query_string_is_signed_in_canonical_order(sent):
    signed_api().list(status="QUEUED", limit=5, next_token="a b/c")

    (req,) = sent.requests
    match = AUTH_RE.match(headers_of(req)["authorization"])
    assert match["sig"] == expected_signature(req, match["signed"].split(";"), SECRET, REGION)


def test_temporary_credentials_send_and_sign_their_session_token(sent):
    signed_api(token=TOKEN).get("task-173")

    (req,) = sent.requests
    headers = headers_of(req)
    match = AUTH_RE.match(headers["authorization"])
    assert headers["x-amz-security-token"] == TOKEN
    assert "x-amz-security-token" in match["signed"].split(";")
    assert match["sig"] == expected_signature(req, match["signed"].split(";"), SECRET, REGION)


def test_a_retry_is_signed_again_with_a_fresh_date(sent, monkeypatch):
    # GIVEN a first answer of 503 (retried) and a clock that moves between attempts
    sent.answers.append(urllib.error.HTTPError(BASE + "/tasks", 503, "busy", {}, io.BytesIO(b"{}")))
    times = iter([NOW, NOW + datetime.timedelta(seconds=7)])
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: next(times))

    resp = signed_api().create({"taskID": "task-173"})

    # THEN each attempt has its own date and a signature valid for it
    assert resp.status == 201 and resp.attempts == 2
    dates = [headers_of(r)["x-amz-date"] for r in sent.requests]
    assert dates == ["20261127T123045Z", "20261127T123052Z"]
    for req in sent.requests:
        match = AUTH_RE.match(headers_of(req)["authorization"])
        assert match["sig"] == expected_signature(req, match["signed"].split(";"), SECRET, REGION)


def test_an_unsigned_client_sends_no_authorization(sent):
    TaskApi(BASE).create({"taskID": "task-173"})

    (req,) = sent.requests
    assert "authorization" not in headers_of(req)


def stack(outputs: dict[str, str]) -> StackInfo:
    return StackInfo("taskmanager-prod", "CREATE_COMPLETE", outputs, {}, BASE)


class FakeSession:
    def __init__(self, credentials):
        self.region_name = REGION
        self._credentials = credentials

    def get_credentials(self):
        return self._credentials


def test_an_iam_stack_gets_a_client_signing_with_the_sessions_credentials_and_region():
    api = task_api(stack({"ApiAuth": "AWS_IAM"}), FakeSession(Credentials(KEY, SECRET)))

    assert api.signer is not None and api.signer.region == REGION and api.signer.service == "execute-api"
    assert api.base_url == BASE


@pytest.mark.parametrize("outputs", [{"ApiAuth": "NONE"}, {"ApiAuth": "JWT"}, {}])
def test_other_stacks_get_a_plain_client(outputs):
    # {}: a stack deployed before the ApiAuth output existed was open
    assert task_api(stack(outputs), FakeSession(Credentials(KEY, SECRET))).signer is None


def test_an_iam_stack_without_credentials_is_a_usage_error_with_the_fix():
    with pytest.raises(UsageError) as err:
        task_api(stack({"ApiAuth": "AWS_IAM"}), FakeSession(None))

    assert "AWS_IAM" in err.value.message and "credentials" in err.value.fix


def test_a_gateway_refusal_says_what_the_front_door_wants():
    with pytest.raises(ApiError) as err:
        ok(api_mod.Response(403, {"message": "Forbidden"}, 1))

    assert err.value.status == 403 and "execute-api:Invoke" in err.value.fix
