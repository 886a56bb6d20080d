"""The template as an emulator is sent it: every DeletionPolicy/UpdateReplacePolicy
written as Fn::If is replaced by the literal its condition chooses for the
parameters tmctl sends. LocalStack's CloudFormation v2 engine (4.9–4.13) answers
a non-literal policy with a 500; AWS and newer engines resolve it themselves, so
AWS always gets the file's own text and only emulators get this copy.

Only the policy values change, in place, in the YAML text: everything else
(comments, Transform, order) stays byte for byte, so the same template and
parameters always render the same text (a re-run is still a no-change).
A condition it cannot evaluate leaves that policy as written."""

from __future__ import annotations

POLICIES = ("DeletionPolicy", "UpdateReplacePolicy")


class Unknown(Exception):
    """A condition needs something not known before CloudFormation runs it."""


def _text(value) -> str:
    """A scalar as CloudFormation compares it: YAML's true is "true", 0 is "0"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Unknown(f"not a scalar: {value!r}")


def _value(node, values: dict[str, str], conditions: dict, seen: frozenset[str]) -> str:
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref" and isinstance(arg, str) and arg in values:
            return values[arg]
        if fn == "Fn::If":
            return _value(_if(arg, values, conditions, seen), values, conditions, seen)
        raise Unknown(f"{fn} {arg!r}")
    return _text(node)


def _if(arg, values: dict[str, str], conditions: dict, seen: frozenset[str]):
    if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
        raise Unknown(f"Fn::If {arg!r}")
    return arg[1] if condition(arg[0], values, conditions, seen) else arg[2]


def condition(name: str, values: dict[str, str], conditions: dict, seen: frozenset[str] = frozenset()) -> bool:
    """The named condition's value; Unknown when it cannot be decided here."""
    if name in seen or name not in conditions:
        raise Unknown(f"condition {name}")
    return _truth(conditions[name], values, conditions, seen | {name})


def _truth(node, values: dict[str, str], conditions: dict, seen: frozenset[str]) -> bool:
    if not (isinstance(node, dict) and len(node) == 1):
        raise Unknown(f"not a condition: {node!r}")
    (fn, arg), = node.items()
    if fn in {"Condition", "Fn::Condition"} and isinstance(arg, str):  # JSON's form; the loader's for !Condition
        return condition(arg, values, conditions, seen)
    if not isinstance(arg, list):
        raise Unknown(f"{fn} {arg!r}")
    if fn == "Fn::Equals" and len(arg) == 2:
        a, b = (_value(x, values, conditions, seen) for x in arg)
        return a == b
    if fn == "Fn::Not" and len(arg) == 1:
        return not _truth(arg[0], values, conditions, seen)
    if fn == "Fn::And" and arg:
        return all([_truth(x, values, conditions, seen) for x in arg])  # all evaluated: Unknown anywhere is Unknown
    if fn == "Fn::Or" and arg:
        return any([_truth(x, values, conditions, seen) for x in arg])
    raise Unknown(f"{fn} {arg!r}")


def parameter_values(template: dict, params: dict[str, str]) -> dict[str, str]:
    """Every parameter's value as CloudFormation would see it: `params`, else the template's default."""
    declared = template.get("Parameters") or {}
    values = {k: _text(v["Default"]) if isinstance(v["Default"], (str, int, float)) else str(v["Default"])
              for k, v in declared.items() if isinstance(v, dict) and "Default" in v}
    return {**values, **params}


def resolved_policies(template: dict, params: dict[str, str]) -> dict[tuple[str, str], str]:
    """(logical id, policy) → the literal its Fn::If chooses with `params`
    (the template's defaults for the rest). Policies already literal, or not
    decidable here, are left out."""
    values = parameter_values(template, params)
    conditions = template.get("Conditions") or {}
    out = {}
    for logical, res in (template.get("Resources") or {}).items():
        for policy in POLICIES:
            node = res.get(policy) if isinstance(res, dict) else None
            if not (isinstance(node, dict) and set(node) == {"Fn::If"}):
                continue
            try:
                chosen = _if(node["Fn::If"], values, conditions, frozenset())
            except Unknown:
                continue
            if isinstance(chosen, str) and chosen.isalpha():
                out[(logical, policy)] = chosen
    return out


def inactive(text: str, params: dict[str, str]) -> frozenset[str]:
    """The resources whose `Condition` is decidably false with `params` (the
    template's defaults for the rest): CloudFormation creates none of them.
    MiniStack 1.5.33 still lists them as "Add" in a change set (it skips them
    when executing), so a change table on an emulator leaves them out."""
    import yaml

    from tmctl.core.deploy import _cfn_yaml_loader

    template = yaml.load(text, Loader=_cfn_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    return inactive_in(template, params) if isinstance(template, dict) else frozenset()


def inactive_in(template: dict, params: dict[str, str]) -> frozenset[str]:
    """inactive() of a template already parsed. A condition not decidable here counts as true."""
    values = parameter_values(template, params)
    conditions = template.get("Conditions") or {}
    out = set()
    for logical, res in (template.get("Resources") or {}).items():
        name = res.get("Condition") if isinstance(res, dict) else None
        if not isinstance(name, str):
            continue
        try:
            if not condition(name, values, conditions):
                out.add(logical)
        except Unknown:
            continue
    return frozenset(out)


def _spans(text: str, loader) -> dict[tuple[str, str], tuple[int, int]]:
    """Where each resource's policy value sits in the text: (start, end) offsets."""
    import yaml

    root = yaml.compose(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    out = {}
    if not isinstance(root, yaml.MappingNode):
        return out
    for key, resources in root.value:
        if key.value != "Resources" or not isinstance(resources, yaml.MappingNode):
            continue
        for logical, res in resources.value:
            if not isinstance(res, yaml.MappingNode):
                continue
            for attr, value in res.value:
                if attr.value in POLICIES:
                    start, end = value.start_mark.index, value.end_mark.index
                    end = start + len(text[start:end].rstrip())  # a block node ends past its newline
                    out[(logical.value, attr.value)] = (start, end)
    return out


def for_emulator(text: str, params: dict[str, str]) -> str:
    """`text` with each decidable Fn::If policy replaced by its literal; the
    text itself when there is none. Checked: the result loads as the
    original with those policies literal, or the original text is returned."""
    import yaml

    from tmctl.core.deploy import _cfn_yaml_loader

    loader = _cfn_yaml_loader()
    template = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict):
        return text
    chosen = resolved_policies(template, params)
    if not chosen:
        return text
    spans = _spans(text, loader)
    if set(chosen) - set(spans):
        return text
    out = text
    for where in sorted(chosen, key=lambda w: spans[w][0], reverse=True):  # from the end: offsets stay valid
        start, end = spans[where]
        out = out[:start] + chosen[where] + out[end:]
    expected = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    for (logical, policy), literal in chosen.items():
        expected["Resources"][logical][policy] = literal
    if yaml.load(out, Loader=loader) != expected:  # noqa: S506 - a form the splice does not handle: send it as written
        return text
    return out
