"""taskcore.model: the create contract every Lambda shares."""

from __future__ import annotations

import pytest
from taskcore.model import (
    MAX_TITLE,
    TASK_ID_PATTERN,
    Priority,
    Status,
    TaskInput,
    ValidationError,
    public_view,
)

pytestmark = pytest.mark.unit


def parse_error(body: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        TaskInput.parse(body)
    return caught.value


def test_seed_body_gets_defaults():
    # GIVEN the smallest body a client sends: only the taskID
    body = {"taskID": "task-173"}

    # WHEN it is parsed
    task = TaskInput.parse(body)

    # THEN the title falls back to the taskID and the priority to MEDIUM,
    # and the ID is the client's (so a retry of the POST is a replay)
    assert task == TaskInput("task-173", "task-173", None, Priority.MEDIUM, None, generated_id=False)


def test_missing_task_id_is_generated_in_the_accepted_alphabet():
    # GIVEN a body without a taskID
    # WHEN it is parsed twice
    first, second = TaskInput.parse({"title": "Write report"}), TaskInput.parse({"title": "Write report"})

    # THEN each gets its own ID that the API would itself accept on GET
    assert first.generated_id and second.generated_id
    assert TASK_ID_PATTERN.fullmatch(first.taskID)
    assert first.taskID.startswith("task-")
    assert first.taskID != second.taskID


def test_full_body_is_normalised():
    # GIVEN every client field, with loose spelling a human would type
    body = {"taskID": "T_1", "title": "  Ship it  ", "description": " soon ", "priority": "high",
            "dueDate": "2026-12-31"}

    # WHEN it is parsed
    task = TaskInput.parse(body)

    # THEN text is trimmed and the priority canonical, so equal intents hash equally
    assert (task.title, task.description, task.priority, task.dueDate) == ("Ship it", "soon", Priority.HIGH,
                                                                          "2026-12-31")


@pytest.mark.parametrize("task_id", [
    "",  # empty
    "a" * 65,  # one over the 64 a DynamoDB key / execution name may carry here
    "-starts-with-dash",
    "_starts-with-underscore",
    "has space",
    "has/slash",
    "tab\tinside",
    123,  # not a string at all
])
def test_invalid_task_ids_are_rejected(task_id):
    # GIVEN a taskID outside the alphabet shared by the API, the queue and Step Functions
    # WHEN it is parsed
    err = parse_error({"taskID": task_id})

    # THEN the client gets the specific code, not a generic validation error
    assert err.code == "INVALID_TASK_ID"


def test_longest_task_id_is_accepted():
    # GIVEN exactly 64 characters, the boundary
    task = TaskInput.parse({"taskID": "a" * 64})

    # THEN it is kept as sent
    assert task.taskID == "a" * 64


def test_unknown_field_is_rejected_and_named():
    # GIVEN a typo'd field ("priorty"), which silently dropping would hide
    err = parse_error({"taskID": "t1", "priorty": "HIGH"})

    # THEN it is refused with its name and the allowed list in the message
    assert err.code == "UNKNOWN_FIELD"
    assert "priorty" in err.message and "priority" in err.message


@pytest.mark.parametrize("body", [["taskID", "t1"], "t1", 42, None])
def test_non_object_body_is_rejected(body):
    err = parse_error(body)

    assert err.code == "VALIDATION_ERROR"
    assert "JSON object" in err.message


@pytest.mark.parametrize("priority", ["CRITICAL", "", 3, None])
def test_bad_priority_is_rejected(priority):
    # None is an explicit null: it is not the same as leaving the field out
    err = parse_error({"taskID": "t1", "priority": priority})

    assert err.code == "VALIDATION_ERROR"
    assert "'priority'" in err.message


@pytest.mark.parametrize("due", ["2026-02-30", "31/12/2026", "tomorrow", 20261231])
def test_bad_due_date_is_rejected(due):
    err = parse_error({"taskID": "t1", "dueDate": due})

    assert err.code == "VALIDATION_ERROR"
    assert "'dueDate'" in err.message


def test_title_over_the_limit_is_rejected_at_the_limit_accepted():
    assert TaskInput.parse({"taskID": "t1", "title": "x" * MAX_TITLE}).title == "x" * MAX_TITLE

    err = parse_error({"taskID": "t1", "title": "x" * (MAX_TITLE + 1)})

    assert err.code == "VALIDATION_ERROR"
    assert "'title'" in err.message


def test_fingerprint_is_stable_for_a_replay_and_changes_with_the_body():
    # GIVEN the same request twice, and the same taskID with a different body
    body = {"taskID": "t1", "title": "A", "priority": "LOW", "dueDate": "2026-01-02"}
    replay = dict(body)
    changed = {**body, "priority": "HIGH"}

    # WHEN fingerprinted
    original = TaskInput.parse(body).fingerprint()

    # THEN a replay matches (→ 202) and a changed body does not (→ 409)
    assert TaskInput.parse(replay).fingerprint() == original
    assert TaskInput.parse(changed).fingerprint() != original
    assert TaskInput.parse({**body, "description": "more"}).fingerprint() != original
    # The same intent spelled differently is still the same request
    assert TaskInput.parse({**body, "priority": "low", "title": " A "}).fingerprint() == original
    assert len(original) == 64 and int(original, 16) >= 0


def test_new_item_is_pending_with_a_created_entry_and_no_absent_fields():
    # GIVEN a parsed seed body
    task = TaskInput.parse({"taskID": "t1"})

    # WHEN it becomes a table item
    item = task.new_item("2026-03-10T12:00:00.000Z")

    # THEN it waits for its event (PENDING) and carries the replay fingerprint;
    # optional fields the client left out are not stored as nulls
    assert item["status"] == Status.PENDING
    assert item["requestHash"] == task.fingerprint()
    assert item["history"] == [{"step": "created", "outcome": "ok", "at": "2026-03-10T12:00:00.000Z"}]
    assert "description" not in item and "dueDate" not in item


def test_public_view_hides_server_bookkeeping():
    item = TaskInput.parse({"taskID": "t1"}).new_item("2026-03-10T12:00:00.000Z")

    view = public_view(item)

    assert "requestHash" not in view
    assert view["taskID"] == "t1" and view["status"] == "PENDING"
