"""What a deployed stack is: its outputs, read once, as a typed object."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from tmctl.core.errors import NotFound, error_code, from_client_error
from tmctl.core.target import Target


@dataclass(frozen=True)
class StackInfo:
    name: str
    status: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    api_url: str

    def out(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise NotFound(f"stack {self.name} has no output {key}", "run `tmctl up` to update it") from None

    @property
    def table(self) -> str:
        return self.out("TasksTableName")

    @property
    def queue_url(self) -> str:
        return self.out("TaskQueueUrl")

    @property
    def dlq_url(self) -> str:
        return self.out("DeadLetterQueueUrl")

    @property
    def state_machine_arn(self) -> str:
        return self.out("StateMachineArn")

    @property
    def front_door(self) -> str:
        """http | rest: the stack's `FrontDoor` output; a stack deployed before it has the HTTP API."""
        from tmctl.core.frontdoor import HTTP, OUTPUT

        return (self.outputs.get(OUTPUT) or HTTP).lower()

    @property
    def front_door_label(self) -> str:
        from tmctl.core.frontdoor import LABELS

        return LABELS.get(self.front_door, self.front_door)

    @property
    def functions(self) -> dict[str, str]:
        return {k.removesuffix("FunctionName"): v for k, v in self.outputs.items() if k.endswith("FunctionName")}


def api_url(target: Target, outputs: dict[str, str]) -> str:
    """curl-able with no DNS on an emulator; the stage's invoke URL on AWS."""
    if target.local and outputs.get("ApiId"):
        return f"{target.endpoint_url}/_aws/execute-api/{outputs['ApiId']}/{outputs.get('ApiStageName', target.stage)}"
    return outputs.get("ApiEndpoint", "")


def describe_stack(cfn, target: Target) -> dict | None:
    try:
        stacks = cfn.describe_stacks(StackName=target.stack_name)["Stacks"]
    except ClientError as err:
        # CloudFormation answers a missing stack with ValidationError, its only code for it.
        if error_code(err) == "ValidationError":
            return None
        raise from_client_error(err, f"describe stack {target.stack_name}") from err
    return stacks[0] if stacks else None


def load_stack(cfn, target: Target) -> StackInfo:
    stack = describe_stack(cfn, target)
    if stack is None or stack["StackStatus"] in {"DELETE_COMPLETE", "REVIEW_IN_PROGRESS"}:
        raise NotFound(f"{target.describe()} does not exist",
                       "run `tmctl up --local`" if target.local else "run `tmctl up`")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return StackInfo(stack["StackName"], stack["StackStatus"], outputs, deployed_parameters(stack),
                     api_url(target, outputs))


def deployed_parameters(stack: dict) -> dict[str, str]:
    """A described stack's parameters, by key (DescribeStacks' `Parameters`)."""
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
