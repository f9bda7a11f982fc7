"""Every operation of the OpenAPI schema, fuzzed by schemathesis against the real app on loopback.

The server is `api.app.create_app` under uvicorn (`LiveServer`) over its own copy of the article index in a
temporary directory, with an admin token, so uploads and deletes are fuzzed too and change nothing another test
reads. Its generator is `rag.testing.ScriptedGenerator`, a *fake* that answers every prompt with one cited
sentence, so the answer routes stay fast; retrieval, the answer checks, citations, streaming and every HTTP
layer are real.

schemathesis runs as its CLI would with `--checks all`: the examples, coverage, fuzzing and stateful phases,
and every check, all of them on by default in its config (server errors; status codes, content types, bodies
and headers against the schema, the event streams' events included; invalid data rejected and valid data
accepted; unsupported methods and `Allow`; auth honoured; resources available after creation and gone after
deletion). Four settings narrow a check, each for a reason given where it is set. It is driven through its
engine because its pytest plugin does not run under pytest 9.2, whose nodes no longer have the `_nodeid` the
plugin rewrites.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from api.app import create_app
from rag.settings import Settings
from rag.testing import ScriptedGenerator
from tests.conftest import LiveServer, server_pipeline

TOKEN = "fuzz-admin-token"
# The scripted model's reply to every prompt: a sentence the article supports, with a citation, so answers go
# through the citation and evidence checks and come back with citations for the schema check to read.
ANSWER = "He agreed to expand cooperation in collecting and sharing intelligence on the Soviet Union [1]."
EXAMPLES = 30
# Each answer embeds the question and checks a draft: fewer examples keep the file well inside its deadline.
ANSWER_EXAMPLES = 10
ANSWER_PATHS = "^/(api/ask|v1/chat/completions)"
# A bound on the whole run, not a budget: passing it fails the test rather than testing less in silence.
DEADLINE_S = 150.0
# schemathesis's expected statuses, plus 413: the body limit (RAG_MAX_BODY_BYTES, documented on every route)
# refuses a body by its size in bytes, which a schema cannot state; 40 turns of 8,000 characters each are
# schema-valid and over 64 kB. So a valid body may get 413, and an invalid one is rejected by 413 too.
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
NEGATIVE_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
# Two operations refuse schema-valid input for reasons JSON Schema cannot express, with a 422 naming the field:
# the last chat message must be a non-empty user message (no keyword constrains an array's last item), and an
# upload must be UTF-8 text with something in it (and named .txt, .md or .html).
SEMANTIC_422 = ("POST /api/documents", "POST /v1/chat/completions")
# The checks that must have passed somewhere for the run to count: a run that quietly skipped them proves nothing.
REQUIRED_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
}


@dataclass
class FuzzReport:
    """What one schemathesis run found and did."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tested: set[str] = field(default_factory=set)
    checks_passed: Counter[str] = field(default_factory=Counter)
    # "POST /api/documents 201" → how many responses.
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    stopped_at_deadline: bool = False

    def problems(self) -> str:
        """Every distinct failure and error, with a curl line to reproduce each failure."""
        return "\n\n".join([*self.failures, *self.errors])


def fuzz_config() -> schemathesis.Config:
    """All phases, the admin token for the write routes, bounded examples per operation, and the expected statuses
    of the two data checks where a schema cannot say everything."""
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"adminToken": {"bearer": TOKEN}}},
            "request-timeout": 30,
            "generation": {"max-examples": EXAMPLES},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES},
                "negative_data_rejection": {"expected-statuses": NEGATIVE_STATUSES},
            },
            "operations": [
                {"include-path-regex": ANSWER_PATHS, "generation": {"max-examples": ANSWER_EXAMPLES}},
                # Off for one reason: an upload with `replace=true` removes every earlier upload of its file name, by
                # design, and every fuzzed upload is `notes.md` (the schema's example); so a stateful sequence's
                # document can be gone by the time it is read or deleted, and this check knows only DELETE removes.
                {
                    "include-path": "/api/documents/{doc_id}",
                    "checks": {"ensure_resource_availability": {"enabled": False}},
                },
                # Off for one reason: in a multipart body every part is bytes, so the type mutations this check
                # counts on do not survive the wire (an "integer" file is a file holding digits, a valid upload).
                # Invalid uploads are still sent, and must still not be answered with a server error.
                {
                    "include-name": "POST /api/documents",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
                *(
                    {
                        "include-name": name,
                        "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "422"]}},
                    }
                    for name in SEMANTIC_422
                ),
            ],
        }
    )


