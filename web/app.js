// The chat page: streams answers from /api/ask/stream, renders [n] citations as buttons that open the
// cited passage highlighted inside its document. No framework and no build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const messages = $("#messages");
const form = $("#ask-form");
const questionBox = $("#question");
const sendButton = $("#send");
const history = [];
const documentCache = new Map();
let busy = false;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function addMessage(role, text) {
  $("#empty-state").hidden = true;
  const item = element("li", { class: `msg ${role}` }, element("div", { class: "answer-text", text }));
  messages.append(item);
  item.scrollIntoView({ block: "end", behavior: "smooth" });
  return item;
}

// Answer text with [n] markers turned into buttons that open citation n.
function renderAnswer(container, answer) {
  const text = container.querySelector(".answer-text");
  text.replaceChildren();
  const byNumber = new Map(answer.citations.map((c) => [c.n, c]));
  let last = 0;
  for (const match of answer.answer.matchAll(/\[(\d+)\]/g)) {
    text.append(answer.answer.slice(last, match.index));
    const citation = byNumber.get(Number(match[1]));
    if (citation) {
      text.append(element("button", {
        type: "button", class: "cite", text: `[${citation.n}]`,
        "aria-label": `Open source ${citation.n}: ${citation.title}`,
        onclick: () => openPassage(citation),
      }));
    } else {
      text.append(match[0]);
    }
    last = match.index + match[0].length;
  }
  text.append(answer.answer.slice(last));
}

function timingsLabel(timings) {
  return Object.entries(timings).map(([stage, ms]) => `${stage.replace(/_ms$/, "")}: ${Math.round(ms)} ms`).join(" · ");
}

function finishAnswer(item, answer) {
  item.classList.remove("pending");
  renderAnswer(item, answer);
  if (answer.abstained) {
    item.classList.add("abstained");
    if (answer.passages.length) {
      const closest = element("ol", { class: "closest", "aria-label": "Closest passages" });
      for (const passage of answer.passages.slice(0, 2)) {
        const preview = passage.text.replace(/\s+/g, " ").slice(0, 110);
        closest.append(element("li", {}, element("button", {
          type: "button", text: `${preview}…`, onclick: () => openPassage(passage),
        })));
      }
      item.append(element("p", { class: "meta", text: "Closest passages:" }), closest);
    }
  } else if (answer.citations.length) {
    const sources = element("ol", { class: "sources", "aria-label": "Sources" });
    for (const citation of answer.citations) {
      sources.append(element("li", { value: String(citation.n) }, element("button", {
        type: "button", text: `${citation.title} (characters ${citation.start}–${citation.end})`,
        onclick: () => openPassage(citation),
      })));
    }
    item.append(sources);
  }
  const total = answer.timings_ms.total ?? 0;
  item.append(element("p", {
    class: "meta timings", title: timingsLabel(answer.timings_ms), tabindex: "0",
    "aria-label": `Timings: ${timingsLabel(answer.timings_ms)}`,
    text: `${(total / 1000).toFixed(1)} s${answer.supported ? "" : " · some sentences could not be tied to a passage"}`,
  }));
}

function showError(item, message, retry) {
  item.classList.remove("pending");
  item.classList.add("error");
  item.querySelector(".answer-text").textContent = message;
  item.append(element("button", { type: "button", class: "retry", text: "Retry", onclick: () => { item.remove(); retry(); } }));
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

async function ask(question) {
  if (busy || !question.trim()) return;
  busy = true;
  sendButton.disabled = true;
  addMessage("user", question);
  const item = addMessage("bot pending", "");
  const text = item.querySelector(".answer-text");
  const retry = () => ask(question);
  try {
    const response = await fetch("/api/ask/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ question, history }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const message = response.status === 503
        ? "The server is busy answering other questions. Please retry in a moment."
        : `The question could not be answered: ${body.error || response.statusText}`;
      messages.removeChild(item.previousElementSibling);
      showError(item, message, retry);
      return;
    }
    let answer = null;
    for await (const { event, data } of readEvents(response)) {
      if (event === "token") text.textContent += data.text;
      else if (event === "done") answer = data;
      else if (event === "error") throw new Error(data.message);
    }
    if (!answer) throw new Error("the answer stream ended early");
    finishAnswer(item, answer);
    history.push({ role: "user", content: question }, { role: "assistant", content: answer.answer });
  } catch (error) {
    messages.removeChild(item.previousElementSibling);
    showError(item, `Could not reach the server (${error.message}).`, retry);
  } finally {
    busy = false;
    sendButton.disabled = false;
  }
}

// ---- passage side panel ----------------------------------------------------------------------
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
  panel.focus();
  return panel;
}

async function openPassage(passage) {
  const panel = openPanel("passage-panel");
  $("#passage-title").textContent = passage.title || "Passage";
  $("#passage-meta").textContent = `Characters ${passage.start}–${passage.end}`;
  const body = $("#passage-document");
  body.textContent = "Loading…";
  try {
    const doc = await fetchDocument(passage.doc_id);
    const mark = element("mark", { text: doc.text.slice(passage.start, passage.end) });
    body.replaceChildren(doc.text.slice(0, passage.start), mark, doc.text.slice(passage.end));
    mark.scrollIntoView({ block: "center" });
  } catch (error) {
    body.textContent = `${error.message}. The passage: ${passage.text}`;
  }
  panel.focus();
}

// ---- documents panel ---------------------------------------------------------------------------
function adminHeaders() {
  const token = $("#admin-token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function loadDocuments() {
  const status = $("#documents-status");
  const rows = $("#documents-table tbody");
  try {
    const response = await fetch("/api/documents");
    const documents = await response.json();
    rows.replaceChildren(...documents.map((doc) => element("tr", {},
      element("td", { text: doc.title }),
      element("td", { text: String(doc.passages) }),
      element("td", {}, element("button", {
        type: "button", text: "Remove", "aria-label": `Remove ${doc.title}`,
        onclick: () => removeDocument(doc),
      })),
    )));
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
  const response = await fetch("/api/documents", { method: "POST", body: data, headers: adminHeaders() });
  const body = await response.json().catch(() => ({}));
  status.textContent = response.ok ? `Indexed “${file.name}” (${body.status}, ${body.passages} passages).`
    : `Not uploaded: ${body.error || response.statusText}`;
  await loadDocuments();
});

// ---- wiring ------------------------------------------------------------------------------------------
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = questionBox.value;
  questionBox.value = "";
  ask(question);
});
questionBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
for (const button of document.querySelectorAll(".example")) {
  button.addEventListener("click", () => ask(button.textContent));
}
$("#new-chat").addEventListener("click", () => {
  history.length = 0;
  messages.replaceChildren();
  $("#empty-state").hidden = false;
  questionBox.focus();
});
$("#open-documents").addEventListener("click", () => {
  $("#open-documents").setAttribute("aria-expanded", "true");
  openPanel("documents-panel");
  loadDocuments();
});
for (const button of document.querySelectorAll("[data-close]")) {
  button.addEventListener("click", () => closePanel(button.dataset.close));
}
function closePanel(id) {
  document.getElementById(id).hidden = true;
  if (id === "documents-panel") $("#open-documents").setAttribute("aria-expanded", "false");
  questionBox.focus();
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const id of ["passage-panel", "documents-panel"]) {
    if (!document.getElementById(id).hidden) { closePanel(id); break; }
  }
});
