// The chat page. Streams answers from /api/ask/stream and never presents unchecked text as an answer:
// the model's draft is shown as provisional until the server's `done` event says whether it survived the
// checks. No framework and no build step; the only libraries are the vendored marked and DOMPurify,
// used to show documents (which are data: they are sanitised and nothing in them may run).
"use strict";

const $ = (selector) => document.querySelector(selector);
const messages = $("#messages");
const conversation = $("#conversation");
const form = $("#ask-form");
const questionBox = $("#question");
const stopButton = $("#stop");
const help = $("#question-help");
const counter = $("#char-count");

const MAX_CHARS = Number(questionBox.dataset.maxChars) || 2000;
const STORAGE_KEY = "rag-chat.conversation.v1";
const DRAFT_KEY = "rag-chat.draft.v1";
const MAX_SAVED_TURNS = 60;
// The API accepts 40 history turns (20 question/answer pairs).
const HISTORY_PAIRS = 20;
const ABSTAIN_NOTES = {
  relevance_gate: "No passage in the documents is close enough to the question.",
  no_passages: "There are no documents to search.",
  model: "The passages below were the closest, but none of them answers the question.",
  unsupported: "The closest passages are below.",
  unverified: "The closest passages are below.",
  calculation: "A calculation in the draft did not check out against the sources.",
  off_question: "The draft did not answer what was asked (another year, or another kind of answer).",
  unmentioned: "The question names something the cited documents never mention, or asks what did not happen where they negate nothing.",
};
const STAGES = {
  searching: "Searching the documents…",
  writing: "Writing a draft…",
  checking: "Checking the draft against the sources…",
};
const numberFormat = new Intl.NumberFormat("en");

/** @type {{turns: object[], running: null | {turn: object, controller: AbortController}, changesAllowed: boolean}} */
const state = { turns: [], running: null, changesAllowed: false };
const views = new Map(); // turn id -> {user, bot} list items
const documentCache = new Map();
let followAnswer = true;
let nextId = 1;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// A one-line preview of passage text, without the Markdown syntax a document's source may carry.
function snippet(text, limit = 160) {
  const flat = (text || "")
    .replace(/^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+/gm, "")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/(\*\*|__|[*_`])(?=\S)([^*_`]*?\S)\1/g, "$2")
    .replace(/\s+/g, " ").trim();
  return flat.length > limit ? `${flat.slice(0, limit).replace(/\s+\S*$/, "")}…` : flat;
}

// ---- persistence ---------------------------------------------------------------------------------
function saveConversation() {
  const turns = state.turns.slice(-MAX_SAVED_TURNS).map((turn) => ({
    id: turn.id, question: turn.question, status: turn.status, answer: turn.answer ?? null,
    error: turn.error ?? null, rating: turn.rating ?? null,
  }));
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ version: 1, turns }));
  } catch {
    // Storage full or disabled: the conversation still works, it just will not survive a reload.
  }
  $("#saved-note").hidden = state.turns.length === 0;
}

function restoreConversation() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    saved = null;
  }
  for (const raw of saved?.turns ?? []) {
    if (typeof raw?.question !== "string") continue;
    const turn = { id: nextId++, question: raw.question, status: raw.status, answer: raw.answer, error: raw.error, rating: raw.rating };
    if (turn.status === "running" || turn.status === "queued") {
      // Asked but not answered before the page was closed: keep the question, offer Retry.
      turn.status = "error";
      turn.error = "Not answered: the page was reloaded before the answer was ready.";
    }
    if (turn.status === "done" && !turn.answer) continue;
    state.turns.push(turn);
    renderTurn(turn);
  }
  const draft = localStorage.getItem(DRAFT_KEY);
  if (draft) questionBox.value = draft;
  updateCounter();
  saveConversation();
  scrollToEnd(true);
}

// ---- following the answer --------------------------------------------------------------------------
conversation.addEventListener("scroll", () => {
  followAnswer = conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 80;
});

