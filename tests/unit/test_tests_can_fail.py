"""Every test can fail: none passes by asserting nothing.

An assert inside `for role in roles:` (or in `all(... for role in roles)`, and
`all([])` is True) checks nothing when `roles` is empty: a template typo, a
stack with no roles or a fixture that found nothing would turn the test green
without it having looked at anything. So every test module under tests/ is
parsed, and each loop of a test function that holds assertions must be
covered by one of:

- an assert before the loop that names what it walks (`assert roles`,
  `assert len(found) == 3`, `assert set(by_name) == {...}`): the walk is not
  empty;
- an assert after the loop, outside any loop: the test checks something even
  if the loop never ran (a count of what the loop checked, a final state);
- an entry in ALLOWLIST below, with the reason the walk cannot be empty (a
  literal, non-empty tuple of cases; a list shown non-empty some way this
  check cannot follow).

"What it walks" is the loop's iterable with `.items()`/`.values()`/`.keys()`,
`sorted()`, `list()` and the like taken off (`asl["States"]` for
`asl["States"].items()`), or any name in a `range()`'s bounds. A loop over a
call's result (`for s in allows(pipeline, role)`) has nothing to name: bind the
result to a name and assert it. `while` loops need an assert after them. Only
the outermost loop is checked; inner loops and `if` branches are the test's own
business.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]

# (module under tests/, test function, the loop's iterable as ast.unparse writes it): why it cannot be empty.
ALLOWLIST: dict[tuple[str, str, str], str] = {
    ("unit/test_pipeline.py", "test_the_build_reaches_only_this_apps_stage_stack",
     "(('dev', True), ('prod', True), ('pipeline', False), ('pipeline-x', False), ('x-pipeline', True))"):
        "a literal tuple of five (stage name, allowed) cases",
    ("unit/test_pipeline.py", "test_the_stages_http_api_carries_the_tags_the_conditions_ask_for",
     "('AWS::ApiGatewayV2::Api', 'AWS::ApiGatewayV2::Stage')"):
        "a literal pair of resource types (and the Stubber checks the create request's tags itself)",
    ("unit/test_template.py", "test_every_route_takes_the_chosen_authorization", "ROUTES"):
        "ROUTES is a literal tuple of the four route resources",
    ("integration/test_cold_burst.py", "test_burst_after_cold_deploy_loses_nothing", "refused_ids"):
        "the ids of the answers in `refused`, which is asserted non-empty just before",
}

LOOPS = (ast.For, ast.AsyncFor, ast.While)
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
UNWRAP_CALLS = {"sorted", "list", "tuple", "set", "frozenset", "dict", "enumerate", "reversed", "iter"}
UNWRAP_METHODS = {"items", "values", "keys"}
COMPREHENSIONS = (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)


@dataclass(frozen=True)
class Walk:
    """An outermost loop (or an `all(...)` assert) of a test that holds assertions."""

    node: ast.stmt
    iterable: ast.expr | None  # None for `while`

    @property
    def text(self) -> str:
        return "while " + ast.unparse(self.node.test) if self.iterable is None else ast.unparse(self.iterable)


def modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def collected(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    bodies = [tree.body] + [c.body for c in tree.body if isinstance(c, ast.ClassDef)]
    return [f for body in bodies for f in body
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name.startswith("test")]


def own_nodes(node: ast.AST, in_loop: bool = False):
    """(node, inside a loop) for the nodes of a function's body, not those of functions defined in it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, SCOPES):
            continue
        yield child, in_loop
        yield from own_nodes(child, in_loop or isinstance(child, LOOPS))


