"""Import-check server for `tmctl dev`, run as a script with the engine's own
interpreter (MiniStack's workers use `sys.executable`): one JSON request a
line on stdin, one JSON answer a line on stdout.

A fresh `python -c "import app"` per save pays boto3's and Powertools'
import again every time (~0.3 s, most of the save → live budget). This
process imports the third-party modules once, then forks a child per check:
the child starts with them loaded and nothing of the project, puts the
function's unpacked zip first on sys.path, sets the function's environment,
imports the handler module and looks the handler up. A broken module kills
only the child, never a worker. Imports nothing of tmctl: it must run beside
any engine's interpreter.

Request:  {"dir": unpacked zip, "handler": "app.handler", "env": {...}}
Answer:   {"ok": true} or {"ok": false, "file": path, "line": n, "error": "SyntaxError: ..."}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _where(err: BaseException, code_dir: str) -> tuple[str | None, int | None]:
    """The deepest frame inside the function's own code (or the file a SyntaxError names)."""
    if isinstance(err, SyntaxError) and err.filename:
        return err.filename, err.lineno
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(err.__traceback__):
        if os.path.abspath(frame.filename).startswith(code_dir + os.sep):
            found = (frame.filename, frame.lineno)
    return found


def check(request: dict) -> dict:
    code_dir = os.path.abspath(request["dir"])
    module_name, _, attr = request["handler"].rpartition(".")
    os.environ.update(request.get("env") or {})
    sys.path.insert(0, code_dir)
    try:
        module = importlib.import_module(module_name)
        if not callable(getattr(module, attr, None)):
            return {"ok": False, "file": getattr(module, "__file__", None), "line": None,
                    "error": f"handler {request['handler']!r}: {module_name} has no callable {attr!r}"}
    except BaseException as err:  # noqa: BLE001 - whatever the module raises is the answer
        file, line = _where(err, code_dir)
        return {"ok": False, "file": file, "line": line,
                "error": "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()[-1]}
    return {"ok": True}


def _forked(request: dict) -> dict:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, answer, leave without running any cleanup of the parent's
        os.close(read)
        try:
            answer = json.dumps(check(request)).encode()
        except BaseException as err:  # noqa: BLE001
            answer = json.dumps({"ok": False, "file": None, "line": None, "error": repr(err)}).encode()
        with os.fdopen(write, "wb") as out:
            out.write(answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"ok": False, "file": None, "line": None, "error": f"the import check died (status {status})"}
    return json.loads(data)


def preload(requests: list[dict]) -> None:
    """Import each handler once here, then forget every module of the project's
    own code: only the third-party ones (boto3, Powertools, …) stay loaded for
    the children. A handler that does not import now is simply not preloaded."""
    for request in requests:
        code_dir = os.path.abspath(request["dir"])
        saved = dict(os.environ)
        try:
            check(request)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            while code_dir in sys.path:
                sys.path.remove(code_dir)
            for name, module in list(sys.modules.items()):
                file = getattr(module, "__file__", None) or ""
                if os.path.abspath(file).startswith(code_dir + os.sep):
                    del sys.modules[name]


def main() -> None:
    fork = hasattr(os, "fork")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("preload"):
            if fork:
                preload(request["preload"])
            answer = {"ok": True}
        else:
            answer = _forked(request) if fork else check(request)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if not fork:  # no fork (Windows): one check per process
            return


if __name__ == "__main__":
    main()
