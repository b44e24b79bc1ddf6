"""Rendering a page: the Jinja2 environment (autoescaping on) and the context every page shares."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from samepage.definitions import Definitions
from serving import charts
from serving.explain import format_value
from serving.pages.session import signed_in

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "xml"], default=True))
    env.globals["fmt"] = format_value
    env.globals["pct"] = charts.percent
    env.globals["duration"] = charts.duration
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as an uncached answer, with the definitions' name and version and the sign-in state."""
    defs: Definitions = request.app.state.defs
    html = templates().get_template(name).render(
        defs_name=defs.name, definitions_version=defs.version_string, signed_in=signed_in(request), **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
