"""Interactive API docs at `/docs` and the favicon, from files this server ships (no CDN), so both work
offline and under a Content-Security-Policy that allows only this origin and no inline scripts.

FastAPI's own `/docs` loads Swagger UI from a CDN and starts it with an inline script, so it is turned
off (`docs_url=None`) and replaced by this page; ReDoc is dropped rather than vendored a second time.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from rag.settings import PROJECT_ROOT

WEB_DIR = PROJECT_ROOT / "web"
FAVICON = WEB_DIR / "favicon.svg"

router = APIRouter(include_in_schema=False)

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} – API docs</title>
  <link rel="icon" href="/favicon.ico" type="image/svg+xml">
  <link rel="stylesheet" href="/static/vendor/swagger/swagger-ui.css">
  <script src="/static/vendor/swagger/swagger-ui-bundle.js" defer></script>
  <script src="/static/docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
</body>
</html>
"""


@router.get("/docs", summary="Interactive API docs (Swagger UI, served locally)")
async def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI over this server's OpenAPI schema, from the vendored `swagger-ui-dist` files."""
    app = request.app
    page = _DOCS_PAGE.format(title=escape(app.title), openapi_url=escape(app.openapi_url or "/openapi.json"))
    return HTMLResponse(page)


@router.get("/favicon.ico", summary="The page icon (SVG)")
async def favicon() -> FileResponse:
    """The page icon (an SVG; browsers ask for /favicon.ico whatever the format)."""
    return FileResponse(FAVICON, media_type="image/svg+xml")
