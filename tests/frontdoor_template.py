"""The FrontDoor contract (issue 17 part 3) added to a parsed template, for tests
that cannot wait for cloudformation/template.yaml to declare it: FrontDoor
http|rest (default http), UseHttpApi on every AWS::ApiGatewayV2 resource,
UseRestApi on a REST API, and the FrontDoor output."""

from __future__ import annotations

import copy
import json
import re


def with_front_door(template: dict) -> dict:
    """The project's template with the FrontDoor contract added, as the other half of issue 17 adds it."""
    t = copy.deepcopy(template)
    t["Parameters"]["FrontDoor"] = {"Type": "String", "AllowedValues": ["http", "rest"], "Default": "http"}
    t.setdefault("Conditions", {}).update({
        "UseHttpApi": {"Fn::Equals": [{"Ref": "FrontDoor"}, "http"]},
        "UseRestApi": {"Fn::Equals": [{"Ref": "FrontDoor"}, "rest"]},
    })
    v2 = {k for k, r in t["Resources"].items() if r["Type"].startswith("AWS::ApiGatewayV2::")}
    for logical, res in t["Resources"].items():
        # v2 resources, and whatever names one (the invoke permission's SourceArn): HTTP API only.
        # (The JWT authorizer's UseJwt is replaced: enough for these tests.)
        if logical in v2 or _names(res, v2):
            res["Condition"] = "UseHttpApi"
    for out in t["Outputs"].values():
        if _names(out, v2):
            out["Condition"] = "UseHttpApi"
    t["Resources"]["RestApi"] = {"Type": "AWS::ApiGateway::RestApi", "Condition": "UseRestApi",
                                 "Properties": {"Name": "tasks"}}
    t["Outputs"]["FrontDoor"] = {"Value": {"Ref": "FrontDoor"}}
    return t


def _names(node, logical_ids: set[str]) -> bool:
    text = json.dumps(node)
    return any(re.search(rf'"{re.escape(i)}"|\$\{{{re.escape(i)}[.}}]', text) for i in logical_ids)
