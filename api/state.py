"""The application object every router shares: settings, the pipeline, the generation limiter and the metrics,
plus the one mapping of answer-path failures to HTTP that every answer route uses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.limits import GenerationLimiter
from api.observability import Metrics, log_event
from api.security import AdminGuard, client_address
from api.streaming import ClientGone, answer_unless_disconnected
from rag.generators import ContextOverflowError, GeneratorError
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.types import Answer, Turn

RETRY_AFTER_S = "2"


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None, **extra: Any
) -> JSONResponse:
    """Every error this API sends: `{"error": what to fix, "detail": ...}`."""
    return JSONResponse({"error": message, "detail": detail, **extra}, status_code=status, headers=headers)


class AppState:
    """What the routes act on; one per app, built at start-up (or handed in by tests that share a model)."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.limiter = GenerationLimiter(settings.max_concurrent_generations, settings.max_queued_generations)
        self.metrics = Metrics()

    def saturated(self) -> JSONResponse:
        """503 with Retry-After: every generation place and queue place is taken."""
        self.metrics.saturated.inc()
        return error_response(
            503, "the answer generator is busy; retry shortly", headers={"Retry-After": RETRY_AFTER_S}
        )

    def record(self, answer: Answer) -> None:
        """Count and log a finished answer."""
        self.metrics.observe_answer(answer.abstained, answer.abstain_reason, answer.timings_ms)
        log_event(
            "answer",
            abstained=answer.abstained,
            reason=answer.abstain_reason,
            citations=len(answer.citations),
            timings_ms=answer.timings_ms,
            prompt_tokens=answer.prompt_tokens,
        )

    def check_question(self, question: str, field: str = "question") -> None:
        """422 naming `field` when the question is over `RAG_MAX_QUESTION_CHARS`: cutting it would drop its end,
        which is where a pasted text usually puts the question."""
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", field),
                        "msg": f"the question is {len(question)} characters; this server takes at most {limit}",
                        "type": "too_long",
                    }
                ]
            )

    async def answer(
        self,
        question: str,
        history: list[Turn],
        top_k: int | None,
        request: Request | None = None,
        field: str = "question",
    ) -> Answer:
        """The checked answer; failures become the HTTP errors every answer route shares: a prompt over the
        model's context is the client's to shorten (422 naming `field`), a generator failure is 503."""
        self.check_question(question, field)
        try:
            answer = await answer_unless_disconnected(
                self.pipeline.stream(question, history=history, top_k=top_k), request
            )
        except ContextOverflowError as error:
            raise RequestValidationError(
                [{"loc": ("body", field), "msg": str(error), "type": "context_overflow"}]
            ) from error
        except GeneratorError as error:
            self.metrics.errors.labels(kind="generator").inc()
            raise HTTPException(503, f"the answer generator failed: {error}", {"Retry-After": "5"}) from error
        except ClientGone as gone:
            # Nobody is listening; the status is only for the log line.
            raise HTTPException(499, "the client closed the connection; the answer was stopped") from gone
        self.record(answer)
        return answer


# Dependencies are coroutines: FastAPI runs a plain `def` dependency on a worker thread, one hop per request.
async def _state(request: Request) -> AppState:
    rag_state: AppState = request.app.state.rag
    return rag_state


State = Annotated[AppState, Depends(_state)]


# Declares the bearer scheme in the API docs (Swagger UI's Authorize button, clients' generated auth);
# `require_admin` reads the header itself, as the guard middleware does.
ADMIN_TOKEN = HTTPBearer(
    scheme_name="adminToken", description="`RAG_ADMIN_TOKEN`, for document changes.", auto_error=False
)


async def require_admin(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(ADMIN_TOKEN)] = None
) -> None:
    """The admin token, for routes outside /api/documents (those are checked before their body is read)."""
    guard: AdminGuard = request.app.state.admin_guard
    refusal = guard.check(request.headers.get("authorization"), client_address(request.scope))
    if refusal is not None:
        raise HTTPException(refusal.status, refusal.message, refusal.headers or None)
