// The fan page: the reference client of the entry API and its line.
//
// The protocol (docs/line.md): POST /events/{id}/entries. 202 or 200 is the
// answer "you are in"; 203 is "waiting": keep the ticket it carries
// (X-Fanrush-Ticket, also in the body) and POST again with it after
// retryAfterMs (the server jitters it; Retry-After is the same in seconds).
// 409 sold_out and 410 turn_missed are final; 503 and 429 say when to retry
// with Retry-After, and the ticket keeps the place meanwhile.
//
// The wait survives a reload: the attempt (event, identity, ticket, the
// most people ever ahead) is kept in sessionStorage, which lives as long as
// the tab, and a reloaded page carries on with the same ticket, so the same
// place. A final answer clears it.
//
// An event with a pre-queue shows its draw's commitment while the fan
// waits, and an admission shows the fan's signed receipt with how to check
// it (docs/line.md, "Checking the draw").
"use strict";

const params = new URLSearchParams(location.search);
// The APIs this page was deployed for: the fanrush-api meta tag, written at
// deploy time (scripts/fan-page.sh), else this page's own origin (make
// run's gateway serves both). ?api= may choose among them and nothing else,
// so a link cannot send the fan's token to another server; the page's
// Content-Security-Policy refuses any other connection too.
const trimmed = (url) => url.replace(/\/+$/, "");
const deployedFor = (document.querySelector('meta[name="fanrush-api"]')?.content || "")
  .split(/\s+/)
  .filter(Boolean)
  .map(trimmed);
const ALLOWED_APIS = deployedFor.length ? deployedFor : [location.origin];
const askedApi = trimmed(params.get("api") || "");
const API = ALLOWED_APIS.includes(askedApi) ? askedApi : ALLOWED_APIS[0];
const API_REFUSED = askedApi !== "" && askedApi !== API;
const TICKET_HEADER = "x-fanrush-ticket";
const $ = (id) => document.getElementById(id);

let attempt = null; // the entry in progress: { event, ticket, firstAhead, timer, failures }
const SAVED = "fanrush:attempt";

// The attempt as the tab keeps it across a reload.
function save() {
  if (!attempt) return;
  const { event, ticket, firstAhead } = attempt;
  const who = { fan: $("fan").value.trim(), token: $("token").value.trim() };
  sessionStorage.setItem(SAVED, JSON.stringify({ event, ticket, firstAhead, ...who }));
}

function forget() {
  sessionStorage.removeItem(SAVED);
}

function identity() {
  const headers = {};
  const token = $("token").value.trim();
  const fan = $("fan").value.trim();
  if (token) headers.authorization = `Bearer ${token}`;
  else if (fan) headers["x-fan-id"] = fan;
  return headers;
}

