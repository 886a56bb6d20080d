"""The console's state machine drawing: layout of the real definition, the path
read from recorded histories (AWS's and MiniStack's shapes), and the SVG."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import xml.etree.ElementTree as ET
from itertools import combinations

import pytest

from tests.unit.conftest import ASL_PATH, EVENTS_DIR
from tmctl.console.graph import (
    DATA_LIMIT,
    END,
    START,
    Layout,
    Node,
    StateRun,
    layout,
    path_from_history,
    render_svg,
)

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
T0 = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
FN = "arn:aws:lambda:eu-west-1:123456789012:function:taskmanager-dev-workflow-steps"


def definition() -> dict:
    return json.loads(ASL_PATH.read_text())


def recorded(name: str) -> list[dict]:
    return json.loads((EVENTS_DIR / f"sfn_history_{name}.json").read_text())["events"]


def declared_edges(states: dict) -> set[tuple[str, str, str]]:
    """(source, target, kind) for every transition the ASL names, read independently of the module."""
    out = set()
    for name, s in states.items():
        out |= {(name, c["Next"], "choice") for c in s.get("Choices", [])}
        out |= {(name, c["Next"], "catch") for c in s.get("Catch", [])}
        out |= {(name, s[k], k.lower()) for k in ("Next", "Default") if k in s}
    return out


def overlapping(nodes: list[Node]) -> list[tuple[str, str]]:
    return [(a.key, b.key) for a, b in combinations(nodes, 2)
            if a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height]


def inside(inner: Node, outer: Node) -> bool:
    return (outer.x <= inner.x and inner.x + inner.width <= outer.x + outer.width
            and outer.y <= inner.y and inner.y + inner.height <= outer.y + outer.height)


def history(steps: list[tuple[str, str, list[str]]], end: str | None = "ExecutionSucceeded",
            data: str = '{"taskID": "t-1"}') -> list[dict]:
    """GetExecutionHistory events in AWS's shape. Each step is (name, ASL type, calls): a call is
    "ok", an error name (that attempt fails), or "..." (still running); a Fail state never exits."""
    events: list[dict] = []
    clock = [0]

    def add(kind: str, ms: int, **details) -> None:
        clock[0] += ms
        events.append({"id": len(events) + 1, "previousEventId": len(events), "type": kind,
                       "timestamp": T0 + dt.timedelta(milliseconds=clock[0]), **details})

    add("ExecutionStarted", 0, executionStartedEventDetails={"input": data})
    for name, asl_type, calls in steps:
        add(f"{asl_type}StateEntered", 5, stateEnteredEventDetails={"name": name, "input": data})
        for call in calls:
            add("LambdaFunctionScheduled", 1, lambdaFunctionScheduledEventDetails={"resource": FN, "input": data})
            add("LambdaFunctionStarted", 2)
            if call == "ok":
                add("LambdaFunctionSucceeded", 40, lambdaFunctionSucceededEventDetails={"output": data})
            elif call != "...":
                add("LambdaFunctionFailed", 40, lambdaFunctionFailedEventDetails={"error": call, "cause": "boom"})
        if asl_type != "Fail" and "..." not in calls:
            add(f"{asl_type}StateExited", 1, stateExitedEventDetails={"name": name, "output": data})
    if end == "ExecutionFailed":
        add(end, 1, executionFailedEventDetails={"error": "Boom", "cause": "boom"})
    elif end:
        add(end, 1, executionSucceededEventDetails={"output": data})
    return events


COMPLETED = [("MarkProcessing", "Task", ["ok"]), ("RunSteps", "Task", ["Lambda.ServiceException", "ok"]),
             ("Outcome", "Choice", []), ("MarkCompleted", "Task", ["ok"])]


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def states_in(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-state"): g for g in root.iter(f"{SVG}g") if g.get("data-outcome") is not None}


# ------------------------------------------------------------------ layout


def test_the_layout_of_the_repo_machine_has_every_state_and_the_start_and_end():
    asl = definition()
    lay = layout(asl)

    assert {n.key for n in lay.nodes} == set(asl["States"]) | {START, END}
    assert len(lay.nodes) == len(asl["States"]) + 2
    assert {n.key: n.type for n in lay.nodes if n.kind == "state"} == {k: s["Type"] for k, s in asl["States"].items()}


def test_every_next_default_choice_and_catch_is_an_edge_and_catches_carry_their_errors():
    asl = definition()
    lay = layout(asl)
    drawn = {(e.source, e.target, e.kind) for e in lay.edges}
    ends = {(e.source, e.target) for e in lay.edges if e.kind == "end"}
    catch = next(e for e in lay.edges if (e.source, e.target, e.kind) == ("MarkProcessing", "Resume", "catch"))

    assert drawn - {(s, t, k) for s, t, k in drawn if k in ("start", "end")} == declared_edges(asl["States"])
    assert (START, "MarkProcessing", "start") in drawn
    assert ends == {("MarkCompleted", END), ("TaskFailed", END), ("NothingToDo", END)}
    assert catch.label == "DynamoDB.ConditionalCheckFailedException" and catch.label_at is not None
    # Next and Catch from one state to one target are two edges, each with its own port
    both = [e for e in lay.edges if (e.source, e.target) == ("MarkRejected", "TaskFailed")]
    assert sorted(e.kind for e in both) == ["catch", "next"] and both[0].points[0] != both[1].points[0]


def test_no_two_boxes_overlap_and_every_edge_runs_down_from_a_box_to_a_box():
    lay = layout(definition())
    nodes = list(lay.nodes)
    downward = [e for e in lay.edges if not e.back]

    assert len(nodes) == 14 and overlapping(nodes) == []
    assert len(downward) == len(lay.edges)  # no cycle in the repo's machine
    assert [e.source for e in downward if e.points[-1][1] <= e.points[0][1]] == []
    # each edge leaves its source's bottom and enters its target's top
    assert [e.source for e in downward
            if e.points[0][1] != lay.node(e.source).y + lay.node(e.source).height
            or e.points[-1][1] != lay.node(e.target).y] == []
    assert max(n.x + n.width for n in nodes) <= lay.width and max(n.y + n.height for n in nodes) <= lay.height


def test_layers_put_start_first_terminal_states_above_end_and_follow_the_edges():
    asl = definition()
    lay = layout(asl)
    layer = {n.key: n.layer for n in lay.nodes}
    terminal = {k for k, s in asl["States"].items() if s["Type"] in ("Succeed", "Fail")}

    assert layer[START] == 0 and sorted(layer.values()).count(0) == 1
    assert layer[END] == max(layer.values()) and sorted(layer.values()).count(layer[END]) == 1
    assert terminal == {"TaskFailed", "NothingToDo"} and {layer[k] for k in terminal} == {layer[END] - 1}
    assert [(e.source, e.target) for e in lay.edges if layer[e.target] <= layer[e.source]] == []
    assert layer["MarkProcessing"] == 1 and layer["Resume"] == 2 and layer["RunSteps"] > layer["MarkRetried"]
    # rows are drawn in layer order, top to bottom
    assert sorted(lay.nodes, key=lambda n: n.y) == sorted(lay.nodes, key=lambda n: (n.layer, n.y))


@pytest.mark.timeout(10)
def test_cycles_terminate_are_drawn_upwards_and_a_self_loop_beside_its_state():
    asl = {"StartAt": "Poll", "States": {
        "Poll": {"Type": "Task", "Resource": "x", "Next": "Ready?"},
        "Ready?": {"Type": "Choice", "Default": "Done", "Choices": [
            {"Variable": "$.done", "BooleanEquals": False, "Next": "Wait"},
            {"Variable": "$.again", "BooleanEquals": True, "Next": "Ready?"}]},
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Poll"},
        "Done": {"Type": "Succeed"},
        "Orphan": {"Type": "Pass", "Next": "Orphan2"},
        "Orphan2": {"Type": "Pass", "Next": "Orphan"}}}
    lay = layout(asl)
    back = [(e.source, e.target) for e in lay.edges if e.back]
    layer = {n.key: n.layer for n in lay.nodes}
    loop = next(e for e in lay.edges if e.source == e.target)
    box = lay.node("Ready?")

    assert {n.key for n in lay.nodes} == set(asl["States"]) | {START, END}
    assert sorted(back) == [("Orphan2", "Orphan"), ("Ready?", "Ready?"), ("Wait", "Poll")]
    assert layer["Poll"] < layer["Ready?"] < layer["Wait"] < layer[END]
    wait_poll = next(e for e in lay.edges if (e.source, e.target) == ("Wait", "Poll"))
    assert wait_poll.points[-1][1] < wait_poll.points[0][1]  # drawn upwards, into Poll's bottom
    assert loop.points[0][0] == box.x + box.width and box.y < loop.points[0][1] < box.y + box.height
    assert overlapping(list(lay.nodes)) == []
    assert ET.fromstring(render_svg(asl)).tag == f"{SVG}svg"


PARALLEL_AND_MAP = {"StartAt": "Fan", "States": {
    "Fan": {"Type": "Parallel", "Next": "Each", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Oops"}],
            "Branches": [
                {"StartAt": "A1", "States": {"A1": {"Type": "Task", "Resource": "x", "Next": "A2"},
                                             "A2": {"Type": "Succeed"}}},
                {"StartAt": "B1", "States": {"B1": {"Type": "Wait", "Seconds": 1, "Next": "B2"},
                                             "B2": {"Type": "Choice", "Default": "B3", "Choices": [
                                                 {"Variable": "$.x", "IsPresent": True, "Next": "B1"}]},
                                             "B3": {"Type": "Pass", "End": True}}}]},
    "Each": {"Type": "Map", "Next": "Old", "ItemProcessor": {
        "StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "y", "End": True}}}},
    "Old": {"Type": "Map", "End": True, "Iterator": {
        "StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": True}}}},
    "Oops": {"Type": "Fail"}}}


def test_parallel_branches_and_map_processors_are_groups_holding_their_states():
    lay = layout(PARALLEL_AND_MAP)
    by_key = {n.key: n for n in lay.nodes}
    children = {k: sorted(n.key for n in lay.nodes if n.parent == k) for k in ("Fan", "Each", "Old")}
    nested = [n for n in lay.nodes if n.parent]

    assert children == {"Fan": ["A1", "A2", "B1", "B2", "B3"], "Each": ["Work"], "Old": ["Old/Work"]}
    assert [n.kind for n in (by_key["Fan"], by_key["Each"], by_key["Old"])] == ["group"] * 3
    assert len(nested) == 7 and [n.key for n in nested if not inside(n, by_key[n.parent])] == []
    assert overlapping([n for n in lay.nodes if n.parent is None]) == []
    assert overlapping([n for n in lay.nodes if n.parent == "Fan"]) == []
    # the two branches side by side: A's states left of B's
    assert by_key["A1"].x + by_key["A1"].width < by_key["B1"].x
    inner = {(e.source, e.target): e for e in lay.edges if e.parent == "Fan"}
    assert set(inner) == {("A1", "A2"), ("B1", "B2"), ("B2", "B1"), ("B2", "B3")} and inner[("B2", "B1")].back


def test_parallel_and_map_render_with_their_inner_states_clickable():
    runs = path_from_history(history([("Fan", "Parallel", []), ("A1", "Task", ["ok"]), ("Each", "Map", []),
                                      ("Work", "Task", ["ok"]), ("Work", "Task", ["ok"]), ("Old", "Map", [])]))
    root = parsed(render_svg(PARALLEL_AND_MAP, runs))
    states = states_in(root)

    assert set(states) == {"Fan", "A1", "A2", "B1", "B2", "B3", "Each", "Work", "Old", "Old/Work", "Oops"}
    assert states["Fan"].get("class").split() == ["tmg-state", "tmg-group", "tmg-succeeded"]
    assert states["A1"].get("data-outcome") == "succeeded" and states["B1"].get("data-outcome") == "not_run"
    # two Map iterations: entered twice, one call each, no retry
    assert states["Work"].get("data-outcome") == "succeeded" and states["Work"].get("data-attempts") == "2"
    assert states["Work"].find(f"{SVG}g[@class='tmg-badge']") is None
    assert states["Work"].get("data-testid") == "state-Work"


def test_an_empty_or_broken_definition_still_draws():
    broken = {"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "Next": "Missing"}, "B": "not a state",
                                               "P": {"Type": "Parallel", "Branches": [{}], "End": True}}}
    lay = layout(broken)

    assert {n.key for n in layout({}).nodes} == {START, END}
    assert {n.key for n in lay.nodes} == {START, END, "A", "B", "P"}
    assert [(e.source, e.target) for e in lay.edges] == [("P", END)]
    assert parsed(render_svg(broken)).tag == f"{SVG}svg"


# ------------------------------------------------------------------ the path


def transitions(runs: dict[str, StateRun]) -> list[tuple[str, str]]:
    moves = sorted((t for r in runs.values() for t in r.transitions), key=lambda t: t.seq)
    return [(t.source, t.target) for t in moves]


@pytest.mark.parametrize("fixture", ["ministack_completed", "ministack_failed_process", "aws_failed_process",
                                     "ministack_retry"])
def test_the_path_is_one_chain_from_start_in_the_order_of_the_history(fixture):
    events = recorded(fixture)
    runs = path_from_history(events)
    moves = transitions(runs)
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]

    assert moves[0] == (START, entered[0]) and moves[-1] == (entered[-1], END)
    assert [s for s, _t in moves[1:]] == entered and [t for _s, t in moves[:-1]] == entered
    assert list(runs) == entered  # each state once (no loops here), in the order entered


def test_a_completed_ministack_execution_succeeds_along_its_whole_path():
    runs = path_from_history(recorded("ministack_completed"))

    assert {r.outcome for r in runs.values()} == {"succeeded"} and len(runs) == 10
    assert runs["Validate"].attempts == 1 and runs["ValidateOutcome"].attempts == 0
    assert runs["Validate"].duration_ms == pytest.approx(97.0)
    assert runs["MarkProcessing"].transitions[0].duration_ms == pytest.approx(151.0)  # queued before the first state
    assert '"taskID": "happy-sample1"' in runs["MarkProcessing"].input
    assert '"outcome": "ok"' in runs["Validate"].output and runs["Validate"].error is None


@pytest.mark.parametrize(("fixture", "error", "ms"), [
    ("ministack_failed_process", "Runtime.HandlerError", 4356.0),
    ("aws_failed_process", "InjectedFailure", 33119.0)])
def test_a_step_retried_then_caught_is_caught_with_its_attempts_and_the_fail_state_is_failed(fixture, error, ms):
    runs = path_from_history(recorded(fixture))
    process = runs["Process"]

    assert (process.outcome, process.attempts, process.retries) == ("caught", 3, 2)
    assert process.error == error and "failure injected at step 'process'" in process.cause
    assert process.duration_ms == pytest.approx(ms)
    assert [(t.target, t.caught) for t in process.transitions] == [("MarkFailed", True)]
    assert runs["MarkFailed"].outcome == "succeeded" and runs["TaskFailed"].outcome == "failed"
    assert runs["TaskFailed"].error == error
    assert {r.outcome for k, r in runs.items() if k not in ("Process", "TaskFailed")} == {"succeeded"}


def test_a_retry_execution_shows_the_caught_start_then_the_retried_path():
    runs = path_from_history(recorded("ministack_retry"))

    assert runs["MarkProcessing"].outcome == "caught" and runs["MarkProcessing"].attempts == 1
    assert runs["MarkProcessing"].error == "DynamoDB.ConditionalCheckFailedException"
    assert [t.target for t in runs["Resume"].transitions] == ["MarkRetried"]
    assert runs["MarkRetried"].outcome == "succeeded" and runs["MarkCompleted"].outcome == "succeeded"
    assert "MarkRedriven" not in runs


def test_a_step_that_succeeds_on_a_later_attempt_is_retried_and_running_and_uncaught_failures_show():
    retried = path_from_history(history(COMPLETED))
    running = path_from_history(history(COMPLETED[:1] + [("RunSteps", "Task", ["Lambda.ServiceException", "..."])],
                                        end=None))
    failed = path_from_history(history(COMPLETED[:1] + [("RunSteps", "Task", ["Boom"])], end="ExecutionFailed"))

    assert (retried["RunSteps"].outcome, retried["RunSteps"].attempts, retried["RunSteps"].retries) == \
        ("retried", 2, 1)
    assert retried["RunSteps"].error is None and retried["Outcome"].outcome == "succeeded"
    # its first call failed and the Retry's next one has not answered yet: running, not failed
    assert running["RunSteps"].outcome == "running" and running["RunSteps"].transitions == []
    assert running["RunSteps"].attempts == 2 and running["MarkProcessing"].outcome == "succeeded"
    assert failed["RunSteps"].outcome == "failed" and failed["RunSteps"].error == "Boom"
    assert transitions(failed)[-1] == ("RunSteps", END)


def test_a_state_entered_twice_adds_up_its_entries():
    runs = path_from_history(history([("Poll", "Task", ["ok"]), ("Ready?", "Choice", []), ("Poll", "Task", ["ok"]),
                                      ("Ready?", "Choice", []), ("Done", "Succeed", [])]))

    assert (runs["Poll"].entries, runs["Poll"].attempts, runs["Poll"].retries) == (2, 2, 0)
    assert runs["Poll"].outcome == "succeeded" and runs["Poll"].duration_ms == pytest.approx(2 * 44.0)
    assert [t.target for t in runs["Ready?"].transitions] == ["Poll", "Done"]


# ------------------------------------------------------------------ SVG


def test_the_svg_parses_and_every_state_has_its_outcome_id_and_testid():
    asl = definition()
    runs = path_from_history(history(COMPLETED))
    root = parsed(render_svg(asl, runs, title="task t-1"))
    states = states_in(root)
    outcomes = {k: g.get("data-outcome") for k, g in states.items()}

    assert root.tag == f"{SVG}svg" and root.get("viewBox").startswith("0 0 ")
    assert set(states) == set(asl["States"])
    assert outcomes == {k: {"MarkProcessing": "succeeded", "RunSteps": "retried", "Outcome": "succeeded",
                            "MarkCompleted": "succeeded"}.get(k, "not_run") for k in asl["States"]}
    assert {(g.get("id"), g.get("data-testid")) for g in states.values()} == \
        {(f"state-{k}", f"state-{k}") for k in asl["States"]}
    assert "tmg-retried" in states["RunSteps"].get("class").split()
    assert "".join(states["RunSteps"].find(f"{SVG}g[@class='tmg-badge']").itertext()) == "×2"
    assert states["MarkProcessing"].find(f"{SVG}g[@class='tmg-badge']") is None
    assert states["RunSteps"].find(f"{SVG}title").text.startswith("RunSteps (Task)\nretried, 2 attempts")
    assert states["RunSteps"].get("data-input") == '{"taskID": "t-1"}'
    assert len(root.findall(f"{SVG}defs/{SVG}marker")) == 1


def test_without_runs_the_states_are_neutral_and_only_edge_styles_are_in_the_legend():
    root = parsed(render_svg(definition()))
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "tmg-legend")

    assert {g.get("data-outcome") for g in states_in(root).values()} == {"none"}
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["catch (dashed)"]
    assert [p for p in root.iter(f"{SVG}path") if "tmg-taken" in (p.get("class") or "")] == []


def test_the_taken_edges_are_bold_with_their_durations_and_a_caught_failure_takes_the_catch_edge():
    asl = definition()
    caught = path_from_history(history(COMPLETED[:1] + [("RunSteps", "Task", ["X", "X", "X"]),
                                                        ("MarkFailed", "Task", ["ok"]), ("TaskFailed", "Fail", [])],
                                       end="ExecutionFailed"))
    rejected = path_from_history(history(COMPLETED[:3] + [("BusinessFailure", "Pass", []),
                                                          ("MarkRejected", "Task", ["ok"]), ("TaskFailed", "Fail", [])],
                                         end="ExecutionFailed"))
    rejected_late = path_from_history(history(
        COMPLETED[:3] + [("BusinessFailure", "Pass", []),
                         ("MarkRejected", "Task", ["DynamoDB.ConditionalCheckFailedException"]),
                         ("TaskFailed", "Fail", [])], end="ExecutionFailed"))

    def taken(runs: dict[str, StateRun]) -> list[tuple[str, str, bool]]:
        root = parsed(render_svg(asl, runs))
        return [(p.get("data-from"), p.get("data-to"), "tmg-catch" in p.get("class"))
                for p in root.iter(f"{SVG}path") if "tmg-taken" in (p.get("class") or "")]

    assert taken(caught) == [(START, "MarkProcessing", False), ("MarkProcessing", "RunSteps", False),
                             ("RunSteps", "MarkFailed", True), ("MarkFailed", "TaskFailed", False),
                             ("TaskFailed", END, False)]
    # MarkRejected has a Next and a Catch to TaskFailed: the move follows the one that happened
    assert ("MarkRejected", "TaskFailed", False) in taken(rejected)
    assert ("MarkRejected", "TaskFailed", True) not in taken(rejected)
    assert ("MarkRejected", "TaskFailed", True) in taken(rejected_late)
    assert ("MarkRejected", "TaskFailed", False) not in taken(rejected_late)
    labels = [t.text for t in parsed(render_svg(asl, caught)).iter(f"{SVG}text")
              if "tmg-duration" in (t.get("class") or "")]
    assert labels == ["5 ms", "44 ms", "130 ms", "44 ms", "1 ms"]


def test_states_of_another_version_of_the_definition_are_named_not_drawn():
    root = parsed(render_svg(definition(), path_from_history(recorded("aws_failed_process"))))
    states = states_in(root)
    note = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "tmg-note")

    assert states["MarkProcessing"].get("data-outcome") == "succeeded"
    assert states["TaskFailed"].get("data-outcome") == "failed" and states["RunSteps"].get("data-outcome") == "not_run"
    assert note.text.startswith("Not in this definition: Enrich, EnrichOutcome, Process")


def test_engine_text_is_escaped_everywhere():
    evil = "<script>alert(1)</script>"
    quote = "x' onmouseover='alert(2)"
    asl = {"StartAt": evil, "States": {evil: {"Type": "Task", "Resource": "x", "Next": quote,
                                              "Comment": "</style><script>alert(3)</script>",
                                              "Catch": [{"ErrorEquals": ["<b>E</b>"], "Next": quote}]},
                                       quote: {"Type": "Succeed"}}}
    runs = path_from_history(history([(evil, "Task", ["ok"]), (quote, "Succeed", [])],
                                     data='{"html": "<img src=x onerror=alert(4)>", "q": "\'"}'))
    svg = render_svg(asl, runs, title=evil)
    root = parsed(svg)
    states = states_in(root)

    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg and "onmouseover='" not in svg
    assert set(states) == {evil, quote}  # the parser gets the exact names back
    assert states[evil].get("id") == f"state-{evil}" and states[evil].get("data-testid") == f"state-{evil}"
    assert states[evil].get("data-input") == '{"html": "<img src=x onerror=alert(4)>", "q": "\'"}'
    assert root.find(f"{SVG}title").text == evil


def test_data_attributes_are_cut_at_the_limit():
    big = json.dumps({"blob": "x" * 3 * DATA_LIMIT})
    runs = path_from_history(history(COMPLETED, data=big))
    state = states_in(parsed(render_svg(definition(), runs)))["MarkProcessing"]

    assert len(big) > DATA_LIMIT and len(state.get("data-input")) == DATA_LIMIT
    assert state.get("data-input").endswith("…") and state.get("data-input").startswith('{"blob": "xxx')


def test_the_legend_names_every_outcome_in_a_list():
    root = parsed(render_svg(definition(), path_from_history(history(COMPLETED))))
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "tmg-legend")

    assert legend.get("role") == "list" and legend.get("aria-label") == "Legend"
    assert [t.text for t in legend.iter(f"{SVG}text")] == [
        "succeeded", "failed", "caught", "retried ×N", "running", "not run", "catch (dashed)"]
    assert {g.get("role") for g in legend.findall(f"{SVG}g")} == {"listitem"}


def test_the_same_input_gives_the_same_bytes():
    runs = path_from_history(recorded("aws_failed_process"))
    first = render_svg(definition(), runs, title="t")

    assert render_svg(copy.deepcopy(definition()), path_from_history(recorded("aws_failed_process")), title="t") \
        == first
    assert isinstance(layout(definition()), Layout) and layout(definition()) == layout(definition())


def test_the_repo_machine_with_a_path_renders_in_under_5_ms_and_30_kb():
    asl = definition()
    sample = recorded("ministack_completed")[8]["stateExitedEventDetails"]["output"]  # a real 494-byte state output
    runs = path_from_history(history(COMPLETED, data=sample))
    svg = render_svg(asl, runs)
    timings = []
    for _ in range(15):
        start = time.perf_counter()
        render_svg(asl, runs)
        timings.append(time.perf_counter() - start)

    assert len(timings) == 15 and min(timings) < 0.005, f"fastest render {min(timings) * 1000:.1f} ms"
    assert len(svg.encode()) < 30_000


def test_a_redriven_execution_running_again_has_no_edge_to_the_end():
    """ExecutionFailed, then ExecutionRedriven: the end event before the redrive is not where this run stops."""
    events = history([("MarkProcessing", "Task", ["ok"]), ("RunSteps", "Task", ["Boom"])], end="ExecutionFailed")
    last = events[-1]
    events.append({"id": len(events) + 1, "previousEventId": len(events), "type": "ExecutionRedriven",
                   "timestamp": last["timestamp"] + dt.timedelta(seconds=1),
                   "executionRedrivenEventDetails": {"redriveCount": 1}})
    events += [{**e, "id": len(events) + 1 + i, "previousEventId": len(events) + i,
                "timestamp": last["timestamp"] + dt.timedelta(seconds=2)}
               for i, e in enumerate(history([("RunSteps", "Task", ["..."])], end=None)[1:])]

    runs = path_from_history(events)

    assert runs["RunSteps"].outcome == "running"
    taken = [(t.source, t.target) for run in runs.values() for t in run.transitions]
    assert ("MarkProcessing", "RunSteps") in taken
    assert [target for _, target in taken if target == END] == []