function scrollToEnd(force = false) {
  if (force) followAnswer = true;
  if (followAnswer) conversation.scrollTop = conversation.scrollHeight;
}

// ---- rendering a turn ------------------------------------------------------------------------------
function renderTurn(turn) {
  let view = views.get(turn.id);
  if (!view) {
    $("#empty-state").hidden = true;
    view = {
      user: element("li", { class: "msg user" }, element("div", { class: "question-text", text: turn.question })),
      bot: element("li", { class: "msg bot" }),
    };
    views.set(turn.id, view);
    messages.append(view.user, view.bot);
  }
  const bot = view.bot;
  bot.replaceChildren();
  bot.removeAttribute("aria-busy");
  bot.className = "msg bot";
  if (turn.status === "queued") {
    bot.classList.add("pending", "queued");
    bot.append(stageLine("queued", "Waiting for the current answer to finish…"));
  } else if (turn.status === "running") {
    bot.classList.add("pending");
    bot.setAttribute("aria-busy", "true");
    bot.append(stageLine("searching", STAGES.searching));
  } else if (turn.status === "done") {
    renderAnswer(bot, turn);
  } else if (turn.status === "stopped") {
    bot.classList.add("stopped");
    bot.append(
      element("p", { class: "answer-text", text: "Stopped. The unchecked draft is not shown." }),
      element("div", { class: "actions" }, retryButton(turn, "Ask again")),
    );
  } else {
    bot.classList.add("error");
    bot.append(
      element("p", { class: "answer-text", text: turn.error || "The question could not be answered." }),
      element("div", { class: "actions" }, retryButton(turn, "Retry"), editButton(turn)),
    );
  }
  return view;
}

function stageLine(stage, text) {
  return element("p", { class: "stage", "data-stage": stage },
    element("span", { class: "spinner", "aria-hidden": "true" }), element("span", { class: "stage-text", text }));
}

function retryButton(turn, label) {
  return element("button", { type: "button", class: "retry", text: label, onclick: () => requeue(turn) });
}

function editButton(turn) {
  return element("button", {
    type: "button", text: "Edit question",
    onclick: () => {
      if (questionBox.value.trim() && questionBox.value !== turn.question
        && !window.confirm("Replace the text in the question box with this question?")) return;
      questionBox.value = turn.question;
      updateCounter();
      saveDraft();
      questionBox.focus();
    },
  });
}

function sourceCards(items, label, numbered) {
  const list = element("ol", { class: "cards" });
  items.forEach((item, index) => {
    const n = numbered ? item.n ?? index + 1 : index + 1;
    const support = supportText(item);
    list.append(element("li", { class: "card" }, element("button", {
      type: "button", class: "card-button", "aria-label": `Open source ${n}: ${item.title || "untitled"}`,
      onclick: () => openPassage(item),
    },
    element("span", { class: "card-n", text: String(n), "aria-hidden": "true" }),
    element("span", { class: "card-title", text: item.title || "Untitled document" }),
    element("span", { class: "card-snippet", text: snippet(support || item.text) }))));
  });
  return element("section", { class: "sources", "aria-label": label },
    element("h3", { class: "sources-label", text: label }), list);
}

// The supporting sentence inside a cited passage, when the server located one.
function supportText(item) {
  if (!Number.isInteger(item.support_start) || !Number.isInteger(item.support_end) || !item.text) return "";
  return item.text.slice(item.support_start - item.start, item.support_end - item.start);
}

// Answer text with [n] markers turned into buttons that open citation n.
function answerText(answer) {
  const text = element("div", { class: "answer-text" });
  const byNumber = new Map((answer.citations || []).map((c) => [c.n, c]));
  const body = answer.answer || "";
  let last = 0;
  for (const match of body.matchAll(/\[(\d+)\]/g)) {
    text.append(body.slice(last, match.index));
    const citation = byNumber.get(Number(match[1]));
    text.append(citation ? element("button", {
      type: "button", class: "cite", text: `[${citation.n}]`,
      "aria-label": `Open source ${citation.n}: ${citation.title}`,
      onclick: () => openPassage(citation),
    }) : match[0]);
    last = match.index + match[0].length;
  }
  text.append(body.slice(last));
  return text;
}

function timingsLabel(timings) {
  return Object.entries(timings || {}).map(([stage, ms]) => `${stage.replace(/_ms$/, "")}: ${Math.round(ms)} ms`).join(" · ");
}

function renderAnswer(bot, turn) {
  const answer = turn.answer;
  const passages = answer.passages || [];
  if (answer.abstained) {
    bot.classList.add("abstained");
    bot.append(answerText(answer));
    const retracted = answer.retracted ?? false;
    const note = retracted
      ? "A draft answer was not supported by the sources, so it is not shown."
      : ABSTAIN_NOTES[answer.abstain_reason] || "";
    if (note) bot.append(element("p", { class: retracted ? "note retracted-note" : "note", text: note }));
    if (passages.length) bot.append(sourceCards(passages.slice(0, 3), "Closest passages", false));
  } else {
    bot.classList.add("confirmed");
    if (answer.citations?.length) bot.append(sourceCards(answer.citations, "Sources", true));
    bot.append(answerText(answer));
  }
  bot.append(actionsRow(turn));
  const total = answer.timings_ms?.total ?? 0;
  const parts = [`${(total / 1000).toFixed(1)} s`];
  if (typeof answer.confidence === "number" && !answer.abstained) parts.push(`confidence ${Math.round(answer.confidence * 100)}%`);
  if (answer.supported === false) parts.push("some sentences could not be tied to a passage");
  bot.append(element("p", {
    class: "meta timings", title: timingsLabel(answer.timings_ms), tabindex: "0",
    "aria-label": `Timings: ${timingsLabel(answer.timings_ms)}`, text: parts.join(" · "),
  }));
}

function actionsRow(turn) {
  const status = element("span", { class: "action-status", role: "status" });
  const row = element("div", { class: "actions" });
  const rate = (rating) => element("button", {
    type: "button", class: `rate rate-${rating}`, "aria-pressed": String(turn.rating === rating),
    "aria-label": rating === "up" ? "Good answer" : "Bad answer", title: rating === "up" ? "Good answer" : "Bad answer",
    onclick: () => openFeedback(turn, rating, row, status),
  }, thumbIcon());
  row.append(
    element("button", { type: "button", text: "Copy", "aria-label": "Copy the answer", onclick: () => copyAnswer(turn, status) }),
    element("button", { type: "button", text: "Regenerate", "aria-label": "Regenerate the answer", onclick: () => requeue(turn) }),
    rate("up"), rate("down"), status,
  );
  if (turn.rating) status.textContent = "Thanks for the feedback.";
  return row;
}

// A thumb drawn as SVG (emoji fonts are not everywhere); "down" is the same icon turned over in CSS.
function thumbIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 6.6 7.6"
    + "C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z");
  svg.append(path);
  return svg;
}

async function copyAnswer(turn, status) {
  const answer = turn.answer;
  const sources = (answer.citations || []).map((c) => `[${c.n}] ${c.title}: ${snippet(supportText(c) || c.text, 200)}`);
  const text = sources.length ? `${answer.answer}\n\nSources:\n${sources.join("\n")}` : answer.answer;
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied.";
  } catch {
    status.textContent = "Could not copy: select the answer and copy it by hand.";
  }
}

