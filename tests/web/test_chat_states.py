"""The chat page's states in a real browser against a real server whose generator is the scripted FAKE
(tests/web/scripted.py): provisional draft → confirmed or retracted, Stop, queueing, reload, limits,
the reading panel on a phone, dark theme, feedback, offline /docs, and documents that try to run code.

The fake makes the states deterministic and fast; the real model's answers are covered by
test_chat_page.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Locator, Page, Request, Route, expect

from rag.types import Citation
from tests.conftest import artifact_dir
from tests.web.conftest import (
    DENG_QUESTION,
    ENDLESS_QUESTION,
    HARBOUR_QUESTION,
    VLADIVOSTOK_DRAFT,
    VLADIVOSTOK_QUESTION,
    ScriptedServer,
)

SHOTS = artifact_dir("screenshots")
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.browser


@pytest.fixture
def server(scripted_server: ScriptedServer) -> Iterator[ScriptedServer]:
    scripted_server.fake.release()
    yield scripted_server
    scripted_server.fake.release()  # never leave a held answer for the next test


def open_page(browser: Browser, server: ScriptedServer, **context_options: object) -> tuple[BrowserContext, Page]:
    options = {"viewport": {"width": 1100, "height": 800}, **context_options}
    context = browser.new_context(**options)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(server.url)
    return context, page


@pytest.fixture
def page(browser: Browser, server: ScriptedServer) -> Iterator[Page]:
    context, page = open_page(browser, server)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    # The server's Content-Security-Policy allows no inline script or style: the page must need neither.
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors


def ask(page: Page, question: str) -> None:
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


def bot(page: Page, n: int = -1) -> Locator:
    messages = page.locator("li.msg.bot")
    return messages.last if n == -1 else messages.nth(n)


RECORD_STAGES = """() => {
  window.__stages = [];
  new MutationObserver(() => {
    const stage = document.querySelector("li.msg.bot:last-child .stage")?.dataset.stage;
    if (stage && window.__stages.at(-1) !== stage) window.__stages.push(stage);
  }).observe(document.getElementById("messages"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-stage"] });
}"""


def wait_for_draft(page: Page, server: ScriptedServer, message: Locator) -> None:
    assert server.fake.draft_written.wait(TIMEOUT_MS / 1000), "the fake never finished its draft"
    expect(message.locator(".draft.provisional .draft-text")).not_to_be_empty()


class TestHonestStreaming:
    def test_draft_is_provisional_until_the_checks_confirm_it(self, page: Page, server: ScriptedServer) -> None:
        page.evaluate(RECORD_STAGES)
        server.fake.hold()
        ask(page, DENG_QUESTION)
        message = bot(page)
        # Sources arrive with the `passages` event, before any answer text.
        expect(message.locator(".sources .card").first).to_be_visible(timeout=TIMEOUT_MS)
        expect(message.locator(".card-snippet").first).not_to_be_empty()
        wait_for_draft(page, server, message)
        draft = message.locator(".draft.provisional")
        expect(draft).to_contain_text("He agreed to expand cooperation")
        expect(draft).to_contain_text("checking against the sources")
        expect(message).to_have_class("msg bot pending")
        expect(message.locator(".answer-text")).to_have_count(0)  # nothing is presented as the answer yet
        style = draft.evaluate(
            "d => ({border: getComputedStyle(d).borderStyle, text: getComputedStyle(d.querySelector('.draft-text')).fontStyle})"
        )
        assert style == {"border": "dashed", "text": "italic"}, style
        page.screenshot(path=SHOTS / "20-draft-provisional.png")

        server.fake.release()  # the draft is complete: the pipeline checks it and says so

        expect(message).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        assert page.evaluate("window.__stages") == ["searching", "writing", "checking"]
        expect(message.locator(".draft")).to_have_count(0)
        expect(message.locator(".answer-text")).to_contain_text("intelligence on the Soviet Union")
        expect(message.locator(".sources[aria-label='Sources'] .card")).to_have_count(1)
        expect(message.locator(".timings")).to_be_visible()
        page.screenshot(path=SHOTS / "22-confirmed.png")

        message.locator("button.cite").first.click()
        panel = page.locator("#passage-panel")
        expect(panel).to_be_visible()
        marks = panel.locator("mark.passage")
        expect(marks.first).to_be_visible()
        highlighted = " ".join(marks.all_inner_texts())
        assert "Deng Xiaoping" in highlighted
        expect(panel.locator("#passage-document h1")).to_contain_text("no limits")  # rendered Markdown
        if "support_start" in Citation.model_fields:
            expect(panel.locator("mark.support").first).to_contain_text("sharing intelligence")
        page.screenshot(path=SHOTS / "23-reading-panel.png")

    def test_draft_that_fails_the_checks_is_retracted(self, page: Page, server: ScriptedServer) -> None:
        server.fake.hold()
        ask(page, VLADIVOSTOK_QUESTION)
        message = bot(page)
        wait_for_draft(page, server, message)
        expect(message.locator(".draft.provisional")).to_contain_text("1,000,000")
        page.screenshot(path=SHOTS / "24-draft-before-retraction.png")
        server.fake.release()

        expect(message).to_have_class("msg bot abstained", timeout=TIMEOUT_MS)
        expect(message.locator(".answer-text")).to_have_text("The documents don't say.")
        expect(message.locator(".retracted-note")).to_have_text(
            "A draft answer was not supported by the sources, so it is not shown."
        )
        expect(message.locator(".draft")).to_have_count(0)
        assert VLADIVOSTOK_DRAFT not in message.inner_text()
        assert "1,000,000" not in message.inner_text()
        expect(message.locator(".sources[aria-label='Closest passages'] .card").first).to_be_visible()
        page.screenshot(path=SHOTS / "25-retracted.png")


class TestControl:
    def test_stop_cancels_the_generation_and_the_next_question_is_answered(
        self, page: Page, server: ScriptedServer
    ) -> None:
        closed_before = server.fake.closed_early
        ask(page, ENDLESS_QUESTION)
        message = bot(page, 0)
        expect(message.locator(".draft-text")).to_contain_text("Deng 3", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Stop").click()
        expect(message).to_have_class("msg bot stopped")
        expect(message.locator(".draft")).to_have_count(0)
        expect(page.get_by_role("button", name="Stop")).to_be_hidden()
        # The server must close the generator when the client goes away (the endless script would
        # otherwise write for another minute and keep the only generation slot).
        deadline = time.monotonic() + 10
        while server.fake.closed_early == closed_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.fake.closed_early > closed_before, "the generator kept running after Stop"

        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=15_000)
        page.screenshot(path=SHOTS / "26-after-stop.png")
        bot(page, 0).get_by_role("button", name="Ask again").click()  # the stopped question is not lost either
        expect(bot(page, 0).locator(".draft-text")).to_contain_text("Deng 3", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Stop").click()
        expect(bot(page, 0)).to_have_class("msg bot stopped", timeout=TIMEOUT_MS)

    def test_a_question_sent_while_busy_is_queued_not_lost(self, page: Page, server: ScriptedServer) -> None:
        server.fake.hold()
        ask(page, DENG_QUESTION)
        wait_for_draft(page, server, bot(page))
        ask(page, VLADIVOSTOK_QUESTION)
        expect(page.locator("li.msg.user")).to_have_count(2)
        expect(page.locator("li.msg.user").last).to_have_text(VLADIVOSTOK_QUESTION)
        expect(bot(page, 1)).to_have_class("msg bot pending queued")
        expect(page.locator("#question-help")).to_contain_text("Queued")
        expect(page.get_by_label("Your question")).to_have_value("")
        page.screenshot(path=SHOTS / "27-queued.png")
        server.fake.release()
        expect(bot(page, 0)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        expect(bot(page, 1)).to_have_class("msg bot abstained", timeout=TIMEOUT_MS)

    def test_new_chat_aborts_the_answer_and_starts_a_clean_history(self, page: Page, server: ScriptedServer) -> None:
        bodies: list[dict[str, object]] = []

        def record(request: Request) -> None:
            if request.url.endswith("/api/ask/stream"):
                bodies.append(json.loads(request.post_data or "{}"))

        page.on("request", record)
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        server.fake.hold()
        ask(page, VLADIVOSTOK_QUESTION)
        wait_for_draft(page, server, bot(page))
        page.get_by_role("button", name="New chat").click()
        expect(page.locator("li.msg")).to_have_count(0)
        expect(page.locator("#empty-state")).to_be_visible()
        expect(page.locator("#question-help")).to_have_text("New chat started.")
        server.fake.release()
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        expect(page.locator("li.msg")).to_have_count(2)  # nothing of the old chat came back
        assert len(bodies) == 3
        assert len(bodies[1]["history"]) == 2  # type: ignore[arg-type]
        assert bodies[2]["history"] == []

    def test_regenerate_asks_again_in_place(self, page: Page, server: ScriptedServer) -> None:
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        started = server.fake.answers_started
        bot(page).get_by_role("button", name="Regenerate the answer").click()
        deadline = time.monotonic() + 10
        while server.fake.answers_started == started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.fake.answers_started == started + 1, "Regenerate did not ask the server again"
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        expect(page.locator("li.msg")).to_have_count(2)  # the same turn, answered again

    def test_error_keeps_the_question_and_retry_answers_it(self, page: Page, server: ScriptedServer) -> None:
        # Failure injection: the first request is cut off at the network level.
        calls = {"n": 0}

        def fail_once(route: Route) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                route.abort("connectionreset")
            else:
                route.continue_()

        page.route("**/api/ask/stream", fail_once)
        ask(page, DENG_QUESTION)
        message = bot(page)
        expect(message).to_have_class("msg bot error", timeout=TIMEOUT_MS)
        expect(message).to_contain_text("Could not reach the server")
        expect(page.locator("li.msg.user")).to_have_text(DENG_QUESTION)
        message.get_by_role("button", name="Retry").click()
        expect(message).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)


class TestNothingTypedIsLost:
    def test_reload_keeps_the_conversation_and_the_unsent_text(self, page: Page, server: ScriptedServer) -> None:
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        page.get_by_label("Your question").fill("half-typed follow-up")
        page.reload()
        expect(page.locator("li.msg.user")).to_have_text(DENG_QUESTION)
        expect(bot(page).locator(".answer-text")).to_contain_text("intelligence on the Soviet Union")
        expect(page.get_by_label("Your question")).to_have_value("half-typed follow-up")
        bot(page).locator("button.cite").first.click()  # citations still open their passage
        expect(page.locator("#passage-panel mark.passage").first).to_be_visible()
        page.keyboard.press("Escape")
        page.screenshot(path=SHOTS / "28-after-reload.png")

        page.get_by_role("button", name="Clear it").click()
        expect(page.locator("li.msg")).to_have_count(0)
        page.reload()
        expect(page.locator("#empty-state")).to_be_visible()
        expect(page.locator("li.msg")).to_have_count(0)

    def test_an_answer_interrupted_by_a_reload_keeps_its_question(self, page: Page, server: ScriptedServer) -> None:
        server.fake.hold()
        ask(page, VLADIVOSTOK_QUESTION)
        wait_for_draft(page, server, bot(page))
        page.reload()
        server.fake.release()
        message = bot(page)
        expect(page.locator("li.msg.user")).to_have_text(VLADIVOSTOK_QUESTION)
        expect(message).to_have_class("msg bot error")
        expect(message).to_contain_text("reloaded")
        message.get_by_role("button", name="Retry").click()
        expect(message).to_have_class("msg bot abstained", timeout=TIMEOUT_MS)

    def test_an_over_long_question_is_refused_with_its_text_kept(self, page: Page, server: ScriptedServer) -> None:
        question = "background " * 190 + "so what did Deng agree in 1979?"
        assert len(question) > 2000
        box = page.get_by_label("Your question")
        box.fill(question)
        counter = page.locator("#char-count")
        expect(counter).to_have_text(f"{len(question):,} / 2,000")
        expect(counter).to_have_class("over")
        box.press("Enter")
        expect(page.locator("#question-help")).to_contain_text("Not sent")
        expect(page.locator("#question-help")).to_contain_text("limit is 2,000")
        expect(box).to_have_value(question)  # nothing cut, nothing lost
        expect(page.locator("li.msg")).to_have_count(0)
        page.screenshot(path=SHOTS / "29-too-long.png")
        box.fill("What did Deng agree in 1979?")
        expect(counter).to_have_text("28 / 2,000")
        expect(counter).not_to_have_class("over")


class TestReadingAndDocuments:
    def test_phone_reading_panel_keeps_its_close_button_visible(self, browser: Browser, server: ScriptedServer) -> None:
        context, page = open_page(
            browser, server, viewport={"width": 390, "height": 740}, is_mobile=True, has_touch=True
        )
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        bot(page).locator("button.cite").first.click()
        panel = page.locator("#passage-panel")
        expect(panel.locator("mark.passage").first).to_be_in_viewport()
        assert page.locator("#passage-scroll").evaluate("e => e.scrollTop") > 0, "the panel scrolled to the passage"
        close = panel.get_by_role("button", name="Close the passage")
        expect(close).to_be_in_viewport()
        box = close.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 740
        page.screenshot(path=SHOTS / "30-phone-reading-panel.png")
        close.tap()
        expect(panel).to_be_hidden()
        context.close()

    def test_documents_open_to_read_and_changes_are_not_offered_when_refused(
        self, page: Page, server: ScriptedServer
    ) -> None:
        page.get_by_role("button", name="Documents").click()
        panel = page.locator("#documents-panel")
        expect(panel.locator("tbody tr")).to_have_count(2)
        expect(panel.locator("#upload-form")).to_be_hidden()
        expect(panel.get_by_role("button", name="Remove")).to_have_count(0)
        expect(panel.locator("#changes-off")).to_be_visible()
        panel.get_by_role("button", name="Read China’s “no limits” partnership with Russia").click()
        reading = page.locator("#passage-panel")
        expect(reading.locator("#passage-title")).to_have_text("China’s “no limits” partnership with Russia")
        expect(reading.locator("#passage-document h1")).to_be_visible()
        expect(reading.locator("#passage-document em").first).to_contain_text("Joseph R. DeTrani")

    def test_a_malicious_document_runs_nothing(self, page: Page, server: ScriptedServer) -> None:
        dialogs: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.get_by_role("button", name="Documents").click()
        page.get_by_role("button", name="Read Harbour tide bulletin").click()
        document = page.locator("#passage-document")
        expect(document.locator("h1")).to_have_text("Harbour tide bulletin")
        expect(document.locator("strong")).to_have_text("spring tides")
        expect(document).to_contain_text("<script>window.__pwned")  # shown as the text it is
        self.assert_inert(page, document, dialogs)
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")

        # The same document opened at a highlighted passage (markers inserted before rendering).
        ask(page, HARBOUR_QUESTION)
        message = bot(page)
        expect(message).to_have_class("msg bot abstained", timeout=TIMEOUT_MS)
        message.get_by_role("button", name="Open source 1: Harbour tide bulletin").click()
        expect(document.locator("mark.passage").first).to_be_visible()
        self.assert_inert(page, document, dialogs)
        page.screenshot(path=SHOTS / "31-malicious-document.png")

    @staticmethod
    def assert_inert(page: Page, document: Locator, dialogs: list[str]) -> None:
        page.wait_for_timeout(300)  # give an onerror handler the time to fire, were it present
        for selector in ("script", "img", "[onerror]", "[onclick]", "[style]", "a[href^='javascript']", "div[id]"):
            expect(document.locator(selector)).to_have_count(0)
        assert page.evaluate("window.__pwned") is None
        assert dialogs == []


class TestLookAndFeedback:
    def test_dark_theme_follows_the_system(self, browser: Browser, server: ScriptedServer) -> None:
        context, page = open_page(browser, server, color_scheme="dark")
        ask(page, VLADIVOSTOK_QUESTION)
        expect(bot(page)).to_have_class("msg bot abstained", timeout=TIMEOUT_MS)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
        assert red + green + blue < 120, background
        text = page.evaluate("getComputedStyle(document.body).color")
        assert sum(int(v) for v in text[text.index("(") + 1 : -1].split(",")[:3]) > 600, text
        page.screenshot(path=SHOTS / "32-dark-theme.png")
        context.close()

    def test_answer_never_hides_under_the_question_box(self, page: Page, server: ScriptedServer) -> None:
        for _ in range(3):
            ask(page, DENG_QUESTION)
            expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        last = bot(page).bounding_box()
        box = page.locator("#ask-form").bounding_box()
        assert last is not None and box is not None
        assert last["y"] + last["height"] <= box["y"] + 1, "the newest answer is under the input bar"

    def test_feedback_is_stored_as_a_jsonl_line(self, page: Page, server: ScriptedServer) -> None:
        path = server.settings.feedback_path
        before = path.read_text().splitlines() if path.exists() else []
        ask(page, DENG_QUESTION)
        message = bot(page)
        expect(message).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        message.get_by_role("button", name="Bad answer").click()
        message.get_by_label("Feedback note (optional)").fill("it should give the year too")
        message.get_by_role("button", name="Send feedback").click()
        expect(message.locator(".action-status")).to_have_text("Thanks for the feedback.")
        expect(message.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
        lines = path.read_text().splitlines()
        assert len(lines) == len(before) + 1
        record = json.loads(lines[-1])
        assert record["question"] == DENG_QUESTION
        assert record["rating"] == "down"
        assert record["note"] == "it should give the year too"
        assert "intelligence" in record["answer"]
        assert record["citations"] and record["citations"][0]["doc_id"]

    def test_copy_puts_the_answer_and_its_sources_on_the_clipboard(
        self, browser: Browser, server: ScriptedServer
    ) -> None:
        context, page = open_page(browser, server)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        ask(page, DENG_QUESTION)
        expect(bot(page)).to_have_class("msg bot confirmed", timeout=TIMEOUT_MS)
        bot(page).get_by_role("button", name="Copy the answer").click()
        expect(bot(page).locator(".action-status")).to_have_text("Copied.")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("He agreed to expand cooperation")
        assert "Sources:\n[1] China’s “no limits” partnership with Russia" in copied
        context.close()


class TestOfflineDocs:
    def test_docs_render_with_every_other_host_blocked(self, browser: Browser, server: ScriptedServer) -> None:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        blocked: list[str] = []

        def only_this_server(route: Route) -> None:
            if urlparse(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_this_server)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("RAG chatbot", timeout=TIMEOUT_MS)
        expect(page.locator(".opblock-summary-path", has_text="/api/ask/stream").first).to_be_visible()
        expect(page.locator(".opblock-summary-path", has_text="/api/feedback").first).to_be_visible()
        page.screenshot(path=SHOTS / "33-api-docs-offline.png")
        assert blocked == [], f"/docs tried to reach other hosts: {blocked}"
        assert errors == []
        assert page.request.get(f"{server.url}/redoc").status == 404  # dropped rather than loaded from a CDN
        favicon = page.request.get(f"{server.url}/favicon.ico")
        assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/svg+xml")
        context.close()


# ---- S5 (issue 10): the Content-Security-Policy blocks nothing the chat page and the API docs need -----------
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
});
"""


class TestPolicyInTheBrowser:
    @pytest.fixture
    def watched(self, browser: Browser, server: ScriptedServer) -> Iterator[Page]:
        """A page that records every violation the policy reports (the `page` fixture also fails on any
        logged one)."""
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        context.add_init_script(CSP_LISTENER)
        yield context.new_page()
        context.close()

    def test_the_chat_page_answers_under_the_policy(self, watched: Page, server: ScriptedServer) -> None:
        watched.goto(server.url)
        watched.get_by_label("Your question").fill(DENG_QUESTION)
        watched.get_by_label("Your question").press("Enter")
        message = watched.locator("li.msg.bot").last
        expect(message).not_to_have_class("msg bot pending", timeout=TIMEOUT_MS)
        expect(message).to_contain_text("intelligence", timeout=TIMEOUT_MS)
        assert watched.evaluate("window.__cspViolations") == []

    def test_the_api_docs_render_under_the_policy(self, watched: Page, server: ScriptedServer) -> None:
        watched.goto(f"{server.url}/docs")
        expect(watched.locator(".swagger-ui .info .title")).to_contain_text("RAG chatbot", timeout=TIMEOUT_MS)
        expect(watched.locator(".opblock").first).to_be_visible()
        assert watched.evaluate("window.__cspViolations") == []