async function call(method, path, { body, headers = {} } = {}) {
  const response = await fetch(API + path, {
    method,
    headers: { ...identity(), ...(body ? { "content-type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, headers: response.headers, data };
}

function say(text) {
  $("status").textContent = text;
}

function seconds(n) {
  if (n === null || n === undefined) return "-";
  if (n < 60) return `${n} s`;
  const m = Math.floor(n / 60);
  return `${m} min ${n % 60} s`;
}

function retryAfterMs(answer, fallbackMs) {
  if (answer.data && Number.isFinite(answer.data.retryAfterMs)) return answer.data.retryAfterMs;
  const header = Number(answer.headers.get("retry-after"));
  return Number.isFinite(header) && header > 0 ? header * 1000 : fallbackMs;
}

function show(section) {
  $("line").hidden = section !== "line";
  $("result").hidden = section !== "result";
}

function finish(kind, title, text, canRejoin = false, receipt = null) {
  forget();
  show("result");
  showReceipt(receipt);
  $("result").className = kind;
  $("result-title").textContent = title;
  $("result-text").textContent = text;
  $("again").hidden = !canRejoin;
  $("enter").disabled = false;
  say("");
  attempt = null;
}

// The admitted fan's signed receipt, and how anyone checks it.
function showReceipt(receipt) {
  $("receipt").hidden = !receipt;
  if (!receipt) return;
  const event = encodeURIComponent(receipt.eventId);
  $("receipt-json").textContent = JSON.stringify(receipt, null, 2);
  $("receipt-command").textContent =
    `fanrush verify-draw --event ${receipt.eventId} --api ${API} --fan <your id> --receipt receipt.json`;
  $("receipt-keys").href = `${API}/receipt-keys`;
  $("receipt-draw").href = `${API}/draws/${event}`;
}

// The event's commitment to its pre-queue draw, shown while the fan waits.
async function showCommitment(a) {
  try {
    const r = await call("GET", `/events/${encodeURIComponent(a.event)}`);
    if (attempt !== a || r.status !== 200 || !r.data || !r.data.drawCommitment) return;
    $("commitment").textContent = r.data.drawCommitment;
    $("commitment-text").hidden = false;
  } catch {
    // Shown when it can be read; the wait goes on without it.
  }
}

// The progress bar: the share of the most people ever ahead of this fan
// who are no longer ahead (docs/api.md).
function progressOf(ahead, firstAhead) {
  return Math.min(1, Math.max(0, 1 - ahead / Math.max(firstAhead, 1)));
}

function waiting(w, waitMs) {
  show("line");
  if (w.position === null) {
    $("line-text").textContent =
      `The event opens in ${seconds(w.opensInSeconds)}. Everyone who joins before then gets a place ` +
      "drawn at random at the opening; nobody gains by joining earlier.";
    $("progress").removeAttribute("value");
  } else {
    if (attempt.firstAhead === null || w.ahead > attempt.firstAhead) attempt.firstAhead = w.ahead;
    $("progress").value = progressOf(w.ahead, attempt.firstAhead);
    $("line-text").textContent = w.beyondReach
      ? "The places left are unlikely to reach you, even if many ahead of you leave. We will check less often."
      : w.ahead === 0
        ? "Your turn is next."
        : "The line is moving; this page will enter for you.";
  }
  $("position").textContent = w.position === null ? "drawn at the opening" : String(w.position);
  $("ahead").textContent = w.ahead === null ? "-" : String(w.ahead);
  $("eta").textContent = seconds(w.etaSeconds);
  $("left").textContent = Number.isFinite(w.placesLeft) ? String(w.placesLeft) : "-";
  $("next").textContent = `in ${(waitMs / 1000).toFixed(1)} s`;
}

async function enter() {
  const a = attempt;
  let answer;
  try {
    const headers = a.ticket ? { [TICKET_HEADER]: a.ticket } : {};
    answer = await call("POST", `/events/${encodeURIComponent(a.event)}/entries`, {
      body: { note: $("note").value || null },
      headers,
    });
  } catch (e) {
    // The network, not the API: back off (exponential, full jitter, at most 30 s).
    a.failures += 1;
    const wait = Math.random() * Math.min(30000, 1000 * 2 ** a.failures);
    say(`No answer from the API (${e.message}); trying again in ${(wait / 1000).toFixed(1)} s.`);
    a.timer = setTimeout(enter, wait);
    return;
  }
  if (attempt !== a) return;
  a.failures = 0;
  const d = answer.data || {};
  switch (answer.status) {
    case 202:
    case 200:
      finish("in", "You're in!", `You entered ${a.event} at position ${d.position}.`, false, d.receipt || null);
      return;
    case 203: {
      a.ticket = answer.headers.get(TICKET_HEADER) || d.ticket || a.ticket;
      const wait = retryAfterMs(answer, 1000);
      waiting(d, wait);
      save();
      say("");
      a.timer = setTimeout(enter, wait);
      return;
    }
    case 409:
      finish("out", "Sold out", d.message || "No places are left.");
      return;
    case 410:
      a.ticket = null;
      finish("out", "Your turn passed", d.message || "Your turn came and passed.", true);
      return;
    case 429:
    case 503: {
      const wait = retryAfterMs(answer, 2000);
      say(`${d.message || "Busy"}; your place is kept. Trying again in ${(wait / 1000).toFixed(1)} s.`);
      a.timer = setTimeout(enter, wait);
      return;
    }
    default:
      finish("out", `Not entered (${d.error || answer.status})`, d.message || "The API refused the request.");
  }
}

async function describe(event) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(event)) {
    $("event-info").textContent = "";
    return;
  }
  try {
    const r = await call("GET", `/events/${encodeURIComponent(event)}`);
    if (r.status !== 200) {
      $("event-info").textContent = r.data ? r.data.message : `no such event (${r.status})`;
      return;
    }
    const e = r.data;
    $("event-info").textContent =
      `${e.title}: opens ${new Date(e.opensAt).toLocaleString()}, ${e.remaining} of ${e.capacity} places left.`;
  } catch {
    $("event-info").textContent = "";
  }
}

// In local dev mode the admin API lists the events; deployed, it needs IAM
// and the list stays empty (type the event id).
async function listEvents() {
  try {
    const r = await call("GET", "/admin/events");
    if (r.status !== 200 || !Array.isArray(r.data)) return;
    $("events").replaceChildren(
      ...r.data.map((e) => {
        const o = document.createElement("option");
        o.value = e.eventId;
        o.label = e.title;
        return o;
      }),
    );
  } catch {
    // No list: the field still takes an id.
  }
}

function start(event, saved = null) {
  if (attempt) clearTimeout(attempt.timer);
  attempt = { event, ticket: saved?.ticket ?? null, firstAhead: saved?.firstAhead ?? null, timer: null, failures: 0 };
  $("enter").disabled = true;
  $("commitment-text").hidden = true;
  show(null);
  showCommitment(attempt);
  say(saved ? "Back in line with your ticket..." : "Entering...");
  enter();
}

// A reload in the middle of a wait carries on with the same ticket.
function resume() {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(SAVED));
  } catch {
    forget();
  }
  if (!saved || !saved.event) return;
  $("event").value = saved.event;
  $("fan").value = saved.fan || "";
  $("token").value = saved.token || "";
  start(saved.event, saved);
}

document.addEventListener("DOMContentLoaded", () => {
  $("api").textContent = API;
  if (API_REFUSED) say(`This page talks only to the API it was deployed for (${API}); ?api=${askedApi} is ignored.`);
  if (params.get("event")) $("event").value = params.get("event");
  listEvents();
  $("event").addEventListener("change", () => describe($("event").value.trim()));
  $("join").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!$("fan").value.trim() && !$("token").value.trim()) {
      say("Give a fan id (local dev mode) or a token.");
      return;
    }
    start($("event").value.trim());
  });
  $("again").addEventListener("click", () => start($("event").value.trim()));
  resume();
});
