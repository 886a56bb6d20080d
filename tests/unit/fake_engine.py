"""A fake engine for the CLI's `up`/`diff`/`doctor` paths in unit tests: every
boto3 client call is recorded (with its arguments) and answered from a table,
and the engine probe/launch are replaced, so a test sees exactly which calls a
command made before it stopped, and which parameters reached CreateChangeSet."""

from __future__ import annotations

from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core.local import emulator
from tmctl.core.target import Clients


def no_such_stack(name: str) -> ClientError:
    """What CloudFormation answers DescribeStacks for a stack that was never deployed."""
    return ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeStacks")


class Recorder:
    """Fake clients: GetApis answers `get_apis` (raised if an exception), DescribeStacks
    `stack` (None: never deployed), anything else from `answers` or {}. The defaults
    take `up`/`diff` as far as CreateChangeSet (whose parameters are what counts), then stop."""

    def __init__(self, get_apis, stack: dict | None = None, answers: dict | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.get_apis, self.stack = get_apis, stack
        self.answers = {"get_caller_identity": {"Account": "123456789012"}, "create_change_set": {"Id": "cs-1"},
                        "describe_change_set": {"Status": "FAILED", "StatusReason": "stop here"}, **(answers or {})}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def sent(self) -> dict[str, str] | None:
        """The parameters CreateChangeSet was sent (None: it was not called)."""
        for name, kwargs in self.calls:
            if name == "cloudformation.create_change_set":
                return {p["ParameterKey"]: p["ParameterValue"] for p in kwargs["Parameters"]}
        return None

    def client(self, service: str):
        recorder = self

        class Client:
            def __getattr__(self, op):
                def call(*_a, **kwargs):
                    recorder.calls.append((f"{service}.{op}", kwargs))
                    if op == "get_apis":
                        if isinstance(recorder.get_apis, Exception):
                            raise recorder.get_apis
                        return recorder.get_apis
                    if op == "describe_stacks":
                        if recorder.stack is None:
                            raise no_such_stack(kwargs.get("StackName", "?"))
                        return {"Stacks": [recorder.stack]}
                    return recorder.answers.get(op, {})
                return call
        return Client()


def run_cli(monkeypatch, tmp_path, engine: emulator.Engine, recorder: Recorder, *args: str):
    """`tmctl <args>` against `engine` (already running) with `recorder`'s clients; nothing is packaged."""

    class Booting:
        def wait(self):
            return engine, None

    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: engine)
    monkeypatch.setattr(emulator, "launch", lambda *_a, **_k: Booting())
    monkeypatch.setattr("tmctl.core.up.package.build_all", lambda *_a, **_k: [])
    monkeypatch.setattr(Clients, "client", lambda _self, service: recorder.client(service))
    return CliRunner().invoke(app, list(args), env={
        "TMCTL_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "300"})