function openFeedback(turn, rating, row, status) {
  row.parentElement.querySelector(".feedback-form")?.remove();
  for (const button of row.querySelectorAll(".rate")) {
    button.setAttribute("aria-pressed", String(button.classList.contains(`rate-${rating}`)));
  }
  const note = element("textarea", { rows: "2", class: "feedback-note", "aria-label": "Feedback note (optional)",
    placeholder: rating === "up" ? "What was good? (optional)" : "What was wrong? (optional)" });
  const message = element("p", { class: "feedback-status", role: "status" });
  const feedbackForm = element("form", { class: "feedback-form", "aria-label": "Feedback" },
    note,
    element("div", { class: "feedback-buttons" },
      element("button", { type: "submit", text: "Send feedback" }),
      element("button", { type: "button", text: "Cancel", onclick: () => feedbackForm.remove() })),
    message);
  feedbackForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = note.value.trim();
    if (text.length > 2000) {
      message.textContent = `The note is ${numberFormat.format(text.length)} characters; the limit is 2,000.`;
      return;
    }
    message.textContent = "Sending…";
    const body = {
      question: turn.question, answer: turn.answer.answer, rating, abstained: Boolean(turn.answer.abstained),
      citations: (turn.answer.citations || []).map((c) => ({ doc_id: c.doc_id, chunk_id: c.chunk_id })),
    };
    if (text) body.note = text;
    try {
      const response = await fetch("/api/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const reply = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(reply.error || response.statusText);
      turn.rating = rating;
      saveConversation();
      feedbackForm.remove();
      status.textContent = "Thanks for the feedback.";
    } catch (error) {
      message.textContent = `Not sent: ${error.message}`;
    }
  });
  row.after(feedbackForm);
  note.focus();
}

// ---- asking ------------------------------------------------------------------------------------------
function historyBefore(turn) {
  const earlier = [];
  for (const other of state.turns) {
    if (other === turn) break;
    if (other.status === "done" && other.answer) earlier.push(other);
  }
  return earlier.slice(-HISTORY_PAIRS).flatMap((t) => [
    { role: "user", content: t.question.slice(0, 8000) },
    { role: "assistant", content: (t.answer.answer || "").slice(0, 8000) },
  ]);
}

function submitQuestion(raw) {
  const question = raw.trim();
  if (!question) {
    help.textContent = "Type a question first.";
    return false;
  }
  if (question.length > MAX_CHARS) {
    help.textContent = `Not sent: the question is ${numberFormat.format(question.length)} characters and the limit is `
      + `${numberFormat.format(MAX_CHARS)}. Shorten it and send again; your text is kept.`;
    help.classList.add("refusal");
    questionBox.focus();
    return false;
  }
  const turn = { id: nextId++, question, status: "queued" };
  state.turns.push(turn);
  renderTurn(turn);
  help.classList.remove("refusal");
  help.textContent = state.running ? "Queued: it will be asked as soon as the current answer is finished." : "";
  saveConversation();
  scrollToEnd(true);
  pump();
  return true;
}

function requeue(turn) {
  if (!state.turns.includes(turn) || turn.status === "running" || turn.status === "queued") return;
  turn.status = "queued";
  turn.answer = null;
  turn.error = null;
  turn.rating = null;
  renderTurn(turn);
  saveConversation();
  pump();
}

function pump() {
  if (state.running) return;
  const next = state.turns.find((turn) => turn.status === "queued");
  if (next) run(next);
}

function setBusy(busy) {
  stopButton.hidden = !busy;
  form.classList.toggle("busy", busy);
}

// fetch + a small Server-Sent Events reader (EventSource cannot POST).
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// What the bubble shows while an answer is on its way: stage, sources as they arrive, provisional draft.
class LiveBubble {
  constructor(bot) {
    this.bot = bot;
    this.stage = bot.querySelector(".stage");
    this.draftText = null;
    this.stageName = "searching";
  }

  setStage(stage) {
    if (!STAGES[stage]) return;
    this.stageName = stage;
    this.stage.dataset.stage = stage;
    this.stage.querySelector(".stage-text").textContent = STAGES[stage];
    this.bot.querySelector(".draft-label")?.replaceChildren(this.draftLabel());
  }

  showPassages(passages) {
    this.bot.querySelector(".sources")?.remove();
    if (passages.length) this.stage.after(sourceCards(passages, "Sources found", false));
    if (this.stageName === "searching") this.setStage("writing");
  }

