"""`tmctl console`: the same core behind a local web page. All web code of
tmctl lives in this package (tmctl.core never imports it). It needs the
optional extra `tmctl[console]` (starlette, jinja2, uvicorn); importing this
package itself needs none of them, so the CLI can say what is missing.

- security.py  the guard every request passes: loopback Host, token → cookie, CSRF + Origin on writes,
               no CORS, read-only production
- source.py    what the pages show and do, as calls to tmctl.core (no web code)
- live.py      one shared poller per console process and its server-sent events
- app.py       the Starlette routes and Jinja2 pages (templates/, static/)
- server.py    serving it on 127.0.0.1: the port, the URL with its token, the browser
- graph.py     the state machine as one SVG, coloured by the path an execution took (stdlib only)
"""

from __future__ import annotations

EXTRA = "console"
EXTRA_MODULES = ("starlette", "jinja2", "uvicorn")
MISSING_EXTRA = "tmctl console needs its extra: pip install 'tmctl[console]'"


def missing_modules() -> list[str]:
    """The extra's modules that do not import here (empty when the extra is installed)."""
    import importlib

    missing = []
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing
