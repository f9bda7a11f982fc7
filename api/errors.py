"""Every error as JSON `{"error": what to fix, "detail": ...}`: validation (422 naming the field), HTTP errors
(the router's own 404/405 included) and, as a last resort, 500 without internals."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.security import internal_error_response
from api.state import error_response


def _utf8_safe(text: str) -> str:
    # A field name the client sent may hold a lone surrogate, which the JSON encoder cannot write.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_errors(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """One readable message ("invalid request: question: ...") and the per-field details."""
    details = []
    for item in error.errors():
        location = [_utf8_safe(str(part)) for part in item.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]  # where the field was sent, not its name
        field = ".".join(location) or "body"
        details.append({"field": field, "message": _utf8_safe(str(item.get("msg", "invalid")))})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return f"invalid request: {summary}", details


async def _on_invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    message, details = field_errors(error)
    return error_response(422, message, detail=details)


# What `Allow` may name: every method a route here can declare.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path, asked of the routes as the router asks them. Starlette's 405
    names only the first matching route's methods, so `/api/documents` would answer `Allow: GET` and hide POST."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 400:
        # Only the body parsers raise 400 here (FastAPI's, for JSON that is not UTF-8; Starlette's, for a broken
        # multipart body): an unreadable body is invalid input, 422 like JSON that does not parse. (The Host
        # refusal, this API's one 400, is answered by its middleware.)
        message = str(error.detail)
        return error_response(422, f"invalid request: body: {message}", detail=[{"field": "body", "message": message}])
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return error_response(error.status_code, str(error.detail), headers=headers)


async def _on_unhandled(request: Request, error: Exception) -> JSONResponse:
    # Last resort behind InternalErrorMiddleware (an error raised in the logging middleware itself).
    return internal_error_response("unlogged")


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors for validation, HTTP errors and anything unhandled."""
    app.add_exception_handler(RequestValidationError, _on_invalid)
    # Starlette's class, not FastAPI's subclass: the router's own 404 and 405 are Starlette's.
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unhandled)