  draftLabel() {
    return "Unchecked draft · checking against the sources…";
  }

  addToken(text) {
    if (!this.draftText) {
      this.draftText = element("div", { class: "draft-text" });
      this.bot.append(element("div", { class: "draft provisional", "aria-live": "off" },
        element("p", { class: "draft-label", text: this.draftLabel() }), this.draftText));
      if (this.stageName === "searching") this.setStage("writing");
    }
    this.draftText.textContent += text;
  }

  get hadDraft() {
    return Boolean(this.draftText?.textContent.trim());
  }
}

async function run(turn) {
  const controller = new AbortController();
  state.running = { turn, controller };
  turn.status = "running";
  turn.abort = null;
  const { bot } = renderTurn(turn);
  const live = new LiveBubble(bot);
  setBusy(true);
  scrollToEnd();
  try {
    const response = await fetch("/api/ask/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ question: turn.question, history: historyBefore(turn) }),
      signal: controller.signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(response.status === 503
        ? "The server is busy answering other questions. Retry in a moment."
        : `The question could not be answered: ${body.error || response.statusText}`);
    }
    let answer = null;
    for await (const { event, data } of readEvents(response)) {
      if (event === "status") live.setStage(data.stage);
      else if (event === "passages") live.showPassages(data.passages || []);
      else if (event === "token") live.addToken(data.text || "");
      else if (event === "done") answer = data;
      else if (event === "error") throw new Error(`The answer failed: ${data.message}`);
      scrollToEnd();
    }
    if (!answer) throw new Error("The answer stream ended early. Retry to ask again.");
    // Older servers do not say whether a draft was taken back; a draft followed by a check failure was.
    if (answer.abstained && answer.retracted === undefined) {
      answer.retracted = live.hadDraft && ["unverified", "unsupported", "calculation", "off_question", "unmentioned"].includes(answer.abstain_reason);
    }
    turn.answer = answer;
    turn.status = "done";
  } catch (error) {
    if (controller.signal.aborted) {
      turn.status = "stopped";
    } else {
      turn.status = "error";
      turn.error = error instanceof TypeError ? `Could not reach the server (${error.message}).` : error.message;
    }
  } finally {
    if (state.running?.turn === turn) state.running = null;
    setBusy(Boolean(state.running));
    // A turn discarded by "New chat" is gone: nothing of it may come back on screen or into history.
    if (state.turns.includes(turn)) {
      renderTurn(turn);
      saveConversation();
      scrollToEnd();
    }
    if (!state.running && !state.turns.some((t) => t.status === "queued") && help.textContent.startsWith("Queued")) {
      help.textContent = "";
    }
    pump();
  }
}

function stopAnswer() {
  state.running?.controller.abort();
}

function startOver(message) {
  const running = state.running;
  state.turns = [];
  state.running = null;
  running?.controller.abort();
  views.clear();
  messages.replaceChildren();
  $("#empty-state").hidden = false;
  setBusy(false);
  saveConversation();
  help.classList.remove("refusal");
  help.textContent = message;
  questionBox.focus();
}

// ---- the question box --------------------------------------------------------------------------------
function updateCounter() {
  const length = questionBox.value.trim().length;
  const over = length > MAX_CHARS;
  counter.textContent = `${numberFormat.format(length)} / ${numberFormat.format(MAX_CHARS)}`;
  counter.classList.toggle("over", over);
  questionBox.setAttribute("aria-invalid", String(over));
  if (over) {
    help.classList.add("refusal");
    help.textContent = `Too long: ${numberFormat.format(length)} characters; the limit is ${numberFormat.format(MAX_CHARS)}.`;
  } else if (help.classList.contains("refusal")) {
    help.classList.remove("refusal");
    help.textContent = "";
  }
}

