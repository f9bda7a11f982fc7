"""Browser fixtures: Debian's chromium driven by Playwright, and a real server whose generator is scripted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from index.loaders import load_documents
from rag.settings import Settings
from tests.conftest import LiveServer, server_pipeline
from tests.web.scripted import Script, ScriptedGenerator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

DENG_QUESTION = "What did Deng agree in 1979?"
# Copied from the article, so every check (the judge, citation and evidence checks) can confirm it.
DENG_DRAFT = "He agreed to expand cooperation in collecting and sharing intelligence on the Soviet Union [1]."
VLADIVOSTOK_QUESTION = "What is the population of Vladivostok?"
# An invented figure (the one the issue saw on screen): the judge says no, the evidence is missing.
VLADIVOSTOK_DRAFT = "The population of Vladivostok is 1,000,000 [1]."
ENDLESS_QUESTION = "Tell me everything about Deng Xiaoping and the Soviet Union"
HARBOUR_QUESTION = "When does the harbour master post the tide tables?"

MALICIOUS_MARKDOWN = """# Harbour tide bulletin

The harbour master posts the tide tables every Monday at the north pier, and **spring tides** reach 4.2 metres.

<img src=x onerror="window.__pwned = 'img'; alert('img')">

<script>window.__pwned = 'script'; alert('script')</script>

See [the tide office](javascript:window.__pwned='link') before sailing.

<div style="position:fixed;inset:0;background:red" onclick="window.__pwned='div'">Free tides here</div>

![tracking pixel](http://tracker.invalid/pixel.png)
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required for the browser tests: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@dataclass
class ScriptedServer:
    """A real server over the article (plus a document full of HTML that must never run) whose
    generator is the scripted FAKE."""

    server: LiveServer
    fake: ScriptedGenerator
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def scripted_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedServer]:
    from api.app import create_app

    fake = ScriptedGenerator(
        {
            DENG_QUESTION: Script(DENG_DRAFT, verdict="yes"),
            VLADIVOSTOK_QUESTION: Script(VLADIVOSTOK_DRAFT, verdict="no"),
            ENDLESS_QUESTION: Script("Deng", endless=True),
        }
    )
    root = tmp_path_factory.mktemp("scripted")
    own, pipeline = server_pipeline(settings, fake, root / "index")
    bulletin = root / "harbour-bulletin.md"
    bulletin.write_text(MALICIOUS_MARKDOWN, encoding="utf-8")
    pipeline.index.add(load_documents(bulletin))
    # No admin token: this server refuses document changes, and the page must not offer them.
    own = own.with_overrides(feedback_path=root / "feedback.jsonl", max_concurrent_generations=1)
    with LiveServer(create_app(own, pipeline)) as server:
        yield ScriptedServer(server, fake, own)
