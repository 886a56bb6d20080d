"""taskcore.model's limits on a request body, before and while its fields are
read: nesting, size of numbers, encodings, strings, duplicate names, and the
type of every field (null included). The handler's side (413, 415, the HTTP
answer) is in test_task_api.py."""

from __future__ import annotations

import codecs
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from taskcore import model
from taskcore.model import (
    MAX_DESCRIPTION,
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_TITLE,
    Priority,
    TaskInput,
    ValidationError,
    json_depth,
    parse_json_body,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def body_error(data: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_json_body(data)
    return caught.value


def field_error(body: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        TaskInput.parse(body)
    return caught.value


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize(("text", "depth"), [
    ("{}", 1),
    ('{"taskID": "t1"}', 1),
    ("[[], {}]", 2),
    ('{"a": [{"b": []}]}', 4),
    ('"[[[["', 0),  # brackets inside a string are text
    ('["a\\"[[[", {}]', 2),  # an escaped quote does not end the string
    ('["a\\\\", [[]]]', 3),  # an escaped backslash does, and what follows counts
    ("17", 0),
    ("", 0),
])
def test_json_depth_counts_containers_outside_strings(text, depth):
    assert json_depth(text) == depth


@pytest.mark.parametrize("text", [
    '"' + '\\"' * 8000,  # one unterminated string of escaped quotes
    '"[' * 8000,  # many short strings, each followed by a bracket
    "[" * 16000,
    '["' + "\\" * 16000,
])
def test_json_depth_is_linear_on_hostile_text(text):
    # A scan that restarted at every quote would be quadratic on these (about a
    # second at 16 KiB); one linear pass takes a millisecond or two.
    started = time.perf_counter()
    json_depth(text)
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize("data", [
    b"[" * 8000 + b"]" * 8000,  # within 16 KiB, and far past the parser's recursion limit
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"[" * 100_000,  # unbalanced: still refused for its depth, not parsed
    b'{"taskID": "t1", "title": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}",
])
def test_deep_nesting_is_refused_before_parsing(data):
    err = body_error(data)

    assert err.code == "LIMIT_EXCEEDED"
    assert str(MAX_JSON_DEPTH) in err.message


def test_nesting_at_the_limit_parses():
    data = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH

    assert json_depth(data.decode()) == MAX_JSON_DEPTH
    assert isinstance(parse_json_body(data), list)


def test_a_recursion_error_is_still_a_4xx(monkeypatch):
    # GIVEN the depth scan were wrong (say, a parser that recurses on something else)
    monkeypatch.setattr(model, "json_depth", lambda _text: 0)

    # WHEN a deep body reaches the parser
    err = body_error(b"[" * 8000 + b"]" * 8000)

    # THEN it is still a client error, not a crash
    assert err.code == "LIMIT_EXCEEDED"


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(("data", "code"), [
    (b'{"title": 1e400}', "LIMIT_EXCEEDED"),  # a float would be inf
    (b'{"title": -1e400}', "LIMIT_EXCEEDED"),
    (b'{"title": ' + b"9" * 5000 + b"}", "LIMIT_EXCEEDED"),  # past Python's 4300-digit int conversion limit
    (b'{"title": ' + b"9" * (MAX_NUMBER_CHARS + 1) + b"}", "LIMIT_EXCEEDED"),
    (b'{"title": 0.' + b"1" * MAX_NUMBER_CHARS + b"}", "LIMIT_EXCEEDED"),
    (b'{"title": NaN}', "MALFORMED_JSON"),  # Python's json accepts these; JSON does not
    (b'{"title": Infinity}', "MALFORMED_JSON"),
    (b'{"title": -Infinity}', "MALFORMED_JSON"),
])
def test_numbers_beyond_a_double_or_not_json_are_refused(data, code):
    err = body_error(data)

    assert err.code == code


def test_an_ordinary_number_parses_and_is_then_the_wrong_type():
    value = parse_json_body(b'{"title": ' + b"9" * MAX_NUMBER_CHARS + b"}")

    assert field_error(value).message == "'title' must be a string"


# ------------------------------------------------------------------ encodings and strings


@pytest.mark.parametrize("data", [
    codecs.BOM_UTF8 + b'{"taskID": "t1"}',
    '{"taskID": "t1"}'.encode("utf-16"),  # with its BOM
    '{"taskID": "t1"}'.encode("utf-16-le"),  # without: NUL bytes
    '{"taskID": "t1"}'.encode("utf-32-be"),
    '{"title": "café"}'.encode("latin-1"),
    b'{"title": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8): not UTF-8
    b'{"title": "\xc0\xaf"}',  # overlong
    b'{"title": "a\x00b"}',  # a raw NUL is never JSON text
    b'{"title": "\\ud800"}',  # an escape for a lone high surrogate
    b'{"title": "\\udc00x"}',  # a lone low one
    b'{"\\ud800": "t1"}',  # in a name too
    b'{"title": ["ok", ["\\ud83d"]]}',  # at any depth
])
def test_bodies_that_are_not_utf8_or_not_unicode_are_malformed(data):
    err = body_error(data)

    assert err.code == "MALFORMED_JSON"


def test_an_escaped_surrogate_pair_is_one_character():
    assert parse_json_body(b'{"title": "\\ud83d\\ude00"}') == {"title": "\U0001f600"}


@pytest.mark.parametrize("data", [b"{not json", b'{"a": 1,}', b"{'a': 1}", b'{"a": "\n"}', b"[1] [2]"])
def test_syntax_errors_are_malformed_json(data):
    assert body_error(data).code == "MALFORMED_JSON"


# ------------------------------------------------------------------ duplicate names


@pytest.mark.parametrize("data", [
    b'{"taskID": "t1", "taskID": "t2"}',
    b'{"title": "a", "title": "a"}',  # even with the same value
    b'{"title": [{"x": 1, "x": 2}]}',  # and inside a value
])
def test_a_name_twice_in_one_object_is_refused(data):
    # Which value wins differs between parsers: a proxy and the API could see different tasks.
    err = body_error(data)

    assert err.code == "DUPLICATE_FIELD"


def test_the_same_name_in_different_objects_is_fine():
    assert parse_json_body(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


# ------------------------------------------------------------------ fields: types, null, content


@pytest.mark.parametrize("field", ["title", "description", "priority", "dueDate"])
def test_null_is_refused_for_every_field(field):
    # No field is nullable in the document: null is not "leave it out"
    err = field_error({"taskID": "t1", field: None})

    assert err.code == "VALIDATION_ERROR"
    assert f"'{field}'" in err.message and "null" in err.message


def test_null_task_id_is_refused_not_generated():
    err = field_error({"taskID": None})

    assert err.code == "INVALID_TASK_ID"


@pytest.mark.parametrize(("field", "value"), [
    ("title", 42), ("title", ["a"]), ("title", {"a": "b"}), ("title", True),
    ("description", 1.5), ("description", False),
    ("priority", 1), ("priority", ["HIGH"]),
    ("dueDate", 20261231), ("dueDate", {"y": 2026}),
])
def test_wrong_types_are_refused(field, value):
    err = field_error({"taskID": "t1", field: value})

    assert err.code == "VALIDATION_ERROR"
    assert f"'{field}'" in err.message


@pytest.mark.parametrize("task_id", [True, 1.0, ["t1"], {"id": "t1"}])
def test_wrong_task_id_types_are_refused(task_id):
    assert field_error({"taskID": task_id}).code == "INVALID_TASK_ID"


@pytest.mark.parametrize(("field", "value"), [
    ("title", "a\x00b"),
    ("title", "line\nbreak"),
    ("title", "tab\there"),
    ("title", "\x7f"),
    ("title", "c1 \x85 control"),
    ("description", "nul \x00 inside"),
    ("description", "bell \x07"),
    ("description", "escape \x1b[31m"),
])
def test_control_characters_are_refused(field, value):
    err = field_error({"taskID": "t1", field: value})

    assert err.code == "VALIDATION_ERROR"
    assert "control characters" in err.message


def test_a_description_keeps_its_tabs_and_line_breaks():
    task = TaskInput.parse({"taskID": "t1", "description": "first\tline\r\nsecond line"})

    assert task.description == "first\tline\r\nsecond line"


def test_length_is_checked_as_sent_before_trimming():
    # The document's maxLength is of the string sent; trimming must not let a longer one in.
    assert TaskInput.parse({"taskID": "t1", "title": " " + "x" * (MAX_TITLE - 1)}).title == "x" * (MAX_TITLE - 1)
    assert field_error({"taskID": "t1", "title": "x" * MAX_TITLE + " "}).code == "VALIDATION_ERROR"
    assert field_error({"taskID": "t1", "description": "d" * MAX_DESCRIPTION + "\n"}).code == "VALIDATION_ERROR"


@pytest.mark.parametrize(("priority", "want"), [("high", Priority.HIGH), ("Urgent", Priority.URGENT),
                                                 ("LOW", Priority.LOW)])
def test_priority_in_any_ascii_case_is_accepted(priority, want):
    assert TaskInput.parse({"taskID": "t1", "priority": priority}).priority == want


@pytest.mark.parametrize("priority", ["h\u0131gh", " HIGH", "HIGH ", "ＨＩＧＨ"])
def test_priority_that_only_unicode_folding_would_match_is_refused(priority):
    # "hıgh".upper() == "HIGH" (dotless i): the document's pattern is ASCII letters only
    assert field_error({"taskID": "t1", "priority": priority}).code == "VALIDATION_ERROR"


@pytest.mark.parametrize("due", ["20261231", "2026-W01-1", " 2026-12-31", "2026-12-31\n", "2026-12-31T00:00",
                                 "٢٠٢٦-١٢-٣١"])
def test_due_date_must_be_a_plain_full_date(due):
    # Python 3.11's date.fromisoformat takes more than the document's format: date (YYYY-MM-DD)
    assert field_error({"taskID": "t1", "dueDate": due}).code == "VALIDATION_ERROR"


def test_a_body_within_every_limit_is_the_task():
    body = {"taskID": "t_1", "title": "Ship it ✓", "description": "tabs\tand\nlines #tag",
            "priority": "urgent", "dueDate": "2026-12-31"}

    task = TaskInput.parse(parse_json_body(json.dumps(body).encode()))

    assert (task.taskID, task.title, task.priority, task.dueDate) == ("t_1", "Ship it ✓", Priority.URGENT,
                                                                       "2026-12-31")


# ------------------------------------------------------------------ the OpenAPI document says the same


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load((ROOT / "cloudformation" / "openapi.yaml").read_text())


def task_input_validator(openapi: dict) -> Draft202012Validator:
    schema = {**openapi["components"]["schemas"]["TaskInput"], "components": openapi["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("body", [
    {}, {"taskID": "t1"}, {"taskID": "a" * 64}, {"title": ""}, {"title": "x" * MAX_TITLE},
    {"title": " padded "}, {"description": "tabs\tand\nlines\r\n"}, {"priority": "high"}, {"priority": "uRgEnT"},
    {"dueDate": "2026-12-31"}, {"title": "ünïcødé ✓ \U0001f600"},
    # and what either side refuses
    {"taskID": None}, {"taskID": ""}, {"taskID": "-lead"}, {"taskID": "a" * 65}, {"taskID": 7},
    {"title": None}, {"title": 42}, {"title": "x" * (MAX_TITLE + 1)}, {"title": "a\x00b"}, {"title": "a\nb"},
    {"title": "\x85"}, {"description": None}, {"description": "d" * (MAX_DESCRIPTION + 1)},
    {"description": "bell\x07"}, {"priority": None}, {"priority": ""}, {"priority": "h\u0131gh"},
    {"priority": "SOMEDAY"}, {"priority": 3}, {"dueDate": None}, {"dueDate": "20261231"},
    {"dueDate": "2026-02-30"}, {"dueDate": " 2026-12-31"}, {"dueDate": "2026-12-31T00:00:00Z"},
    {"owner": "me"}, {"taskID": "t1", "extra": None},
])
def test_the_document_accepts_exactly_what_the_api_accepts(openapi, body):
    # The contract fuzzing (tests/integration/test_contract_fuzz.py) holds the live API
    # to the document; this holds the model to it, fast, on the edge cases.
    document_accepts = not list(task_input_validator(openapi).iter_errors(body))
    try:
        TaskInput.parse(body)
        api_accepts = True
    except ValidationError:
        api_accepts = False

    assert api_accepts == document_accepts


def test_every_error_code_the_api_can_answer_is_in_the_document(openapi):
    # Codes are literals at the raise sites: ValidationError("X", ...), ApiError(4xx, "X", ...), error_response(...)
    sources = (ROOT / "lambdas" / "task_api" / "app.py").read_text() + \
        (ROOT / "lambdas" / "common" / "taskcore" / "model.py").read_text()
    raised = set(re.findall(r'(?:ValidationError\(|ApiError\(\d{3}, |error_response\(\d{3}, )\s*"([A-Z_]+)"', sources))
    raised |= set(re.findall(r'"error": "([A-Z_]+)"', sources))

    assert {"LIMIT_EXCEEDED", "DUPLICATE_FIELD", "METHOD_NOT_ALLOWED", "INTERNAL_ERROR"} <= raised
    assert raised <= set(openapi["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
