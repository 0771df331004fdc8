// The task board: one page, no build step, no framework.
// REST calls go to the site root (/tasks); live changes come over config.websocketUrl.
"use strict";

(() => {
  const STATUSES = ["pending", "in-progress", "completed", "cancelled"];
  const PRIORITY_RANK = { urgent: 0, high: 1, medium: 2, low: 3 };
  const EDITABLE = ["title", "description", "status", "priority", "assigned_to", "due_date", "project_id"];
  const LABELS = {
    title: "Title", description: "Description", status: "Status", priority: "Priority",
    assigned_to: "Assignee", due_date: "Due", project_id: "Project",
  };
  const PING_MS = 5 * 60 * 1000; // API Gateway closes a WebSocket idle for 10 minutes
  const MAX_PAGES = 20;

  const $ = (selector, root = document) => root.querySelector(selector);
  const board = {
    config: { websocketUrl: null, region: null, auth: "iam", loginUrl: null },
    token: null,
    tasks: new Map(), // id -> task, the newest version seen
    gone: new Map(), // id -> version it was deleted at: a late message must not bring it back
    filter: {},
    socket: null,
    subscribed: null, // the subscribe message the socket last sent
    retries: 0,
    editing: null, // {base: the task as it was when opened, mine: the changes of the last save, current}
  };

  // ---- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function call(method, path, body, version) {
    const headers = { accept: "application/json" };
    if (version !== undefined) headers["if-match"] = `"${version}"`;
    if (body !== undefined) headers["content-type"] = "application/json";
    if (board.token) headers.authorization = `Bearer ${board.token}`;
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = { message: text.slice(0, 200) }; }
    if (response.status === 401 || (response.status === 403 && board.config.auth === "jwt")) {
      signedOut("the API refused the token: sign in again");
    }
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  function query(params) {
    const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
    return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
  }

  async function loadTasks() {
    const seen = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const listed = await call("GET", "/tasks" + query({ ...board.filter, limit: 100, cursor }));
      for (const task of listed.tasks) seen.set(task.id, task);
      cursor = listed.next_cursor;
      if (!cursor) break;
    }
    for (const [id, task] of seen) {
      const known = board.tasks.get(id);
      if (!known || known.version <= task.version) board.tasks.set(id, task);
    }
    for (const id of [...board.tasks.keys()]) if (!seen.has(id)) board.tasks.delete(id);
    render();
  }

  // ---- who is signed in ---------------------------------------------------------------------

  function tokenClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    } catch (_) {
      return null;
    }
  }

  function usableToken(token) {
    const claims = token && tokenClaims(token);
    return Boolean(claims) && (!claims.exp || claims.exp * 1000 > Date.now() + 5000);
  }

  function takeTokenFromLogin() {
    // The hosted login (implicit grant) comes back with #id_token=...&access_token=...
    const fragment = new URLSearchParams(location.hash.slice(1));
    const token = fragment.get("id_token") || fragment.get("access_token");
    if (token) {
      sessionStorage.setItem("board.token", token);
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function loginHref(loginUrl) {
    const url = new URL(loginUrl, location.href);
    if (!url.searchParams.has("redirect_uri")) url.searchParams.set("redirect_uri", location.origin + location.pathname);
    return url.toString();
  }

  function signedOut(reason) {
    sessionStorage.removeItem("board.token");
    board.token = null;
    showSignIn(reason);
  }

  function showSignIn(reason) {
    const login = $("#login");
    login.parentElement.hidden = !board.config.loginUrl;
    if (board.config.loginUrl) login.href = loginHref(board.config.loginUrl);
    $("#signin").hidden = false;
    $("#main").hidden = true;
    if (reason) problem(reason);
  }

  function needsToken() {
    if (board.config.auth !== "jwt") return false;
    const stored = sessionStorage.getItem("board.token");
    if (usableToken(stored)) {
      board.token = stored;
      return false;
    }
    showSignIn(stored ? "your token has expired: sign in again" : null);
    return true;
  }

  function me() {
    const input = $("#me");
    const name = input.value.trim();
    if (!name) {
      problem("Enter your name first: changes are recorded under it.");
      input.focus();
      throw new Error("no name");
    }
    localStorage.setItem("board.me", name);
    return name;
  }

  // ---- rendering ----------------------------------------------------------------------------

  function matches(task) {
    const { project_id: project, assigned_to: assignee } = board.filter;
    return (!project || String(task.project_id) === String(project)) && (!assignee || task.assigned_to === assignee);
  }

  function byPriorityThenAge(a, b) {
    return (PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority]) || a.created_at.localeCompare(b.created_at);
  }

  function day(value) {
    return value ? String(value).slice(0, 10) : "";
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    node.append(...children.filter(Boolean));
    return node;
  }

  function card(task) {
    const meta = el("dl", { class: "meta" },
      el("dt", { text: "Priority" }), el("dd", { class: `priority ${task.priority}`, text: task.priority }),
      el("dt", { text: "Assignee" }), el("dd", { "data-field": "assigned_to", text: task.assigned_to || "nobody" }),
      task.due_date && el("dt", { text: "Due" }),
      task.due_date && el("dd", { "data-field": "due_date" }, el("time", { datetime: day(task.due_date), text: day(task.due_date) })),
      task.project_id && el("dt", { text: "Project" }),
      task.project_id && el("dd", { text: String(task.project_id) }),
      el("dt", { text: "Version" }), el("dd", { "data-field": "version", text: String(task.version) }),
    );
    const actions = el("div", { class: "actions" },
      el("button", { type: "button", "data-action": "edit", "aria-label": `Edit ${task.title}`, text: "Edit" }),
      task.status !== "completed" &&
        el("button", { type: "button", "data-action": "complete", "aria-label": `Complete ${task.title}`, text: "Complete" }),
      el("button", { type: "button", "data-action": "delete", "aria-label": `Delete ${task.title}`, text: "Delete" }),
    );
    return el("li", {
      class: "card", tabindex: "0", "data-id": task.id, "data-version": String(task.version),
      "aria-label": `${task.title}, ${task.priority} priority, ${task.assigned_to ? "assigned to " + task.assigned_to : "unassigned"}`,
    }, el("h3", { text: task.title }), meta, actions);
  }

  function render(flashId) {
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".card");
    const focusId = focused && focused.dataset.id;
    const focusAction = document.activeElement && document.activeElement.dataset.action;
    const visible = [...board.tasks.values()].filter(matches).sort(byPriorityThenAge);
    for (const column of document.querySelectorAll(".column")) {
      const tasks = visible.filter((t) => t.status === column.dataset.status);
      $(".cards", column).replaceChildren(...tasks.map(card));
      $(".count", column).textContent = `(${tasks.length})`;
    }
    if (focusId) {
      const again = document.querySelector(`.card[data-id="${focusId}"]`);
      const target = again && ((focusAction && $(`[data-action="${focusAction}"]`, again)) || again);
      if (target) target.focus();
    }
    if (flashId) {
      const changed = document.querySelector(`.card[data-id="${flashId}"]`);
      if (changed) changed.classList.add("flash");
    }
  }

  function problem(text) {
    const node = $("#problem");
    node.textContent = text || "";
    node.hidden = !text;
  }

  function announce(text) {
    $("#announce").textContent = text;
  }

  function explain(error) {
    if (!(error instanceof ApiError)) return error.message === "no name" ? null : `The request failed: ${error.message}`;
    const details = error.body.details ? Object.entries(error.body.details).map(([k, v]) => `${k} ${v}`).join("; ") : "";
    return details ? `${error.message}: ${details}` : error.message;
  }

  // ---- changes, from here or from elsewhere -------------------------------------------------

  function apply(task, event) {
    const known = board.tasks.get(task.id);
    if (known && known.version > task.version) return false; // stale: a newer version is shown
    const deletedAt = board.gone.get(task.id);
    if (deletedAt !== undefined && deletedAt >= task.version) return false;
    if (event === "task.deleted") {
      board.gone.set(task.id, task.version);
      board.tasks.delete(task.id);
    } else {
      board.tasks.set(task.id, task);
    }
    return true;
  }

  function received(message) {
    if (message.type === "subscribed" || message.type === "unsubscribed") return settle(message);
    if (message.type !== "task" || !message.task || !message.task.id) return;
    if (message.partial && message.event !== "task.deleted") return readWhole(message);
    if (apply(message.task, message.event)) {
      render(message.task.id);
      const where = message.region ? ` in ${message.region}` : "";
      announce(`${message.task.title}: ${message.event.replace("task.", "")}${where}`);
    }
  }

  async function readWhole(message) {
    // Too large for one frame, the task came without its description: read it whole.
    const known = board.tasks.get(message.task.id);
    if (known && known.version >= message.task.version) return;
    try {
      const { task } = await call("GET", `/tasks/${message.task.id}`);
      if (apply(task, message.event)) render(task.id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) problem(explain(error));
    }
  }

  async function create(form) {
    const data = new FormData(form);
    const body = { title: data.get("title").trim(), priority: data.get("priority"), created_by: me() };
    if (data.get("assigned_to").trim()) body.assigned_to = data.get("assigned_to").trim();
    if (data.get("due_date")) body.due_date = data.get("due_date");
    if (data.get("project_id")) body.project_id = Number(data.get("project_id"));
    const created = await call("POST", "/tasks", body);
    apply(created.task, "task.created");
    render(created.task.id);
    form.reset();
    announce(`Added ${created.task.title}`);
    $("input[name=title]", form).focus();
  }

  async function complete(task) {
    try {
      const done = await call("POST", `/tasks/${task.id}/complete`, { completed_by: me(), version: task.version });
      apply(done.task, "task.completed");
      render(task.id);
      announce(`Completed ${done.task.title}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return conflictElsewhere(error, "complete");
      throw error;
    }
  }

  async function remove(task) {
    if (!window.confirm(`Delete "${task.title}"?`)) return;
    try {
      await call("DELETE", `/tasks/${task.id}`, undefined, task.version);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return conflictElsewhere(error, "delete");
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
    apply(task, "task.deleted");
    render();
    announce(`Deleted ${task.title}`);
  }

  function conflictElsewhere(error, what) {
    // Completing or deleting a version that is no longer current: show what is saved now.
    if (error.body.task) {
      apply(error.body.task, "task.updated");
      render(error.body.task.id);
    }
    problem(`Someone changed "${(error.body.task || {}).title || "this task"}" first: check it, then ${what} it again.`);
  }

  // ---- the editor and its conflict view ------------------------------------------------------

  function formValue(form, field) {
    const raw = form.elements[field].value;
    if (field === "project_id") return raw.trim() ? Number(raw) : null;
    if (field === "title" || field === "status" || field === "priority") return raw;
    return raw.trim() === "" ? null : raw;
  }

  function taskValue(task, field) {
    if (field === "due_date") return task.due_date ? day(task.due_date) : null;
    const value = task[field];
    return value === undefined || value === "" ? null : value;
  }

  function fill(form, task) {
    for (const field of EDITABLE) {
      const value = taskValue(task, field);
      form.elements[field].value = value === null ? "" : String(value);
    }
    $("[data-version]", form).textContent = String(task.version);
  }

  function openEditor(task) {
    const form = $("#edit");
    board.editing = { base: { ...task }, mine: null, current: null };
    fill(form, task);
    $("#conflict").hidden = true;
    $("#editor").showModal();
    form.elements.title.focus();
  }

  function closeEditor() {
    board.editing = null;
    if ($("#editor").open) $("#editor").close();
  }

  function changesIn(form, base) {
    const changes = {};
    for (const field of EDITABLE) {
      const value = formValue(form, field);
      if (value !== taskValue(base, field)) changes[field] = value;
    }
    return changes;
  }

  async function save(changes, version) {
    const editing = board.editing;
    try {
      const saved = await call("PATCH", `/tasks/${editing.base.id}`, { ...changes, updated_by: me(), version });
      apply(saved.task, "task.updated");
      render(saved.task.id);
      closeEditor();
      announce(`Saved ${saved.task.title}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409 && error.body.task)) throw error;
      showConflict(changes, error.body.task);
    }
  }

  function showConflict(mine, current) {
    const editing = board.editing;
    editing.mine = mine;
    editing.current = current;
    apply(current, "task.updated");
    render(current.id);
    const fields = EDITABLE.filter((f) => f in mine || taskValue(current, f) !== taskValue(editing.base, f));
    $("#conflict-rows").replaceChildren(...fields.map((field) => {
      const saved = taskValue(current, field);
      const changed = field in mine;
      const yours = changed ? (mine[field] === null ? "—" : String(mine[field])) : "(you left it)";
      return el("tr", { "data-field": field, class: changed && saved !== mine[field] ? "differs" : "" },
        el("th", { scope: "row", text: LABELS[field] }),
        el("td", { "data-side": "saved", text: saved === null ? "—" : String(saved) }),
        el("td", { "data-side": "yours", text: yours }));
    }));
    $("[data-current-version]").textContent = String(current.version);
    $("#conflict").hidden = false;
    $("#reapply").focus();
  }

  async function reapply() {
    const { mine, current } = board.editing;
    board.editing.base = { ...current };
    $("#conflict").hidden = true;
    await save(mine, current.version);
  }

  function discard() {
    const { current } = board.editing;
    closeEditor();
    announce(`Kept the saved version of ${current.title}`);
  }

  // ---- the live socket ----------------------------------------------------------------------

  function setLive(state) {
    const node = $("#live");
    node.dataset.state = state;
    node.textContent = { live: "live", connecting: "connecting…", offline: "offline: reload to see changes" }[state];
  }

  // What the socket is subscribed to can end up other than wanted when filters change quickly:
  // each message is its own invocation, handled in either order, so an unsubscribe can land
  // after a subscribe of the same topic. Each answer says what was just done; where that is not
  // what is wanted now, the board asks again, and the subscriptions settle on the filter shown.
  function settle(message) {
    const wanted = board.subscribed;
    const socket = board.socket;
    if (!wanted || !socket || socket.readyState !== WebSocket.OPEN) return;
    const same = topicOf(message) === topicOf(wanted);
    if (message.type === "unsubscribed" && same) socket.send(JSON.stringify(wanted));
    if (message.type === "subscribed" && !same) {
      socket.send(JSON.stringify({ ...topicFields(message), action: "unsubscribe" }));
    }
    if (message.type === "subscribed" && same) setLive("live");
  }

  function topicFields(message) {
    const fields = {};
    for (const key of ["project", "assignee", "all"]) if (key in message) fields[key] = message[key];
    return fields;
  }

  function topicOf(message) {
    return Object.entries(topicFields(message)).map(([k, v]) => `${k}:${v}`).join(",");
  }

  function subscription() {
    if (board.filter.project_id) return { action: "subscribe", project: String(board.filter.project_id) };
    if (board.filter.assigned_to) return { action: "subscribe", assignee: board.filter.assigned_to };
    return { action: "subscribe", all: true };
  }

  function connect() {
    if (!board.config.websocketUrl) return setLive("offline");
    const url = new URL(board.config.websocketUrl, location.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (board.token) url.searchParams.set("token", board.token);
    setLive("connecting");
    const socket = new WebSocket(url.toString());
    board.socket = socket;
    let pinger = null;
    socket.addEventListener("open", () => {
      board.retries = 0;
      board.subscribed = subscription();
      socket.send(JSON.stringify(board.subscribed));
      pinger = setInterval(() => socket.send(JSON.stringify({ action: "ping" })), PING_MS);
      if (board.reconnected) loadTasks().catch((e) => problem(explain(e))); // what changed while away
    });
    socket.addEventListener("message", (event) => {
      try { received(JSON.parse(event.data)); } catch (_) { /* not a message for the board */ }
    });
    socket.addEventListener("close", () => {
      clearInterval(pinger);
      if (board.socket !== socket) return; // replaced on purpose
      setLive("connecting");
      board.reconnected = true;
      const delay = Math.min(30000, 500 * 2 ** board.retries) * (0.5 + Math.random() / 2);
      board.retries += 1;
      setTimeout(() => { if (board.socket === socket) connect(); }, delay);
    });
  }

  function resubscribe() {
    const socket = board.socket;
    if (socket && socket.readyState === WebSocket.OPEN && board.subscribed) {
      // The same connection: take the old filter's subscription back and subscribe to the new.
      // Each message is its own invocation and may be handled in either order, so the same
      // topic is left alone (an unsubscribe could land after its subscribe).
      const wanted = subscription();
      if (JSON.stringify(wanted) === JSON.stringify(board.subscribed)) return;
      socket.send(JSON.stringify({ ...board.subscribed, action: "unsubscribe" }));
      board.subscribed = wanted;
      socket.send(JSON.stringify(wanted));
      return;
    }
    // not connected yet: a new connection subscribes to the new filter when it opens
    const old = board.socket;
    board.socket = null;
    if (old) old.close();
    board.retries = 0;
    connect();
  }

  // ---- wiring -------------------------------------------------------------------------------

  function taskOf(node) {
    const item = node.closest(".card");
    return item && board.tasks.get(item.dataset.id);
  }

  function guarded(work) {
    return async (...args) => {
      problem(null);
      try {
        await work(...args);
      } catch (error) {
        const text = explain(error);
        if (text) problem(text);
      }
    };
  }

  function moveFocus(from, key) {
    const cards = [...document.querySelectorAll(".card")];
    const column = from.closest(".column");
    const columns = [...document.querySelectorAll(".column")];
    let target = null;
    if (key === "ArrowDown") target = from.nextElementSibling;
    if (key === "ArrowUp") target = from.previousElementSibling;
    if (key === "ArrowRight" || key === "ArrowLeft") {
      const step = key === "ArrowRight" ? 1 : -1;
      for (let i = columns.indexOf(column) + step; i >= 0 && i < columns.length && !target; i += step) {
        target = $(".card", columns[i]);
      }
    }
    if (target && cards.includes(target)) target.focus();
    return Boolean(target);
  }

  function wire() {
    $("#me").value = localStorage.getItem("board.me") || "";
    $("#who").addEventListener("submit", (e) => e.preventDefault());
    $("#new").addEventListener("submit", (e) => { e.preventDefault(); guarded(create)(e.target); });
    $("#filter").addEventListener("submit", (e) => {
      e.preventDefault();
      const data = new FormData(e.target);
      board.filter = { project_id: data.get("project_id").trim(), assigned_to: data.get("assigned_to").trim() };
      resubscribe();
      guarded(loadTasks)();
    });
    $("#columns").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      const task = button && taskOf(button);
      if (!task) return;
      const action = button.dataset.action;
      if (action === "edit") openEditor(task);
      if (action === "complete") guarded(complete)(task);
      if (action === "delete") guarded(remove)(task);
    });
    $("#edit").addEventListener("submit", (e) => {
      e.preventDefault();
      const { base } = board.editing;
      const changes = changesIn(e.target, base);
      if (!Object.keys(changes).length) return closeEditor();
      guarded(save)(changes, base.version);
    });
    $("#cancel").addEventListener("click", closeEditor);
    $("#reapply").addEventListener("click", () => guarded(reapply)());
    $("#discard").addEventListener("click", discard);
    $("#editor").addEventListener("close", () => { board.editing = null; });
    $("#token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = e.target.elements.token.value.trim();
      if (!usableToken(token)) return problem("That is not a JWT, or it has expired.");
      sessionStorage.setItem("board.token", token);
      location.reload();
    });
    document.addEventListener("keydown", (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey || $("#editor").open) return;
      const typing = e.target.closest && e.target.closest("input, textarea, select");
      if (typing) return;
      const item = e.target.closest && e.target.closest(".card");
      if (e.key === "n") { e.preventDefault(); $("#new input[name=title]").focus(); return; }
      if (e.key === "/") { e.preventDefault(); $("#filter input").focus(); return; }
      if (!item || e.target !== item) return;
      const task = taskOf(item);
      if (e.key === "Enter") { e.preventDefault(); openEditor(task); }
      else if (e.key === "c" && task.status !== "completed") guarded(complete)(task);
      else if (e.key === "Delete") guarded(remove)(task);
      else if (e.key.startsWith("Arrow") && moveFocus(item, e.key)) e.preventDefault();
    });
  }

  async function loadConfig() {
    try {
      const response = await fetch("/board/config.json", { headers: { accept: "application/json" } });
      if (response.ok) return { ...board.config, ...(await response.json()) };
    } catch (_) { /* served without a config: no live updates */ }
    return board.config;
  }

  async function start() {
    wire();
    takeTokenFromLogin();
    board.config = await loadConfig();
    $("#region").textContent = board.config.region ? `region ${board.config.region}` : "";
    if (needsToken()) return;
    if (!$("#me").value && board.token) {
      const claims = tokenClaims(board.token) || {};
      $("#me").value = claims.preferred_username || claims["cognito:username"] || claims.email || claims.sub || "";
    }
    connect();
    await guarded(loadTasks)();
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