def run_schemathesis(url: str, deadline_s: float = DEADLINE_S) -> FuzzReport:
    """Run every operation of the schema served at `url` through every check; stop at `deadline_s`."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=fuzz_config())
    report = FuzzReport()
    seen: set[tuple[str, str, str]] = set()
    started = time.monotonic()
    stream = from_schema(schema).execute()
    for event in stream:
        if time.monotonic() - started > deadline_s and not report.stopped_at_deadline:
            report.stopped_at_deadline = True
            stream.stop()
        if isinstance(event, events.ScenarioFinished):
            if event.label and event.status != Status.SKIP:
                report.tested.add(event.label)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    path = httpx.URL(interaction.request.uri).path
                    report.statuses[f"{interaction.request.method} {path} {interaction.response.status_code}"] += 1
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    if node.status == Status.SUCCESS:
                        report.checks_passed[node.name] += 1
                    if node.status != Status.FAILURE or node.failure_info is None:
                        continue
                    failure = node.failure_info.failure
                    key = (str(event.label), node.name, failure.title)
                    if key in seen:
                        continue
                    seen.add(key)
                    response = event.recorder.find_response(case_id=case_id)
                    answered = f" (answered {response.status_code})" if response is not None else ""
                    report.failures.append(
                        f"[{event.phase.value}] {event.label or 'a stateful sequence'}: {node.name}: "
                        f"{failure.title}{answered}\n{failure.message}\n{node.failure_info.code_sample}"
                    )
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"[{event.phase}] {event.label}: {event.info.title}\n{event.info.message}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
    report.seconds = time.monotonic() - started
    return report


@pytest.fixture(scope="module")
def fuzzed_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app over its own index; fuzzed uploads, deletes and feedback land in a temporary directory."""
    home = tmp_path_factory.mktemp("schemathesis")
    own, pipeline = server_pipeline(settings, ScriptedGenerator(default=ANSWER), home / "index")
    own = own.with_overrides(
        admin_token=TOKEN,
        # The auth check sends wrong tokens on purpose; the default lockout would then refuse the right one.
        admin_max_failures=1_000_000,
        feedback_path=home / "feedback.jsonl",
        # Small uploads: a fuzzed 2 MB text would spend the deadline embedding.
        max_upload_bytes=20_000,
    )
    with LiveServer(create_app(own, pipeline)) as server:
        yield server


def test_every_operation_conforms_to_the_schema(fuzzed_server: LiveServer) -> None:
    paths = httpx.get(f"{fuzzed_server.url}/openapi.json").json()["paths"]
    operations = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    report = run_schemathesis(fuzzed_server.url)
    print(
        f"schemathesis: {len(report.tested)} operations in {report.seconds:.0f} s; checks passed: {report.checks_passed}"
    )
    print("responses:", dict(sorted(report.statuses.items())))
    assert not report.problems(), report.problems()
    assert not report.stopped_at_deadline, f"the run passed its {DEADLINE_S:g} s deadline"
    assert report.tested == operations, f"never tested: {sorted(operations - report.tested)}"
    assert set(report.checks_passed) >= REQUIRED_CHECKS, (
        f"never ran: {sorted(REQUIRED_CHECKS - set(report.checks_passed))}"
    )
    # The runs reached past the guards: answers, streams and a document write each succeeded at least once.
    for status in ("POST /api/ask 200", "POST /api/ask/stream 200", "POST /v1/chat/completions 200"):
        assert report.statuses[status], f"no {status}"
    assert report.statuses["POST /api/documents 201"], "no upload was ever indexed"
