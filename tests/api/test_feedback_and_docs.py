"""`POST /api/feedback`, `changes_allowed` in the health response, the offline `/docs` page and the
favicon, through a real uvicorn server on loopback. These routes never call the generator, so the
server's generator is the scripted FAKE of the browser tests (it is never asked anything here)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from api.app import create_app
from api.schemas import RequestBody
from index.store import PassageIndex
from rag.pipeline import Pipeline
from rag.settings import Settings
from tests.conftest import LiveServer
from tests.web.scripted import ScriptedGenerator


def documented_models() -> list[type[BaseModel]]:
    """Every pydantic model the API's request and response bodies are made of (`api.schemas` and the routes)."""
    from api import schemas
    from api.routes import documents, feedback, openai, questions, service

    found: dict[str, type[BaseModel]] = {}
    for module in (schemas, documents, feedback, openai, questions, service):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__.startswith("api."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


GOOD = {
    "question": "What did Deng agree in 1979?",
    "answer": "He agreed to expand cooperation in sharing intelligence on the Soviet Union [1].",
    "rating": "up",
}


def serve(settings: Settings, index: PassageIndex, **overrides: object) -> LiveServer:
    own = settings.with_overrides(**overrides)
    return LiveServer(create_app(own, Pipeline(own, index, ScriptedGenerator({}))))


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feedback") / "nested" / "feedback.jsonl"


@pytest.fixture(scope="module")
def client(settings: Settings, article_index: PassageIndex, feedback_file: Path) -> Iterator[httpx.Client]:
    with (
        serve(settings, article_index, feedback_path=feedback_file, admin_token="secret") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        yield http


class TestFeedback:
    def test_a_rating_is_appended_as_one_json_line(self, client: httpx.Client, feedback_file: Path) -> None:
        first = client.post("/api/feedback", json=GOOD)
        assert first.status_code == 201, first.text
        second = client.post(
            "/api/feedback",
            json={
                **GOOD,
                "rating": "down",
                "note": "no year",
                "abstained": False,
                "citations": [{"doc_id": "d1", "chunk_id": "c1"}],
            },
        )
        assert second.status_code == 201
        lines = [json.loads(line) for line in feedback_file.read_text().splitlines()]
        assert [line["id"] for line in lines[-2:]] == [first.json()["id"], second.json()["id"]]
        assert lines[-2]["rating"] == "up" and lines[-2]["note"] is None and lines[-2]["question"] == GOOD["question"]
        assert lines[-1]["rating"] == "down" and lines[-1]["note"] == "no year"
        assert lines[-1]["citations"] == [{"doc_id": "d1", "chunk_id": "c1"}]
        assert re.match(r"\d{4}-\d\d-\d\dT", lines[-1]["time"])

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({**GOOD, "rating": "meh"}, "rating"),
            ({"answer": GOOD["answer"], "rating": "up"}, "question"),
            ({**GOOD, "answer": "   "}, "answer"),
            ({**GOOD, "note": "x" * 2001}, "note"),
            ({**GOOD, "question": "q" * 2001}, "question"),
            ({**GOOD, "stars": 5}, "stars"),
            ({**GOOD, "citations": [{"doc_id": "d"}]}, "citations.0.chunk_id"),
        ],
    )
    def test_bad_input_is_a_422_naming_the_field(
        self, client: httpx.Client, feedback_file: Path, body: dict[str, object], field: str
    ) -> None:
        before = feedback_file.read_text() if feedback_file.exists() else ""
        response = client.post("/api/feedback", json=body)
        assert response.status_code == 422
        payload = response.json()
        assert field in payload["error"]
        assert any(item["field"] == field for item in payload["detail"])
        assert (feedback_file.read_text() if feedback_file.exists() else "") == before  # nothing stored

    def test_each_cited_passage_is_stored_with_its_text(
        self, client: httpx.Client, feedback_file: Path, article_index: PassageIndex
    ) -> None:
        # The page sends ids only; the server adds the passage text it holds, which `rag eval --feedback`
        # turns into evidence. An id it does not know is stored as it came.
        chunk = next(c for c in article_index.chunks() if "Deng" in c.text)
        cited = [{"doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id}, {"doc_id": chunk.doc_id, "chunk_id": "gone#9"}]
        response = client.post("/api/feedback", json={**GOOD, "citations": cited})
        assert response.status_code == 201
        stored = json.loads(feedback_file.read_text().splitlines()[-1])
        assert stored["id"] == response.json()["id"]
        assert stored["citations"] == [{**cited[0], "text": chunk.text}, cited[1]]

    def test_an_unwritable_file_is_a_clear_500_and_the_server_keeps_serving(
        self, settings: Settings, article_index: PassageIndex, tmp_path: Path
    ) -> None:
        # Failure injection: the configured path is a directory, so the append fails.
        with serve(settings, article_index, feedback_path=tmp_path) as server:
            response = httpx.post(f"{server.url}/api/feedback", json=GOOD)
            assert response.status_code == 500
            assert "feedback could not be stored" in response.json()["error"]
            assert httpx.get(f"{server.url}/api/health").status_code == 200


class TestHealthAndDocs:
    def test_changes_allowed_follows_the_admin_token(
        self, client: httpx.Client, settings: Settings, article_index: PassageIndex
    ) -> None:
        assert client.get("/api/health").json()["changes_allowed"] is True
        with serve(settings, article_index) as server:
            assert settings.admin_token is None
            assert httpx.get(f"{server.url}/api/health").json()["changes_allowed"] is False

    def test_docs_page_uses_only_files_served_here(self, client: httpx.Client) -> None:
        page = client.get("/docs")
        assert page.status_code == 200
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
        assert scripts, "the page loads Swagger UI"
        for attributes, body in scripts:
            assert body.strip() == "", "no inline script (the CSP forbids them)"
            source = re.search(r'src="([^"]+)"', attributes)
            assert source and source.group(1).startswith("/static/")
        for url in re.findall(r'(?:href|src)="([^"]+)"', page.text):
            assert url.startswith("/"), f"{url} is not on this server"
            assert client.get(url).status_code == 200, url
        assert "style=" not in page.text
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["paths"]["/api/feedback"]["post"]["summary"]

    def test_every_operation_has_a_summary_and_every_request_body_an_example(self, client: httpx.Client) -> None:
        spec = client.get("/openapi.json").json()
        schemas = spec["components"]["schemas"]
        operations = 0
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                operations += 1
                name = f"{method.upper()} {path}"
                summary = operation.get("summary", "")
                assert summary.strip(), f"{name} has no summary"
                # FastAPI's fallback is the handler's name in title case ("Ask Stream"): a summary must be written.
                handler = operation["operationId"].removesuffix(re.sub(r"\W", "_", path) + "_" + method)
                assert handler != operation["operationId"], "FastAPI names operations `<handler><path>_<method>`"
                assert summary != handler.replace("_", " ").title(), f"{name}: {summary!r} is FastAPI's fallback"
                body = operation.get("requestBody")
                for media_type, content in (body or {}).get("content", {}).items():
                    schema = content["schema"]
                    if "$ref" in schema:
                        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
                    examples = content.get("example") or content.get("examples") or schema.get("examples")
                    assert examples, f"{name}: its {media_type} body has no example"
        assert operations >= 11, "the loop saw every route"

    def test_the_schema_documents_the_error_body_the_api_sends(self, client: httpx.Client) -> None:
        spec = client.get("/openapi.json").json()
        documented = spec["paths"]["/api/ask"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert documented == {"$ref": "#/components/schemas/ErrorBody"}
        assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "detail"}
        real = client.post("/api/ask", json={"question": " "})
        assert real.status_code == 422 and set(real.json()) == {"error", "detail"}
        assert "HTTPValidationError" not in spec["components"]["schemas"]
        assert spec["components"]["schemas"]["AskRequest"]["properties"]["question"]["description"]

    def test_health_documents_no_validation_error_it_cannot_send(self, client: httpx.Client) -> None:
        # It takes no parameters and no body: a 422 never comes, so the schema does not promise one.
        responses = client.get("/openapi.json").json()["paths"]["/api/health"]["get"]["responses"]
        assert "422" not in responses and {"200", "413"} <= set(responses)
        assert client.get("/api/health", params={"unexpected": "x"}).status_code == 200

    def test_favicon(self, client: httpx.Client) -> None:
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.lstrip().startswith("<svg")


def api_routes(routes: Iterable[BaseRoute]) -> list[APIRoute]:
    """Every FastAPI route under `routes`, through included routers (FastAPI keeps them nested, each under its
    `original_router`)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found.extend(api_routes(router.routes))
    return found


def test_routes_outside_the_schema_have_summaries_too(settings: Settings) -> None:
    # The page, /docs, the favicon and /metrics are left out of /openapi.json; they are routes all the same.
    routes = api_routes(create_app(settings).routes)
    assert {"/", "/docs", "/favicon.ico", "/metrics"} <= {route.path for route in routes}
    assert [route.path for route in routes if not route.summary] == []


@pytest.mark.parametrize(
    "model",
    [model for model in documented_models() if model.model_json_schema().get("examples")],
    ids=lambda model: model.__name__,
)
def test_each_documented_example_is_valid(model: type[BaseModel]) -> None:
    # As JSON, the way a client sends it and schemathesis's examples phase replays it (request bodies are strict).
    for example in model.model_json_schema()["examples"]:
        model.model_validate_json(json.dumps(example))


def test_every_request_body_model_has_an_example() -> None:
    # The top-level request bodies (their parts, such as a chat message, are shown inside their examples).
    bodies = [
        model for model in documented_models() if issubclass(model, RequestBody) and model.__name__.endswith("Request")
    ]
    assert {model.__name__ for model in bodies} >= {"AskRequest", "SearchRequest", "FeedbackRequest"}
    assert [model.__name__ for model in bodies if not model.model_json_schema().get("examples")] == []


def test_a_lower_question_limit_applies_to_every_answer_route(settings: Settings, article_index: PassageIndex) -> None:
    long_question = "What did Deng agree in 1979? " * 5  # 145 characters
    chat = {"messages": [{"role": "user", "content": long_question}]}
    with serve(settings, article_index, max_question_chars=100) as server, httpx.Client(base_url=server.url) as http:
        for path, body, field in (
            ("/api/ask", {"question": long_question}, "question"),
            ("/api/ask/stream", {"question": long_question}, "question"),
            ("/v1/chat/completions", chat, "messages"),
            ("/v1/chat/completions", {**chat, "stream": True}, "messages"),
        ):
            response = http.post(path, json=body)
            assert response.status_code == 422, (path, response.text)
            assert [d["field"] for d in response.json()["detail"]] == [field]
            assert "at most 100" in response.json()["error"]