function saveDraft() {
  try {
    if (questionBox.value) localStorage.setItem(DRAFT_KEY, questionBox.value);
    else localStorage.removeItem(DRAFT_KEY);
  } catch {
    // Without storage the draft simply is not kept across reloads.
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (submitQuestion(questionBox.value)) {
    questionBox.value = "";
    updateCounter();
    saveDraft();
  }
});
questionBox.addEventListener("input", () => {
  updateCounter();
  saveDraft();
});
questionBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
stopButton.addEventListener("click", stopAnswer);
for (const button of document.querySelectorAll(".example")) {
  button.addEventListener("click", () => submitQuestion(button.textContent));
}
$("#new-chat").addEventListener("click", () => startOver("New chat started."));
$("#clear-chat").addEventListener("click", () => startOver("The saved conversation was cleared."));

// ---- reading panel: a document rendered with the passage (and its supporting sentence) highlighted ----
// Private-use characters mark where highlights begin and end; they survive Markdown rendering as text,
// and are turned into <mark> elements after sanitising.
const MARK = { passageStart: "\uE000", passageEnd: "\uE001", supportStart: "\uE002", supportEnd: "\uE003" };
const MARKERS = /[\uE000-\uE003]/g;
const HAS_MARKER = /[\uE000-\uE003]/;
const BLOCK_PREFIX = /^(?:[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d{1,9}[.)][ \t]+|>[ \t]?))+/;
const PURIFY = {
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select", "option", "iframe",
    "frame", "object", "embed", "video", "audio", "source", "picture", "link", "meta", "base", "dialog"],
  FORBID_ATTR: ["style", "id", "name", "class", "srcset", "action", "formaction"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};
let purifyReady = false;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function setUpLibraries() {
  if (purifyReady || !window.DOMPurify || !window.marked) return purifyReady;
  // Links open in a new tab without access to this page.
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  // Raw HTML inside a document is shown as text, never parsed: even an inert parse of `<img onerror>`
  // trips the page's Content-Security-Policy. Images would fetch from wherever the document points, so
  // their description is shown instead.
  window.marked.use({
    gfm: true,
    renderer: {
      html: ({ text }) => escapeHtml(text),
      image: ({ text }) => escapeHtml(text ? `[image: ${text}]` : "[image]"),
    },
  });
  purifyReady = true;
  return true;
}

// Where a highlight marker goes: start markers skip whitespace and block syntax (a marker before "## "
// would stop the line being a heading), end markers back over trailing whitespace.
function markerPositions(text, start, end) {
  let s = Math.max(0, Math.min(start, text.length));
  let e = Math.max(s, Math.min(end, text.length));
  while (s < e && /\s/.test(text[s])) s++;
  if (s === 0 || text[s - 1] === "\n") {
    const prefix = BLOCK_PREFIX.exec(text.slice(s, Math.min(e, s + 40)));
    if (prefix && s + prefix[0].length < e) s += prefix[0].length;
  }
  while (e > s && /\s/.test(text[e - 1])) e--;
  return [s, e];
}

function withMarkers(text, highlight) {
  const clean = text.replace(MARKERS, "\uFFFD"); // same length: offsets stay valid
  if (!highlight) return clean;
  const [ps, pe] = markerPositions(clean, highlight.start, highlight.end);
  const inserts = [[ps, 2, MARK.passageStart], [pe, 1, MARK.passageEnd]];
  if (Number.isInteger(highlight.support_start) && Number.isInteger(highlight.support_end)) {
    const [ss, se] = markerPositions(clean, Math.max(highlight.support_start, ps), Math.min(highlight.support_end, pe));
    if (se > ss) inserts.push([ss, 3, MARK.supportStart], [se, 0, MARK.supportEnd]);
  }
  // At one position: close the sentence, then the passage, then open the passage, then the sentence.
  inserts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let out = "";
  let last = 0;
  for (const [at, , token] of inserts) {
    out += clean.slice(last, at) + token;
    last = at;
  }
  return out + clean.slice(last);
}

