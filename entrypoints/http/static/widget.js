/* Multi-Channel AI Agent: the web chat widget. One file, no dependencies, ES2020.
 *   <script src="https://agent.example/widget.js" data-widget-id="wc_…" async></script>
 * The API is the script's own origin: the public /webchat/{widget id}/… endpoints (GET /openapi.json). */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector("script[data-widget-id]");
  const widgetId = script && script.dataset.widgetId;
  if (!widgetId || document.getElementById("mcagent-webchat")) return;
  const api = `${new URL(script.src, location.href).origin}/webchat/${encodeURIComponent(widgetId)}`;
  const tokenKey = `mcagent:${widgetId}`;
  const openKey = `${tokenKey}:open`;
  const MAX_DELAY = 10000;
  const STALL = 45000; // the service sends a keepalive every 15 s: a stream silent for longer is dead

  // Storage can be missing or refuse (private modes, blocked cookies): the chat then lasts one page.
  const recall = (area, key) => { try { return window[area].getItem(key); } catch { return null; } };
  const keep = (area, key, value) => {
    try { value == null ? window[area].removeItem(key) : window[area].setItem(key, value); } catch { /* memory only */ }
  };
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const backoff = (delay) => Math.min(delay * 2, MAX_DELAY);
  const retryAfter = (answer) => Number(answer.headers.get("Retry-After")) || 0;
  const uuid = () => {
    if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  const host = document.createElement("div");
  host.id = "mcagent-webchat";
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `<style>
:host { all: initial; }
* { box-sizing: border-box; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
[hidden] { display: none !important; }
button { cursor: pointer; border: 0; }
:focus-visible { outline: 3px solid #111827; outline-offset: 2px; box-shadow: 0 0 0 2px #fff; }
.launcher, .panel { position: fixed; right: 20px; z-index: 2147483000; box-shadow: 0 6px 24px rgba(0,0,0,.3); }
.launcher { bottom: 20px; width: 56px; height: 56px; border-radius: 50%; background: #1d4ed8; color: #fff; display: grid; place-items: center; }
.launcher:hover { background: #1e40af; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 20px; padding: 0 5px; border-radius: 10px; background: #b91c1c; font-size: 12px; line-height: 20px; }
.panel { bottom: 88px; width: 360px; max-width: calc(100vw - 40px); height: 520px; max-height: calc(100vh - 108px);
  display: flex; flex-direction: column; overflow: hidden; border-radius: 12px; background: #fff; color: #111827; }
header { display: flex; align-items: center; justify-content: space-between; padding: 10px 12px 10px 16px; background: #1d4ed8; color: #fff; }
h2 { margin: 0; font-size: 16px; font-weight: 600; }
.close { width: 32px; height: 32px; border-radius: 6px; background: none; color: #fff; font-size: 22px; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f9fafb; }
.msg { max-width: 80%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
.msg[data-from=visitor] { align-self: flex-end; background: #1d4ed8; color: #fff; }
.msg[data-from=agent] { align-self: flex-start; background: #e5e7eb; }
.msg.failed { background: #fff; color: #111827; border: 1px solid #b91c1c; }
.note { display: block; margin-top: 4px; font-size: 12px; color: #dbeafe; }
.failed .note, .status { color: #b91c1c; }
.note button { margin-left: 6px; background: none; color: inherit; font-size: 12px; text-decoration: underline; }
.typing, .status { margin: 0; padding: 4px 16px; font-size: 13px; background: #f9fafb; }
.typing { color: #4b5563; }
.status:empty { display: none; }
form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e5e7eb; }
textarea { flex: 1; resize: none; max-height: 120px; padding: 8px 10px; border: 1px solid #6b7280; border-radius: 8px; color: #111827; }
form button { padding: 0 16px; border-radius: 8px; background: #1d4ed8; color: #fff; font-weight: 600; }
:disabled { background: #e5e7eb; color: #4b5563; cursor: not-allowed; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media (max-width: 480px) { .panel { right: 0; bottom: 0; width: 100vw; max-width: none; height: 100%; max-height: none; border-radius: 0; } }
</style>
<button class="launcher" type="button" data-testid="launcher" aria-label="Open chat" aria-expanded="false" aria-controls="panel" hidden>
<svg width="28" height="28" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>
<span class="badge" aria-hidden="true" hidden></span></button>
<section class="panel" id="panel" role="dialog" aria-label="Chat" data-testid="panel" hidden>
<header><h2>Chat</h2><button class="close" type="button" aria-label="Close chat">&times;</button></header>
<div class="log" role="log" aria-live="polite" aria-label="Messages" tabindex="0"></div>
<p class="typing" data-testid="typing" hidden>typing…</p>
<p class="status" role="status"></p>
<form><label class="sr-only" for="input">Your message</label>
<textarea id="input" data-testid="input" rows="1" maxlength="2000" placeholder="Write a message…"></textarea>
<button type="submit" data-testid="send">Send</button></form>
</section>`;
  const [launcher, badge, panel, title, log, typing, status, input, sendButton] =
    [".launcher", ".badge", ".panel", "h2", ".log", ".typing", ".status", "textarea", "form button"].map((s) => root.querySelector(s));

  let token = recall("localStorage", tokenKey);
  let cursor = 0; // the highest cursor the service gave: every reconnect asks for what came after it
  let session = null; // the promise of the current session
  let renewal = null;
  let stream = null; // the AbortController of the open event stream
  let ready = null; // the session, then the history: what the live stream waits for
  let live = false;
  let stopped = false;
  let unread = 0;
  let typingTimer = 0;
  const seen = new Map(); // message id -> its element

  class Unavailable extends Error {}

  // --- the visitor's session -------------------------------------------------------------------
  /** Resolves true for a visitor resumed (with a history to show), false for a new one. */
  async function openSession(attempts = Infinity) {
    for (let attempt = 1, delay = 1000; ; attempt++, delay = backoff(delay)) {
      let answer = null;
      try {
        answer = await fetch(`${api}/sessions`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(token ? { token } : {}),
        });
      } catch { /* offline: retried below */ }
      if (answer && answer.ok) {
        const data = await answer.json();
        keep("localStorage", tokenKey, (token = data.token));
        title.textContent = (data.widget && data.widget.title) || "Chat";
        panel.setAttribute("aria-label", title.textContent);
        say("");
        return answer.status === 200;
      }
      const code = answer ? answer.status : 0;
      if (code === 403) throw new Unavailable("Chat is not available on this site.");
      if (code === 404) throw new Unavailable("This chat no longer exists.");
      if (code && code < 500 && code !== 429) {
        if (!token) throw new Unavailable("The chat is unavailable.");
        token = null; // refused outright: start as a new visitor
        continue;
      }
      // A page the widget does not allow gets a 403 without CORS headers: to the script, like no network.
      if (attempt >= attempts) throw new Unavailable("The chat could not be reached.");
      say("Can't reach the chat. Retrying…");
      await sleep(Math.max(delay, answer ? retryAfter(answer) * 1000 : 0));
    }
  }

  /** A new visitor: what the old one saw goes, and the stream starts again from the new conversation's start. */
  function renewSession() {
    if (!renewal) {
      token = null;
      for (const element of seen.values()) element.remove();
      seen.clear();
      cursor = 0;
      if (stream) stream.abort();
      session = renewal = openSession().finally(() => { renewal = null; });
    }
    return renewal;
  }

  /** A request with the visitor's token; a 401 starts a new session (once) and makes the request again. */
  async function authed(method, path, body, signal) {
    await session;
    for (let renewed = false; ; renewed = true) {
      const used = token;
      const headers = { Authorization: `Bearer ${token}` };
      if (body) headers["Content-Type"] = "application/json";
      const answer = await fetch(api + path(), { method, headers, body: body && JSON.stringify(body), signal });
      if (answer.status !== 401 || renewed) return answer;
      await (token === used ? renewSession() : session);
    }
  }

  // --- messages --------------------------------------------------------------------------------
  function bubble(from, text) {
    const element = document.createElement("div");
    element.className = "msg";
    element.dataset.testid = "message";
    element.dataset.from = from;
    element.textContent = text;
    return element;
  }

  function note(element, text, retry) {
    let line = element.querySelector(".note");
    if (!text) return line && line.remove();
    if (!line) element.append((line = document.createElement("span")));
    line.className = "note";
    line.textContent = text;
    if (retry) {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Retry";
      again.onclick = retry;
      line.append(again);
    }
  }

  /** Shows a stored message once (by id), in the order the service gives, above the visitor's messages
   * still on their way; a bubble of the visitor's that is now stored keeps its place. */
  function show(message, live, own) {
    if (!message || !message.id || seen.has(message.id)) return;
    // The visitor's own message, streamed before its POST answered: its pending bubble becomes it.
    let element = own || (message.from === "visitor" && [...log.querySelectorAll(".pending")].find((e) => e.sending.text === message.text));
    if (!element) {
      element = bubble(message.from, message.text);
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
      log.insertBefore(element, log.querySelector(".pending"));
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    if (message.from === "agent") {
      showTyping(false);
      if (live && panel.hidden) badge.textContent = String(++unread);
      badge.hidden = !unread;
    }
    element.classList.remove("pending", "failed");
    note(element, "");
    element.dataset.id = message.id;
    if (message.author) element.dataset.author = message.author;
    seen.set(message.id, element);
  }

  async function loadHistory() {
    const answer = await authed("GET", () => "/messages");
    if (!answer.ok) return;
    const data = await answer.json();
    for (const message of data.messages || []) show(message, false);
    cursor = Math.max(cursor, data.cursor || 0);
    log.scrollTop = log.scrollHeight;
  }

  function showTyping(on) {
    clearTimeout(typingTimer);
    typing.hidden = !on;
    if (on) typingTimer = setTimeout(showTyping, 20000, false);
  }

  // --- live: server-sent events read with fetch, so that the token travels in a header ---------
  async function listen() {
    for (let delay = 1000; !stopped; ) {
      const began = Date.now();
      const controller = (stream = new AbortController());
      let wait = delay;
      let comeBack = null; // after a stream that ended as the service meant it to
      try {
        const answer = await authed("GET", () => `/events?after=${cursor}`, null, controller.signal);
        if (answer.status === 403 || answer.status === 404) throw new Unavailable("This chat is no longer available.");
        if (answer.ok && answer.body) {
          say("");
          const advice = await readEvents(answer.body.getReader(), controller);
          // The service ends each stream (after ~25 s; at once when busy) and says when to come back.
          comeBack = advice != null ? advice : Date.now() - began > 5000 ? 0 : null;
        } else wait = Math.max(delay, retryAfter(answer) * 1000);
      } catch (error) {
        if (error instanceof Unavailable) return stop(error);
      }
      if (controller.signal.aborted) comeBack = 0; // a new visitor, or a silent stream
      if (comeBack != null) {
        delay = 1000;
        await sleep(comeBack);
        continue;
      }
      say("Reconnecting…");
      await sleep(wait);
      delay = backoff(delay);
    }
  }

  /** Shows the stream's events as they come; at its end, what its `retry:` asked for (ms), if anything. */
  async function readEvents(reader, controller) {
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "";
    let data = [];
    let retry = null;
    let watchdog = 0;
    try {
      for (;;) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), STALL);
        const { value, done } = await reader.read();
        if (done) return retry;
        buffer += decoder.decode(value, { stream: true });
        const lines = buffer.split(/\r\n|\n|\r(?!$)/); // a \r at the very end may be half of a \r\n
        buffer = lines.pop();
        for (const line of lines) {
          if (!line) {
            if (event === "typing") showTyping(true);
            else if ((event || "message") === "message" && data.length) {
              try { show(JSON.parse(data.join("\n")), true); } catch { /* not a message: ignored */ }
            }
            event = "";
            data = [];
          } else if (line[0] !== ":") {
            const [, field, value] = /^([^:]*):? ?(.*)$/s.exec(line);
            if (field === "event") event = value;
            else if (field === "data") data.push(value);
            else if (field === "id" && +value > cursor) cursor = +value;
            else if (field === "retry" && /^\d+$/.test(value)) retry = +value;
          }
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  // --- sending ---------------------------------------------------------------------------------
  function submit() {
    const text = input.value.trim();
    if (!text || input.disabled) return;
    input.value = "";
    grow();
    const element = bubble("visitor", text);
    element.classList.add("pending");
    element.sending = { text, id: uuid() };
    log.append(element);
    log.scrollTop = log.scrollHeight;
    deliver(element);
  }

  async function deliver(element) {
    const { text, id } = element.sending;
    element.classList.replace("failed", "pending");
    note(element, "Sending…");
    for (let attempt = 1, delay = 1000; ; attempt++, delay = backoff(delay)) {
      let answer = null;
      try {
        answer = await authed("POST", () => "/messages", { text, client_message_id: id });
      } catch (error) {
        if (stopped) return;
        if (error instanceof Unavailable) return stop(error);
      } // offline: the same id again, so the message is stored once
      if (answer && answer.ok) {
        const { message } = await answer.json();
        if (seen.has(message.id) && seen.get(message.id) !== element) return element.remove();
        return show(message, false, element);
      }
      if (answer && answer.status < 500) return fail(element, answer);
      if (attempt === 5) return fail(element, null);
      await sleep(delay);
      if (element.dataset.id) return; // the stream showed it stored meanwhile
    }
  }

  function fail(element, answer) {
    if (element.dataset.id) return; // the stream showed it stored meanwhile
    const code = answer ? answer.status : 0;
    if (code === 403 || code === 404) return stop(new Unavailable("This chat is no longer available."));
    element.classList.replace("pending", "failed");
    const retry = () => deliver(element);
    if (code === 413 || code === 422) {
      const tooLong = code === 413 || element.sending.text.length > 2000;
      return note(element, tooLong ? "Not sent: at most 2,000 characters." : "Not sent: this message can't be sent.");
    }
    const seconds = code === 429 && retryAfter(answer);
    if (code === 429) return note(element, `Not sent: too many messages. Try again in ${seconds ? `${seconds} s` : "a moment"}.`, retry);
    if (code === 409) return note(element, "Not sent: this chat is not answering yet.", retry); // no agent linked
    note(element, code ? "Not sent." : "Not sent: no connection.", retry);
  }

  // --- open, close, start ----------------------------------------------------------------------
  function say(text) {
    if (status.textContent !== text) status.textContent = text;
  }

  function stop(error) {
    stopped = true;
    if (stream) stream.abort();
    say(error instanceof Unavailable ? error.message : "The chat is unavailable.");
    input.disabled = sendButton.disabled = true;
  }

  /** At load: the session (a returning visitor's resumed, with its history), then the button. A page the
   * widget does not allow, an unknown widget or a service out of reach shows no button. */
  function boot() {
    session = openSession(4);
    ready = session.then(async (resumed) => {
      launcher.hidden = false;
      // A reload keeps the chat open if it was, without taking the page's focus.
      if (recall("sessionStorage", openKey)) setOpen(true, false);
      if (resumed) await loadHistory().catch(() => undefined); // what it misses, the stream brings
    });
    ready.catch((error) => {
      stopped = true;
      console.warn(`mcagent web chat: not shown (${error.message}) — is this site in the widget's allowed_origins?`);
    });
  }

  /** Live from the first opening on: an open page of a visitor who never chats holds no stream. */
  function goLive() {
    if (live) return;
    live = true;
    ready.then(listen).catch(stop);
  }

  function setOpen(open, moveFocus = true) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    keep("sessionStorage", openKey, open ? "1" : null);
    if (!open) return moveFocus && launcher.focus();
    badge.hidden = !(unread = 0);
    goLive();
    log.scrollTop = log.scrollHeight;
    if (moveFocus) input.focus();
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 120)}px`;
  }

  launcher.onclick = () => setOpen(panel.hidden);
  root.querySelector(".close").onclick = () => setOpen(false);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.stopPropagation();
      setOpen(false);
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", grow);
  root.querySelector("form").onsubmit = (event) => {
    event.preventDefault();
    submit();
  };

  const mount = () => {
    document.body.append(host);
    boot();
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