def vacuous_iterable(test: ast.expr) -> ast.expr | None:
    """What an assert's `all(...)`/`not any(...)` walks, when that is all it asserts (true for nothing)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        call, name = test.operand, "any"
    else:
        call, name = test, "all"
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name
            and len(call.args) == 1):
        return None
    arg = call.args[0]
    return arg.generators[0].iter if isinstance(arg, COMPREHENSIONS) else arg


def subjects(iterable: ast.expr) -> list[ast.expr]:
    """The expressions a non-emptiness assert should name: `roles` for `sorted(roles.items())`."""
    if isinstance(iterable, ast.Call):
        func = iterable.func
        if isinstance(func, ast.Attribute) and func.attr in UNWRAP_METHODS and not iterable.args:
            return subjects(func.value)
        if isinstance(func, ast.Name) and func.id in UNWRAP_CALLS and iterable.args:
            return subjects(iterable.args[0])
        if isinstance(func, ast.Name) and func.id == "zip":
            return [s for arg in iterable.args for s in subjects(arg)]
        if isinstance(func, ast.Name) and func.id == "range":
            return [n for arg in iterable.args for n in ast.walk(arg) if isinstance(n, ast.Name)]
        return []
    if isinstance(iterable, ast.Subscript) and isinstance(iterable.slice, ast.Slice):
        return [iterable, *subjects(iterable.value)]  # steps[1:]: `assert steps[1]` shows it is not empty
    return [iterable] if isinstance(iterable, ast.Name | ast.Attribute | ast.Subscript) else []


def mentions(test: ast.expr, subject: ast.expr) -> bool:
    want = ast.unparse(subject)  # as written: `got` assigned is `got` read
    return any(isinstance(n, type(subject)) and ast.unparse(n) == want for n in ast.walk(test))


def unguarded_walks(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Walk]:
    nodes = list(own_nodes(fn))
    plain: list[ast.Assert] = []  # asserts that can fail whatever the data: outside loops, not all(...)
    walks: list[Walk] = []
    for node, in_loop in nodes:
        if in_loop:
            continue
        if isinstance(node, LOOPS) and any(isinstance(n, ast.Assert) for n, _ in own_nodes(node)):
            walks.append(Walk(node, None if isinstance(node, ast.While) else node.iter))
        elif isinstance(node, ast.Assert):
            iterable = vacuous_iterable(node.test)
            if iterable is None:
                plain.append(node)
            else:
                walks.append(Walk(node, iterable))

    def guarded(walk: Walk) -> bool:
        if any(a.lineno > walk.node.end_lineno for a in plain):
            return True  # the test asserts something even if the loop never runs
        if walk.iterable is None:
            return False
        named = subjects(walk.iterable)
        for node, in_loop in nodes:  # in source order: names computed from what is walked stand for it
            if not isinstance(node, ast.stmt) or node.lineno >= walk.node.lineno:
                continue
            if isinstance(node, ast.Assign | ast.AnnAssign) and not in_loop and node.value is not None and \
                    any(mentions(node.value, s) for s in named):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                named += [n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        before = [a.test for a in plain if a.end_lineno < walk.node.lineno]
        return any(mentions(t, s) for t in before for s in named)

    return [w for w in walks if not guarded(w)]


@functools.cache
def parsed(path: Path) -> ast.Module:
    """Each module parsed once per run: three tests walk them all."""
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def findings() -> tuple[list[str], set[tuple[str, str, str]]]:
    """(unguarded walks, ALLOWLIST keys that matched one)."""
    problems, used = [], set()
    for path in modules():
        module = path.relative_to(TESTS).as_posix()
        for fn in collected(parsed(path)):
            for walk in unguarded_walks(fn):
                key = (module, fn.name, walk.text)
                if key in ALLOWLIST:
                    used.add(key)
                else:
                    problems.append(f"tests/{module}:{walk.node.lineno} {fn.name}: asserts while walking "
                                    f"{walk.text}, which could be empty, and nowhere else to show it is not")
    return problems, used


def test_the_scan_reads_every_test_module():
    found = {p.relative_to(TESTS).as_posix() for p in modules()}

    # the walk is not vacuous: both suites, this module and their test functions are found
    assert {"unit/test_tests_can_fail.py", "unit/test_pipeline.py", "integration/test_iam_enforcement.py"} <= found
    assert sum(len(collected(parsed(p))) for p in modules()) > 300


def test_no_test_asserts_only_inside_a_walk_that_could_be_empty():
    problems, _used = findings()

    assert problems == [], "assert the data is not empty before the loop (`assert roles, \"no roles found\"`), " \
                           "assert something after it, or add it to ALLOWLIST with why it cannot be empty:\n" + \
                           "\n".join(problems)


def test_every_allowlist_entry_is_still_needed():
    _problems, used = findings()

    assert set(ALLOWLIST) - used == set()
    assert all(len(reason.split()) >= 4 for reason in ALLOWLIST.values())


# ------------------------------------------------------------------ the check itself

def walks_of(source: str) -> list[str]:
    (fn,) = collected(ast.parse(source))
    return [w.text for w in unguarded_walks(fn)]


@pytest.mark.parametrize("source", [
    "def test_x(roles):\n    for r in roles:\n        assert r\n",
    "def test_x(t):\n    for k, v in t['Resources'].items():\n        assert v, k\n",
    "def test_x(t):\n    assert t['Other']\n    for k, v in t['Resources'].items():\n        assert v, k\n",
    "def test_x(n):\n    assert all(f(i) for i in range(1, n + 1))\n",
    "def test_x(xs):\n    assert not any(x.bad for x in xs)\n",
    "def test_x(d):\n    assert all(d.values())\n",
    "def test_x(p):\n    for s in allows(p):\n        if s:\n            assert s\n",
    "def test_x(q):\n    while q:\n        assert q.pop()\n",
    "def test_x(r):\n    got = [f(x) for x in r.sent]\n    assert r.other\n    for x in r.sent:\n        assert x\n",
    "def test_x(xs):\n    for x in xs:\n        assert x\n    n = len(xs)\n",
    "def test_x(a, b):\n    assert b\n    for x in a:\n        for y in b:\n            assert x < y\n",
    "class TestX:\n    def test_x(self, xs):\n        for x in xs:\n            assert x\n",
])
def test_a_walk_with_nothing_around_it_is_caught(source):
    assert len(walks_of(source)) == 1, source


@pytest.mark.parametrize("source", [
    "def test_x(roles):\n    assert roles, 'none'\n    for r in roles:\n        assert r\n",
    "def test_x(t):\n    assert t['Resources']\n    for k, v in sorted(t['Resources'].items()):\n        assert v, k\n",
    "def test_x(n):\n    assert n >= 1\n    assert all(f(i) for i in range(1, n + 1))\n",
    "def test_x(xs):\n    assert len(xs) == 3\n    assert all(x.ok for x in xs)\n",
    "def test_x(xs):\n    n = 0\n    for x in xs:\n        assert x\n        n += 1\n    assert n\n",
    "def test_x(xs):\n    assert all(x.ok for x in xs) and xs\n",
    "def test_x(xs):\n    assert any(x.ok for x in xs)\n",  # any([]) is False: it can fail
    "def test_x(s):\n    assert s[0].ok and s[1].ok\n    assert all(x.ok for x in s[1:])\n",
    "def test_x(r):\n    got = [f(x) for x in r.sent]\n    assert got == [1]\n    for x in r.sent:\n        assert x\n",
    "def test_x():\n    with pytest.raises(ValueError):\n        f()\n",  # no assert at all: not this check's
    "def test_x(xs):\n    def check(x):\n        for y in x:\n            assert y\n    check(xs)\n    assert xs\n",
])
def test_a_walk_known_not_to_be_empty_passes(source):
    assert walks_of(source) == [], source