// Replace the markers in the rendered text with <mark> elements; false when they did not all survive.
function applyMarks(root) {
  for (const node of root.querySelectorAll("*")) {
    for (const attribute of [...node.attributes]) {
      if (HAS_MARKER.test(attribute.value)) node.setAttribute(attribute.name, attribute.value.replace(MARKERS, ""));
    }
  }
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  let inPassage = false;
  let inSupport = false;
  let seen = "";
  for (const node of nodes) {
    const value = node.nodeValue;
    if (!inPassage && !HAS_MARKER.test(value)) continue;
    const pieces = value.split(/([\uE000-\uE003])/);
    const fragment = document.createDocumentFragment();
    for (const piece of pieces) {
      if (piece === MARK.passageStart) { inPassage = true; seen += "P"; continue; }
      if (piece === MARK.passageEnd) { inPassage = false; seen += "p"; continue; }
      if (piece === MARK.supportStart) { inSupport = true; seen += "S"; continue; }
      if (piece === MARK.supportEnd) { inSupport = false; seen += "s"; continue; }
      if (!piece) continue;
      if (inPassage && piece.trim()) {
        fragment.append(element("mark", { class: inSupport ? "passage support" : "passage", text: piece }));
      } else {
        fragment.append(piece);
      }
    }
    node.replaceWith(fragment);
  }
  return seen.replace(/[Ss]/g, "") === "Pp";
}

function renderDocument(doc, highlight) {
  const source = withMarkers(doc.text, highlight);
  const markdown = /\.(md|markdown)$/i.test(doc.source || "") && setUpLibraries();
  if (markdown) {
    const fragment = window.DOMPurify.sanitize(window.marked.parse(source), PURIFY);
    const root = element("div", { class: "markdown" }, fragment);
    if (!highlight || applyMarks(root)) return root;
  }
  // Plain text (or Markdown whose markup swallowed a marker): the text as it is, with the highlights.
  const root = element("div", { class: "plain" }, source);
  if (highlight) applyMarks(root);
  return root;
}

async function fetchDocument(docId) {
  if (!documentCache.has(docId)) {
    const response = await fetch(`/api/documents/${encodeURIComponent(docId)}`);
    if (!response.ok) throw new Error(`document ${docId} is not available (${response.status})`);
    documentCache.set(docId, await response.json());
  }
  return documentCache.get(docId);
}

function openPanel(id) {
  const panel = document.getElementById(id);
  panel.hidden = false;
  // On a wide screen the conversation moves aside so the answer and its source can be read together.
  if (id === "passage-panel") document.body.classList.add("reading-open");
  panel.focus();
  return panel;
}

function scrollToHighlight() {
  const target = $("#passage-document mark.support") || $("#passage-document mark.passage");
  target?.scrollIntoView({ block: "center" });
}

async function openPassage(passage) {
  await openReading({ doc_id: passage.doc_id, title: passage.title }, passage);
}

async function openReading(doc, highlight) {
  const panel = openPanel("passage-panel");
  $("#passage-title").textContent = doc.title || "Document";
  $("#to-passage").hidden = true;
  const meta = $("#passage-meta");
  meta.textContent = highlight ? "The passage is highlighted" : "";
  const body = $("#passage-document");
  body.textContent = "Loading…";
  try {
    const full = await fetchDocument(doc.doc_id);
    body.replaceChildren(renderDocument(full, highlight));
    if (highlight) {
      const support = body.querySelector("mark.support");
      meta.textContent = support ? "The passage is highlighted; the sentence that supports the answer is underlined."
        : "The passage is highlighted.";
      $("#to-passage").hidden = false;
      scrollToHighlight();
    } else {
      $("#passage-scroll").scrollTop = 0;
    }
  } catch (error) {
    body.replaceChildren(`${error.message}.`, highlight?.text ? element("mark", { class: "passage", text: highlight.text }) : "");
  }
  panel.focus({ preventScroll: true });
}

