"""Swagger UI at `/`, served from this service alone, under a strict Content-Security-Policy.

Swagger UI 5 comes from the `swagger-ui-bundle-v2` package (its version is Swagger UI's, pinned in
requirements.lock), so the page works with no internet access. FastAPI's own page starts the UI
from an inline script, which a CSP of `script-src 'self'` forbids; this page starts it from
`swagger-init.js`, a file of ours, which reads the schema's URL from the page.
"""

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from kiusys_app.api.limits import LIMIT_RESPONSES
from kiusys_app.api.observability import REQUEST_ID_HEADER

DOCS_PATH = "/"
# Where every FastAPI user looks first: it sends them to DOCS_PATH.
DOCS_ALIAS = "/docs"
ASSETS_PATH = "/docs-assets"
INIT_SCRIPT = "swagger-init.js"
_INIT_SCRIPT_FILE = Path(__file__).parent / "static" / INIT_SCRIPT

# Scripts, styles and calls from this service only; images also as data: URIs, which
# swagger-ui.css uses for its icons. No frames, no plugins, no forms posted elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/{init_script}"></script>
</body>
</html>
"""


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at DOCS_PATH and its files under ASSETS_PATH."""
    page = _PAGE.format(
        title=escape(f"{app.title} - Swagger UI"),
        assets=ASSETS_PATH,
        openapi_url=escape(app.openapi_url or "/openapi.json"),
        init_script=INIT_SCRIPT,
    )
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    @app.get(DOCS_ALIAS, include_in_schema=False)
    async def swagger_ui_alias() -> RedirectResponse:
        return RedirectResponse(DOCS_PATH, status_code=307)

    # Registered before the mount, so that this path is matched before the package's files.
    @app.get(f"{ASSETS_PATH}/{INIT_SCRIPT}", include_in_schema=False)
    async def swagger_init() -> FileResponse:
        return FileResponse(_INIT_SCRIPT_FILE, media_type="text/javascript")

    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")


def document_every_answer(app: FastAPI) -> None:
    """Add to every operation of the schema what the middlewares give every request: the
    limits' answers (408, 413, 414, 431), and the `X-Request-ID` header on each answer."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    request_id = {
        REQUEST_ID_HEADER: {
            "description": "The request's id, as in the service's log line for it",
            "schema": {"type": "string"},
        }
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    answers = operation.setdefault("responses", {})
                    for status, description in LIMIT_RESPONSES.items():
                        answers.setdefault(str(status), {"description": description})
                    for answer in answers.values():
                        answer["headers"] = {**answer.get("headers", {}), **request_id}
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
