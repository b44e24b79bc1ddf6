"""GET /docs: Swagger UI from files on this machine, so the API reference works with no internet.

The assets come from the `swagger-ui-bundle-v2` package (import name `swagger_ui_bundle`, its
`swagger_ui_path` folder; 5.31.0 ships Swagger UI 5.31.0, which reads OpenAPI 3.1) when installed.
Without it /docs says where the schema is instead of loading anything from a CDN; no page of the
service ever names a third-party host. The page's one script is `static/docs.js` (no
inline code, so the Content-Security-Policy can stay `script-src 'self'`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from serving.errors import ApiError

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")  # all /docs loads

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · API</title>
{head}</head><body>{body}</body></html>
"""


def swagger_assets() -> Path | None:
    """The folder holding Swagger UI's files, from the `swagger-ui-bundle-v2` package; None without it."""
    try:
        module = importlib.import_module("swagger_ui_bundle")
    except ImportError:
        return None
    folder = getattr(module, "swagger_ui_path", None)
    if folder is None or not (Path(folder) / "swagger-ui-bundle.js").is_file():
        return None
    return Path(folder)


def docs_page(title: str, assets: Path | None) -> str:
    if assets is None:
        body = (
            "<main><h1>API reference</h1><p>The interactive reference needs the <code>swagger-ui-bundle-v2</code> "
            'package on this machine. The OpenAPI schema is at <a href="/openapi.json">/openapi.json</a>.</p></main>'
        )
        return PAGE.format(title=title, head="", body=body)
    head = '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">'
    body = (
        '<div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>'
        '<script src="/static/docs.js"></script>'
    )
    return PAGE.format(title=title, head=head, body=body)


def install_docs(app: FastAPI, assets: Path | None = None) -> None:
    """/docs, its assets under /docs/assets/ and the service's own static files under /static/."""
    folder = assets if assets is not None else swagger_assets()
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.title, folder))

    @router.get("/docs/assets/{name}")
    def asset(name: str) -> FileResponse:
        if folder is None or name not in ASSETS or not (folder / name).is_file():
            raise ApiError(404, f"No docs asset `{name}` here")
        return FileResponse(folder / name, headers={"Cache-Control": "public, max-age=86400"})

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