$("#to-passage").addEventListener("click", scrollToHighlight);

// ---- documents panel ---------------------------------------------------------------------------------
function adminHeaders() {
  const token = $("#admin-token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function loadHealth() {
  try {
    const response = await fetch("/api/health");
    const health = await response.json();
    state.changesAllowed = health.changes_allowed === true;
  } catch {
    state.changesAllowed = false;
  }
  $("#upload-form").hidden = !state.changesAllowed;
  $("#changes-off").hidden = state.changesAllowed;
}

function documentRow(doc) {
  const actions = element("td", { class: "row-actions" });
  const showRemove = () => actions.replaceChildren(element("button", {
    type: "button", text: "Remove", "aria-label": `Remove ${doc.title}`, onclick: confirmRemove,
  }));
  function confirmRemove() {
    actions.replaceChildren(
      element("span", { class: "confirm-text", text: "Remove it?" }),
      element("button", { type: "button", class: "danger", text: "Yes, remove", "aria-label": `Yes, remove ${doc.title}`,
        onclick: () => removeDocument(doc) }),
      element("button", { type: "button", text: "Cancel", "aria-label": `Keep ${doc.title}`, onclick: showRemove }),
    );
    actions.querySelector(".danger").focus();
  }
  if (state.changesAllowed) showRemove();
  return element("tr", {},
    element("td", {}, element("button", {
      type: "button", class: "link-button doc-title", text: doc.title, "aria-label": `Read ${doc.title}`,
      onclick: () => openReading(doc, null),
    })),
    element("td", { text: String(doc.passages) }),
    actions);
}

async function loadDocuments() {
  const status = $("#documents-status");
  const rows = $("#documents-table tbody");
  try {
    const response = await fetch("/api/documents");
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const documents = await response.json();
    rows.replaceChildren(...documents.map(documentRow));
  } catch (error) {
    status.textContent = `Could not list documents: ${error.message}`;
  }
}

async function removeDocument(doc) {
  const status = $("#documents-status");
  const response = await fetch(`/api/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE", headers: adminHeaders() });
  const body = await response.json().catch(() => ({}));
  status.textContent = response.ok ? `Removed “${doc.title}”.` : `Not removed: ${body.error || response.statusText}`;
  documentCache.delete(doc.doc_id);
  await loadDocuments();
}

$("#upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#documents-status");
  const file = $("#upload-file").files[0];
  if (!file) { status.textContent = "Choose a file to upload first."; return; }
  const data = new FormData();
  data.append("file", file);
  status.textContent = "Uploading and indexing…";
  try {
    const response = await fetch("/api/documents", { method: "POST", body: data, headers: adminHeaders() });
    const body = await response.json().catch(() => ({}));
    status.textContent = response.ok ? `Indexed “${file.name}” (${body.status}, ${body.passages} passages).`
      : `Not uploaded: ${body.error || response.statusText}`;
    if (response.ok) documentCache.delete(body.doc_id);
  } catch (error) {
    status.textContent = `Not uploaded: could not reach the server (${error.message}).`;
  }
  await loadDocuments();
});

$("#open-documents").addEventListener("click", async () => {
  $("#open-documents").setAttribute("aria-expanded", "true");
  openPanel("documents-panel");
  await loadHealth();
  await loadDocuments();
});
for (const button of document.querySelectorAll("[data-close]")) {
  button.addEventListener("click", () => closePanel(button.dataset.close));
}
function closePanel(id) {
  document.getElementById(id).hidden = true;
  if (id === "passage-panel") document.body.classList.remove("reading-open");
  if (id === "documents-panel") $("#open-documents").setAttribute("aria-expanded", "false");
  if (id === "passage-panel" && !$("#documents-panel").hidden) $("#documents-panel").focus();
  else questionBox.focus();
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const id of ["passage-panel", "documents-panel"]) {
    if (!document.getElementById(id).hidden) { closePanel(id); break; }
  }
});

restoreConversation();
loadHealth();
