"""Swagger UI at `/`, served from this service alone: its JS and CSS come from the
`swagger-ui-bundle` package, so the page works with no internet access and under a strict CSP.
This is FastAPI's documented self-hosting pattern (docs "How To: Custom Docs UI Assets").
"""

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/"
ASSETS_PATH = "/docs-assets"


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at DOCS_PATH and its files under ASSETS_PATH."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # The online validator would call out to swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
