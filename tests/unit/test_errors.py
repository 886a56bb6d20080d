"""tmctl.core.errors: botocore errors become domain errors by code, never by
message text, each with the exit code the CLI returns."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from tmctl.core import api
from tmctl.core.errors import BackendUnreachable, ExitCode, NotFound, TmctlError, from_client_error

pytestmark = pytest.mark.unit


def client_error(code: str, message: str = "boom", operation: str = "DescribeStacks") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize("code", [
    "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "ParameterNotFound",
    "StateMachineDoesNotExist", "NoSuchBucket",
])
def test_not_found_codes_map_to_not_found_exit_3(code):
    err = from_client_error(client_error(code), "table taskmanager-dev-tasks")

    assert type(err) is NotFound
    assert err.exit_code == ExitCode.NOT_FOUND == 3
    assert code in err.message and "table taskmanager-dev-tasks" in err.message
    assert err.fix  # tells the user what to run


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "ExpiredToken", "AccessDeniedException"])
def test_auth_codes_are_errors_with_a_credentials_fix(code):
    err = from_client_error(client_error(code), "stack taskmanager-dev")

    assert type(err) is TmctlError
    assert err.exit_code == ExitCode.ERROR == 1
    assert code in err.message
    assert "credentials" in err.fix and "--local" in err.fix


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://localhost:4566"),
    ConnectTimeoutError(endpoint_url="http://localhost:4566"),
])
def test_unreachable_endpoint_maps_to_exit_4(exc):
    err = from_client_error(exc, "stack taskmanager-dev")

    assert type(err) is BackendUnreachable
    assert err.exit_code == ExitCode.UNREACHABLE == 4
    assert "tmctl local start" in err.fix


def test_classification_uses_the_code_not_the_message():
    # A message that *says* "not found" under another code is not a NotFound.
    err = from_client_error(client_error("ValidationError", "Stack with id x does not exist / not found"), "stack")

    assert type(err) is TmctlError
    assert err.exit_code == ExitCode.ERROR
    assert "ValidationError" in err.message


def test_str_carries_the_fix():
    err = NotFound("queue: not found", "run `tmctl up` first")

    assert str(err) == "queue: not found (fix: run `tmctl up` first)"


@pytest.mark.parametrize(("status", "exit_code"), [(404, ExitCode.NOT_FOUND), (409, ExitCode.USAGE),
                                                   (400, ExitCode.USAGE), (503, ExitCode.ERROR)])
def test_api_error_bodies_become_domain_errors(status, exit_code):
    resp = api.Response(status, {"error": "CODE_X", "message": "why"}, attempts=1)

    with pytest.raises(TmctlError) as caught:
        api.ok(resp)

    assert caught.value.exit_code == exit_code
    assert caught.value.code == "CODE_X"
    assert "CODE_X" in caught.value.message and "why" in caught.value.message


def test_api_ok_returns_the_body_of_a_2xx():
    assert api.ok(api.Response(202, {"taskID": "t1"}, attempts=2)) == {"taskID": "t1"}


def test_error_code_reads_a_client_errors_code_and_nothing_else():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from tmctl.core.errors import error_code, http_status

    err = ClientError({"Error": {"Code": "QueueDoesNotExist", "Message": "x"},
                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetQueueUrl")
    assert error_code(err) == "QueueDoesNotExist" and http_status(err) == 400
    assert error_code(EndpointConnectionError(endpoint_url="http://x")) == ""
    assert error_code(ValueError("Code")) == "" and http_status(ValueError()) is None
    assert error_code(ClientError({}, "X")) == ""  # botocore fills in no code: still a string
