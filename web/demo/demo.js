// The Outbox demo page. UI code only: every outbox decision (what to queue,
// when to retry, pacing, tokens, dead letters) is made by the wasm engine,
// in this page (outbox_page.js) and in the service worker (sw.js).
//
// Stable hooks for the end-to-end tests: every element a test reads or
// clicks has a `data-testid`; messages carry `data-state`, `data-id`,
// `data-conv`, `data-door` and `data-text`; <body data-ready="true"> once
// the outbox is open and the service worker controls the page.

import init, { Outbox } from '/outbox_page.js';

// ---------------------------------------------------------------------------
// Small DOM helpers

const $ = (id) => document.getElementById(id);

/** Creates an element: `h('li', { class: 'x', 'data-id': 1, onclick }, child, 'text')`. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
const seconds = (ms) => (ms < 60_000 ? `${Math.ceil(ms / 1000)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);
const shortId = (id) => (id ? id.slice(0, 8) : '');

/** A Genesys error as one line: `503 service.unavailable — The service… (contextId …)`. */
function errorLine(e) {
  if (!e) return '';
  const head = [e.status, e.code].filter(Boolean).join(' ');
  return [head, e.message].filter(Boolean).join(' — ');
}

function banner(text, kind = 'error') {
  const b = $('banner');
  b.textContent = text;
  b.className = `banner ${kind}`;
  b.hidden = !text;
}

// ---------------------------------------------------------------------------
// Conversations (the lanes): two agent conversations and one Open Messaging
// customer. Their ids can be edited (real region mode needs real ids) and
// are remembered in localStorage.

const DEFAULT_CONVERSATIONS = [
  { key: 'alice', name: 'Alice', kind: 'agent', conversationId: 'conv-alice', communicationId: 'comm-alice' },
  { key: 'bob', name: 'Bob', kind: 'agent', conversationId: 'conv-bob', communicationId: 'comm-bob' },
  { key: 'carol', name: 'Carol', kind: 'open', integrationId: 'open-demo', fromId: 'carol' },
];

const FIELDS = {
  agent: [['conversationId', 'Conversation id'], ['communicationId', 'Communication id']],
  open: [['integrationId', 'Open Messaging integration id'], ['fromId', 'Customer id (channel.from.id)']],
};

function loadConversations() {
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem('outbox-demo-conversations') || '{}'); } catch { /* ignore */ }
  return DEFAULT_CONVERSATIONS.map((c) => ({ ...c, ...(saved[c.key] || {}) }));
}

function saveConversations() {
  const out = {};
  for (const c of ui.conversations) {
    out[c.key] = Object.fromEntries(FIELDS[c.kind].map(([f]) => [f, c[f]]));
  }
  localStorage.setItem('outbox-demo-conversations', JSON.stringify(out));
}

/** The outbox lane of a conversation (what the route table derives from the request). */
const laneOf = (c) => (c.kind === 'agent' ? c.conversationId : c.fromId);

const ui = {
  config: null, // /demo-config.json
  outbox: null,
  worker: false, // a service worker controls this page
  conversations: loadConversations(),
  active: 'alice',
  messages: [], // every bubble, in the order written
  byId: new Map(), // outbox id → message
  early: new Map(), // outbox id → events seen before the id was known
  token: null, // the fetch door's bearer token { value, until }
  drain: null, // { delivered, dead, total, doneAt }
  pausedReason: new Map(), // origin → reason of the last `paused` event
  stats: null,
  deadIds: '',
  faults: {},
  replies: new Set(), // ids of the agent's answers already shown
};
window.demo = ui; // for the console

// ---------------------------------------------------------------------------
// Messages and their states

const FINAL = new Set(['sent', 'cancelled', 'discarded', 'purged', 'rejected', 'refused', 'failed']);
const LABEL = {
  saving: 'saving…',
  queued: 'queued',
  sending: 'sending',
  sent: 'sent',
  retrying: 'retrying',
  'awaiting-token': 'awaiting token',
  dead: 'dead',
  cancelled: 'cancelled',
  discarded: 'discarded',
  purged: 'purged',
  rejected: 'rejected',
  refused: 'not queued',
  failed: 'failed',
};

function conversation(key) {
  return ui.conversations.find((c) => c.key === key);
}

function addMessage(conv, text, door, extra = {}) {
  const msg = { key: ui.messages.length + 1, conv: conv.key, lane: laneOf(conv), text, door, state: 'saving', at: Date.now(), ...extra };
  msg.el = h('li', { class: 'msg', 'data-testid': 'message', 'data-conv': conv.key, 'data-door': door, 'data-text': text });
  ui.messages.push(msg);
  $(`thread-${conv.key}`).append(msg.el);
  render(msg);
  scrollThread(conv.key);
  return msg;
}

function bindId(msg, id) {
  if (!id || msg.id) return;
  msg.id = id;
  ui.byId.set(id, msg);
  const waiting = ui.early.get(id);
  ui.early.delete(id);
  for (const e of waiting || []) apply(msg, e);
  render(msg);
}

function setState(msg, state, details = {}) {
  Object.assign(msg, { state, since: Date.now() }, details);
  render(msg);
  renderTabs();
}

/** An outbox event for a message: moves its state forward, never back from a final one. */
function apply(msg, e) {
  if (FINAL.has(msg.state)) return;
  if (msg.state === 'dead' && !['revived', 'discarded'].includes(e.type)) return;
  switch (e.type) {
    case 'queued': setState(msg, 'queued', { reason: e.reason }); break;
    case 'sending': setState(msg, 'sending', { attempt: e.attempt }); break;
    case 'sent': setState(msg, 'sent', { status: e.status, duplicate: e.duplicate, live: false }); break;
    case 'retrying': setState(msg, 'retrying', { attempt: e.attempt, nextAttemptAt: e.nextAttemptAt, error: e.error }); break;
    case 'awaiting-token': setState(msg, 'awaiting-token'); break;
    case 'dead': setState(msg, 'dead', { error: e.error }); break;
    case 'revived': setState(msg, 'queued', { reason: 'revived', error: null }); break;
    case 'discarded': setState(msg, 'discarded'); break;
    case 'cancelled': setState(msg, 'cancelled'); break;
    default: break;
  }
}

/** Why an entry was queued, in words (the engine's reasons are terse). */
function reasonText(reason) {
  if (!reason) return 'waiting to be sent';
  const words = {
    'write-through': 'saved in IndexedDB',
    'lane-busy': 'waits behind earlier messages',
    'lane-held': 'waits: an earlier message of this conversation is a dead letter (retry or discard it)',
    'origin-paused': 'sending is paused (rate limit)',
    'origin-down': 'the server gives no answer: kept while one probe finds out when it is back',
    throttled: 'the server sheds load: kept, sent at the reduced rate',
    revived: 'back from the dead letters',
  }[reason];
  // Otherwise the first attempt's error, e.g. "[network] network error: …".
  return words ?? reason.replace(/^\[[a-z-]+\] /, '');
}

function detailOf(msg) {
  switch (msg.state) {
    case 'queued': {
      const held = ui.held && [...ui.held.values()].includes(msg.lane);
      return `kept in the outbox · ${reasonText(held ? 'lane-held' : msg.reason)}`;
    }
    case 'sending': return msg.attempt ? `attempt ${msg.attempt}` : '';
    case 'sent':
      if (msg.live) return `delivered live · HTTP ${msg.status}`;
      return `delivered from the outbox · HTTP ${msg.status}${msg.duplicate ? ' (the server already had it)' : ''}`;
    case 'retrying': {
      const wait = Math.max(0, (msg.nextAttemptAt || 0) - Date.now());
      return `next attempt in ${seconds(wait)} · ${errorLine(msg.error) || 'network error'}`;
    }
    case 'awaiting-token': return 'the token was refused; waiting for a fresh one';
    case 'dead': return errorLine(msg.error);
    case 'rejected': return `${errorLine(msg.error)} · not queued: the app still holds it`;
    case 'refused': return msg.message || 'the outbox could not keep it';
    case 'failed': return msg.message || '';
    case 'purged': return 'removed by purge';
    default: return '';
  }
}

function render(msg) {
  const el = msg.el;
  el.dataset.state = msg.state;
  if (msg.id) el.dataset.id = msg.id;
  const conv = conversation(msg.conv);
  const who = conv.kind === 'agent' ? `Agent → ${conv.name}` : `${conv.name} (customer)`;
  const state = h('span', { class: `state state-${msg.state}`, 'data-testid': 'message-state' }, LABEL[msg.state] || msg.state);
  const detail = h('span', { class: 'detail', 'data-testid': 'message-detail' }, detailOf(msg));
  const actions = [];
  if (['queued', 'retrying', 'awaiting-token'].includes(msg.state) && msg.id) {
    actions.push(h('button', { type: 'button', class: 'link', 'data-testid': 'message-cancel', onclick: () => cancel(msg) }, 'cancel'));
  }
  if (msg.state === 'dead' && msg.id) {
    actions.push(h('button', { type: 'button', class: 'link', 'data-testid': 'message-retry', onclick: () => retry(msg.id) }, 'retry'));
    actions.push(h('button', { type: 'button', class: 'link danger', 'data-testid': 'message-discard', onclick: () => discard(msg.id) }, 'discard'));
  }
  const context = (msg.state === 'dead' || msg.state === 'rejected') && msg.error?.contextId
    ? h('div', { class: 'context', 'data-testid': 'message-context' }, `contextId ${msg.error.contextId}`)
    : null;
  el.replaceChildren(
    h('div', { class: 'bubble' },
      h('div', { class: 'who' }, who, h('span', { class: 'door' }, msg.door === 'fetch' ? 'fetch()' : msg.door === 'restored' ? 'restored' : 'outbox.send')),
      h('p', { class: 'text' }, msg.text),
      h('div', { class: 'meta' }, state, detail, h('time', {}, clock(msg.at))),
      context,
      actions.length ? h('div', { class: 'msg-actions' }, actions) : null),
  );
}

function scrollThread(key) {
  const t = $(`thread-${key}`);
  t.scrollTop = t.scrollHeight;
}

// ---------------------------------------------------------------------------
// The two doors

/** The request an app would send for a conversation. */
function request(conv, text) {
  const base = ui.config.apiBase;
  if (conv.kind === 'agent') {
    return {
      url: `${base}/api/v2/conversations/messages/${encodeURIComponent(conv.conversationId)}/communications/${encodeURIComponent(conv.communicationId)}/messages`,
      body: { textBody: text },
    };
  }
  return {
    url: `${base}/api/v2/conversations/messages/${encodeURIComponent(conv.integrationId)}/inbound/open/message`,
    body: { channel: { from: { id: conv.fromId, idType: 'Opaque', nickname: conv.name }, time: new Date().toISOString() }, text },
  };
}

/** The fetch door's token, from the same-origin broker, kept until shortly before it expires. */
async function pageToken() {
  if (ui.token && ui.token.until > Date.now()) return ui.token.value;
  try {
    const r = await fetch('/token');
    if (!r.ok) return null;
    const t = await r.json();
    ui.token = { value: t.access_token, until: Date.now() + Math.max(0, (t.expires_in || 3600) - 60) * 1000 };
    return ui.token.value;
  } catch {
    return null; // offline: the worker queues the request and finds a token itself later
  }
}

/** The service-worker door: a plain fetch, as any app would send it. */
async function sendByFetch(msg, conv) {
  const { url, body } = request(conv, msg.text);
  const token = await pageToken();
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    setState(msg, 'failed', { message: `network error (${e.message})${ui.worker ? '' : ': no service worker, so nothing was kept'}` });
    return;
  }
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (response.status === 202 && json?.queued === true) {
    // Kept by the service worker; it delivers later and says so in events.
    if (/401|unauthori|credentials/i.test(json.reason || '')) ui.token = null;
    bindId(msg, json.id);
    if (msg.state === 'saving') setState(msg, 'queued', { reason: json.reason });
  } else if (response.ok) {
    // Delivered live: the server's own answer, no outbox event.
    setState(msg, 'sent', { status: response.status, live: true });
  } else if (json?.queued === false) {
    setState(msg, 'refused', { message: `HTTP ${response.status} ${json.error}: ${json.message || ''}` });
  } else {
    setState(msg, 'rejected', {
      error: { status: response.status, code: json?.code, message: json?.message ?? text.slice(0, 200), contextId: json?.contextId },
    });
  }
}

/** The page door: durable in IndexedDB before the promise resolves. */
async function sendByOutbox(msg, conv) {
  try {
    const entry = conv.kind === 'agent'
      ? await ui.outbox.sendAgentMessage(conv.conversationId, conv.communicationId, msg.text)
      : await ui.outbox.sendOpenMessage(conv.integrationId, conv.fromId, msg.text, { nickname: conv.name });
    bindId(msg, entry.id);
    if (msg.state === 'saving') setState(msg, 'queued', { reason: 'write-through' });
  } catch (e) {
    setState(msg, 'refused', { message: String(e?.message ?? e) });
  }
}

// Sends go one after another, so that messages keep the order they were typed in.
let sending = Promise.resolve();
function send(text, door, convKey = ui.active) {
  const conv = conversation(convKey);
  const msg = addMessage(conv, text, door);
  sending = sending.then(() => (door === 'fetch' ? sendByFetch(msg, conv) : sendByOutbox(msg, conv))).catch((e) => {
    setState(msg, 'failed', { message: String(e?.message ?? e) });
  });
  scheduleRefresh();
  return msg;
}

async function cancel(msg) {
  const result = await ui.outbox.cancel(msg.id);
  if (result === 'in-flight') banner('Too late to cancel: that message is being sent right now.', 'info');
  scheduleRefresh();
}

async function retry(id) {
  await ui.outbox.retry(id);
  scheduleRefresh();
}

async function discard(id) {
  await ui.outbox.discard(id);
  scheduleRefresh();
}

// ---------------------------------------------------------------------------
// Tabs, threads, conversation settings

function renderTabs() {
  const tabs = ui.conversations.map((c) => {
    const open = ui.messages.filter((m) => m.conv === c.key && !FINAL.has(m.state)).length;
    return h('button', {
      type: 'button', role: 'tab', class: 'tab', 'aria-selected': String(c.key === ui.active),
      'data-testid': `tab-${c.key}`, onclick: () => selectConversation(c.key),
    }, h('span', { class: `avatar avatar-${c.key}` }, c.name[0]),
    h('span', { class: 'names' }, c.name, h('span', { class: 'kind' }, c.kind === 'agent' ? 'agent send' : 'open messaging')),
    open ? h('span', { class: 'badge', title: 'not delivered yet' }, open) : null);
  });
  $('tabs').replaceChildren(...tabs);
}

function renderConversationSettings() {
  const c = conversation(ui.active);
  const ids = FIELDS[c.kind].map(([f]) => c[f]).join(' · ');
  $('conv-summary').textContent = `${c.kind === 'agent' ? 'Agent send' : 'Open Messaging inbound'} · lane ${laneOf(c)} · ${ids}`;
  const inputs = FIELDS[c.kind].map(([f, label]) => h('label', {},
    label,
    h('input', {
      // Chromium compiles `pattern` with the `v` flag, where `/` must be
      // escaped inside a class (`[^/?#]+` is refused, and the field unchecked).
      value: c[f], 'data-testid': `conv-${f}`, required: true, pattern: String.raw`[^\/?#]+`,
      onchange: (e) => {
        if (!e.target.checkValidity()) return;
        c[f] = e.target.value.trim();
        saveConversations();
        renderConversationSettings();
      },
    })));
  $('conv-form').replaceChildren(...inputs);
}

function selectConversation(key) {
  ui.active = key;
  for (const c of ui.conversations) $(`thread-${c.key}`).hidden = c.key !== key;
  renderTabs();
  renderConversationSettings();
  scrollThread(key);
  $('composer-input').focus();
}

// ---------------------------------------------------------------------------
// Events

function onEvent(e) {
  logEvent(e);
  if (e.type === 'paused') ui.pausedReason.set(e.origin, e.reason);
  if (e.type === 'purged') {
    for (const m of ui.messages) if (!FINAL.has(m.state)) setState(m, 'purged');
  }
  if (e.type === 'sent' && ui.drain) ui.drain.delivered += 1;
  if (e.type === 'dead' && ui.drain) ui.drain.dead += 1;
  if (e.type === 'held') {
    // The conversation waits behind its dead letter: say so on each waiting message.
    for (const m of ui.messages) {
      if (m.lane === e.lane && m.id !== e.id && ['queued', 'retrying', 'saving'].includes(m.state)) {
        setState(m, 'queued', { reason: 'lane-held' });
      }
    }
    scheduleRefresh();
    return;
  }
  if (e.id) {
    const msg = ui.byId.get(e.id);
    if (msg) apply(msg, e);
    else {
      // Seen before the send resolved with its id (or another tab's message).
      const list = ui.early.get(e.id) || [];
      list.push(e);
      ui.early.set(e.id, list);
      if (ui.early.size > 2000) ui.early.delete(ui.early.keys().next().value);
    }
  }
  scheduleRefresh();
}

function logEvent(e) {
  const what = {
    queued: () => reasonText(e.reason),
    sending: () => `attempt ${e.attempt}`,
    sent: () => `HTTP ${e.status}${e.duplicate ? ' duplicate' : ''}`,
    retrying: () => `attempt ${e.attempt} · ${errorLine(e.error)} · again at ${clock(e.nextAttemptAt)}`,
    'awaiting-token': () => e.origin,
    paused: () => `${e.origin} until ${clock(e.until)} · ${e.reason}`,
    throttle: () => `${e.origin} · ${throttleText(e)}`,
    dead: () => errorLine(e.error),
    purged: () => `${e.queued} queued, ${e.dead} dead`,
  }[e.type];
  const row = h('li', { 'data-testid': 'event', 'data-type': e.type },
    h('time', {}, clock(e.at || Date.now())),
    h('span', { class: `tag state-${e.type}` }, e.type),
    h('span', { class: 'lane' }, e.lane || ''),
    h('span', { class: 'id', title: e.id || '' }, shortId(e.id)),
    h('span', { class: 'what' }, what ? what() : ''));
  const log = $('event-log');
  log.prepend(row);
  while (log.children.length > 300) log.lastChild.remove();
}

// ---------------------------------------------------------------------------
// Queue panel: stats (polled, and after events), drain progress, dead letters

let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshQueue(); }, 150);
}

let refreshing = false;
async function refreshQueue() {
  if (!ui.outbox || refreshing) return;
  refreshing = true;
  try {
    const s = await ui.outbox.stats();
    ui.stats = s;
    renderStats(s);
    updateDrain(s);
    if (s.dead > 0 || ui.deadIds !== '') await refreshDeadLetters();
  } catch (e) {
    console.error('[demo] stats failed', e);
  } finally {
    refreshing = false;
  }
}

function renderStats(s) {
  $('stat-queued').textContent = s.queued;
  $('stat-pending').textContent = s.pending;
  $('stat-inflight').textContent = s.inFlight;
  $('stat-awaiting').textContent = s.awaitingToken;
  $('stat-dead').textContent = s.dead;
  $('stat-dead').parentElement.classList.toggle('alert', s.dead > 0);
  const held = s.held || [];
  ui.held = new Map(held.map((h) => [h.id, h.lane]));
  $('stat-held').textContent = held.length;
  $('stat-held').parentElement.classList.toggle('alert', held.length > 0);
  $('stat-lanes').textContent = s.lanes;
  $('stat-oldest').textContent = s.oldestCreatedAt ? seconds(Math.max(0, Date.now() - s.oldestCreatedAt)) : '—';
  $('stat-bytes').textContent = bytes(s.bytes);
  const now = Date.now();
  const paused = (s.paused || []).filter((p) => p.until > now);
  $('paused').hidden = paused.length === 0;
  $('paused').textContent = paused
    .map((p) => `Sending to ${p.origin} is paused for ${seconds(p.until - now)} (until ${clock(p.until)}${ui.pausedReason.has(p.origin) ? ` · ${ui.pausedReason.get(p.origin)}` : ''}).`)
    .join(' ');
  const throttled = s.throttled || [];
  $('throttled').hidden = throttled.length === 0;
  $('throttled').textContent = throttled
    .map((t) => `Herd throttle on ${t.origin}: ${throttleText(t)}.`)
    .join(' ');
}

/** What the herd throttle does to an origin, and why (stats().throttled, `throttle` events). */
function throttleText(t) {
  switch (t.reason) {
    case 'probing':
      return 'no answer — one request at a time until it answers';
    case 'shedding':
      return `the server sheds ${t.shedPercent}% of requests — ${t.ratePerMinute} a minute until it stops`;
    default:
      return 'off — back at the pacer\'s rate';
  }
}

/** "37 / 120 delivered" while the queue drains, from the first queued entry until it is empty. */
function updateDrain(s) {
  // A drain runs from the first queued entry until the queue is empty again.
  if (s.queued > 0 && (!ui.drain || ui.drain.doneAt)) ui.drain = { delivered: 0, dead: 0, total: 0, doneAt: null };
  const d = ui.drain;
  if (!d) return;
  d.total = Math.max(d.total, d.delivered + d.dead + s.queued);
  if (s.queued > 0) d.doneAt = null;
  else if (!d.doneAt) d.doneAt = Date.now();
  const box = $('drain');
  box.hidden = false;
  box.classList.toggle('done', s.queued === 0);
  const pct = d.total ? Math.round((100 * (d.delivered + d.dead)) / d.total) : 100;
  $('drain-fill').style.width = `${pct}%`;
  $('drain-bar').setAttribute('aria-valuemax', String(d.total));
  $('drain-bar').setAttribute('aria-valuenow', String(d.delivered));
  let text = `${d.delivered} / ${d.total} delivered`;
  if (d.dead) text += ` · ${d.dead} dead`;
  if (s.queued === 0) text += ' · queue empty';
  else if (!ui.faults.outage && s.inFlight > 0) text += ' · draining…';
  else text += ' · waiting';
  $('drain-text').textContent = text;
  // Hide a finished drain after a while; the next queued entry starts a new one.
  if (d.doneAt && Date.now() - d.doneAt > 8000) {
    ui.drain = null;
    box.hidden = true;
  }
}

async function refreshDeadLetters() {
  const dead = await ui.outbox.deadLetters(200);
  const ids = dead.map((d) => `${d.id}:${d.attempts}:${ui.held?.has(d.id) ? 'h' : ''}`).join(',');
  if (ids === ui.deadIds) return;
  ui.deadIds = ids;
  $('dead-empty').hidden = dead.length > 0;
  $('dead-letters').replaceChildren(...dead.map((d) => {
    const msg = ui.byId.get(d.id);
    return h('li', { 'data-testid': 'dead-letter', 'data-id': d.id },
      h('div', { class: 'dl-head' },
        h('span', { class: 'lane' }, d.lane),
        h('span', { class: 'text' }, msg?.text ?? bodyText(d.body) ?? d.route),
        h('span', { class: 'actions' },
          h('button', { type: 'button', 'data-testid': 'dead-retry', onclick: () => retry(d.id) }, 'Retry'),
          h('button', { type: 'button', class: 'danger', 'data-testid': 'dead-discard', onclick: () => discard(d.id) }, 'Discard'))),
      h('div', { class: 'dl-error', 'data-testid': 'dead-error' }, errorLine(d.lastError) || 'no error recorded'),
      ui.held?.has(d.id)
        ? h('div', { class: 'dl-held', 'data-testid': 'dead-holds' }, `holds ${d.lane}: its later messages wait until this one is retried or discarded`)
        : false,
      h('div', { class: 'dl-meta' },
        `${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`,
        d.lastError?.contextId ? ` · contextId ${d.lastError.contextId}` : '',
        ` · ${d.route}`));
  }));
}

/** The text of a stored request body (agent `textBody`, open `text`). */
function bodyText(body) {
  try {
    const b = JSON.parse(body);
    return b.textBody ?? b.text ?? null;
  } catch {
    return null;
  }
}

let purgeArmed = null;
async function purge() {
  const button = $('purge');
  if (!purgeArmed) {
    button.textContent = 'Really purge?';
    button.classList.add('armed');
    purgeArmed = setTimeout(() => { purgeArmed = null; button.textContent = 'Purge'; button.classList.remove('armed'); }, 4000);
    return;
  }
  clearTimeout(purgeArmed);
  purgeArmed = null;
  button.textContent = 'Purge';
  button.classList.remove('armed');
  await ui.outbox.purge();
  scheduleRefresh();
}

/** Messages still in the outbox from an earlier visit (or another tab) get their bubble back. */
async function restore() {
  const entries = [...(await ui.outbox.queued(1000)), ...(await ui.outbox.deadLetters(1000))].sort((a, b) => a.seq - b.seq);
  for (const entry of entries) {
    const conv = ui.conversations.find((c) => laneOf(c) === entry.lane);
    if (!conv || ui.byId.has(entry.id)) continue;
    const msg = addMessage(conv, bodyText(entry.body) ?? '(no text)', 'restored', { at: entry.createdAt });
    bindId(msg, entry.id);
    if (msg.state === 'saving') {
      const state = entry.state === 'dead' ? 'dead' : entry.state === 'awaiting-token' ? 'awaiting-token' : entry.state === 'in-flight' ? 'sending' : 'queued';
      setState(msg, state, { error: entry.lastError, reason: 'restored from IndexedDB', nextAttemptAt: entry.notBefore });
    }
  }
}

// ---------------------------------------------------------------------------
// The emulator: network switch, faults, what it received

async function control(path, body) {
  const init = body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) }; // text/plain: no preflight
  const r = await fetch(`${ui.config.emulator}/__emulator/${path}`, init);
  const json = await r.json();
  if (!r.ok) throw new Error(json.error || `HTTP ${r.status}`);
  return json;
}

// Fault changes go one at a time, and the controls are redrawn only from the
// answer to the last one: an older answer arriving late must not reset a
// control the user has already moved (and that the next change reads).
let faultChain = Promise.resolve();
let faultsPending = 0;
function faultOp(op) {
  faultsPending += 1;
  faultChain = faultChain
    .then(op)
    .then((faults) => { ui.faults = faults; }, (e) => banner(`The emulator refused the change: ${e.message}`))
    .finally(() => { faultsPending -= 1; if (faultsPending === 0) renderFaults(); });
  return faultChain;
}

const setFaults = (patch) => faultOp(() => control('faults', patch));

function renderFaults() {
  const f = ui.faults;
  $('network').checked = !f.outage;
  $('network-label').textContent = f.outage ? 'Network offline' : 'Network online';
  document.body.classList.toggle('offline', !!f.outage);
  $('error-rate').value = Math.round((f.errorRate || 0) * 100);
  $('error-rate-out').textContent = `${$('error-rate').value} %`;
  const statuses = f.errorStatuses || [];
  $('error-kind').value = statuses.includes(403) ? '403' : statuses.includes(404) ? '404' : '5xx';
  $('latency').value = f.latencyMs || 0;
  $('latency-out').textContent = `${f.latencyMs || 0} ms`;
  $('lost-acks').value = Math.round((f.lostAckRate || 0) * 100);
  $('lost-acks-out').textContent = `${$('lost-acks').value} %`;
  if (document.activeElement !== $('rate-limit')) $('rate-limit').value = f.rateLimit ?? '';
}

async function setNetwork(online) {
  await setFaults({ outage: !online });
  // The switch simulates the network at the server, so fire the event the
  // browser fires when a real network comes back; the outbox forwards it to
  // the service worker, which retries at once instead of after its backoff.
  if (online) window.dispatchEvent(new Event('online'));
}

function errorStatuses() {
  return { '5xx': [], 403: [403], 404: [404] }[$('error-kind').value];
}

async function refreshEmulator() {
  if (!ui.config?.emulator || document.hidden) return;
  let report;
  try {
    report = await control('messages');
  } catch {
    return;
  }
  showReplies(report.replies || []);
  const key = JSON.stringify([report.total, report.duplicates, report.replays]);
  if (key === ui.emuKey) return;
  ui.emuKey = key;
  $('emu-totals').textContent = `${report.total} received · ${report.duplicates} duplicate${report.duplicates === 1 ? '' : 's'}${report.replays ? ` · ${report.replays} replayed` : ''}`;
  $('emu-empty').hidden = report.lanes.length > 0;
  $('emu-lanes').replaceChildren(...report.lanes.map((lane) => {
    const conv = ui.conversations.find((c) => laneOf(c) === lane.lane);
    return h('div', { class: 'emu-lane', 'data-testid': 'emu-lane', 'data-lane': lane.lane, 'data-count': lane.count, 'data-duplicates': lane.duplicates },
      h('div', { class: 'emu-head' },
        conv ? h('span', { class: `avatar small avatar-${conv.key}` }, conv.name[0]) : null,
        h('strong', {}, lane.lane),
        h('span', { class: 'route' }, lane.route),
        h('span', { class: 'count' }, `${lane.count}${lane.duplicates ? ` · ${lane.duplicates} duplicate${lane.duplicates === 1 ? '' : 's'}` : ''}`)),
      h('ol', { class: 'emu-messages' }, lane.messages.slice(-60).map((m) => h('li', {
        'data-testid': 'emu-message', 'data-text': m.text ?? '', 'data-duplicate': String(m.duplicateOf != null),
        class: m.duplicateOf != null ? 'dup' : '',
        title: `#${m.seq} at ${m.time}${m.idempotencyKey ? ` · key ${m.idempotencyKey}` : ''}${m.duplicateOf != null ? ` · duplicate of #${m.duplicateOf}` : ''}`,
      }, m.text ?? `(${m.content})`))));
  }));
}

/** The agent's answers (emulator control or auto-reply), each once, in its conversation's thread. */
function showReplies(replies) {
  for (const r of replies) {
    if (ui.replies.has(r.id)) continue;
    const conv = ui.conversations.find((c) => laneOf(c) === r.lane);
    if (!conv) continue;
    ui.replies.add(r.id);
    $(`thread-${conv.key}`).append(h('li', { class: 'msg reply', 'data-testid': 'agent-reply-message', 'data-conv': conv.key, 'data-text': r.text },
      h('div', { class: 'bubble' },
        h('div', { class: 'who' }, `Agent → ${conv.name}`, h('span', { class: 'door' }, 'emulator')),
        h('p', { class: 'text' }, r.text),
        h('div', { class: 'meta' }, h('time', {}, clock(Date.parse(r.time)))))));
    scrollThread(conv.key);
  }
}

/** The agent answers in the active conversation (the emulator must know it: send first). */
async function agentReply() {
  const conv = conversation(ui.active);
  const text = conv.kind === 'agent'
    ? `(another agent) I can take over ${conv.name}'s conversation.`
    : `Hello ${conv.name}, thanks for your message. How can I help?`;
  try {
    await control('agent/reply', { lane: laneOf(conv), text });
    ui.emuKey = null;
    refreshEmulator();
  } catch (e) {
    banner(`The agent cannot answer yet (${e.message}): send a message in this conversation first.`, 'info');
  }
}

// ---------------------------------------------------------------------------
// Wiring

function wire() {
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('composer-input');
    const text = input.value.trim();
    if (!text || !ui.outbox) return;
    send(text, e.submitter?.dataset.door || 'outbox');
    input.value = '';
    input.focus();
  });
  $('burst').addEventListener('click', () => {
    const stamp = clock(Date.now());
    for (let i = 1; i <= 20; i++) send(`burst ${stamp} · ${i}/20`, 'outbox');
  });
  $('flush').addEventListener('click', async () => { await ui.outbox.flush(); scheduleRefresh(); });
  $('purge').addEventListener('click', purge);
  $('clear-log').addEventListener('click', () => $('event-log').replaceChildren());
  $('network').addEventListener('change', (e) => setNetwork(e.target.checked));
  const rate = (id, field) => {
    $(id).addEventListener('input', () => { $(`${id}-out`).textContent = `${$(id).value} %`; });
    $(id).addEventListener('change', () => setFaults({ [field]: Number($(id).value) / 100, ...(field === 'errorRate' ? { errorStatuses: errorStatuses() } : {}) }));
  };
  rate('error-rate', 'errorRate');
  rate('lost-acks', 'lostAckRate');
  $('error-kind').addEventListener('change', () => setFaults({ errorStatuses: errorStatuses() }));
  $('latency').addEventListener('input', () => { $('latency-out').textContent = `${$('latency').value} ms`; });
  $('latency').addEventListener('change', () => setFaults({ latencyMs: Number($('latency').value) }));
  $('rate-limit').addEventListener('change', () => {
    const v = $('rate-limit').value;
    setFaults({ rateLimit: v === '' ? null : Math.max(1, Math.round(Number(v))) });
  });
  $('clear-faults').addEventListener('click', async () => {
    await faultOp(() => control('faults/clear', {}));
    window.dispatchEvent(new Event('online'));
  });
  $('reset-emulator').addEventListener('click', async () => {
    await faultOp(async () => { await control('reset', {}); return control('faults'); });
    ui.emuKey = null;
    refreshEmulator();
  });
  $('agent-reply').addEventListener('click', agentReply);
  $('auto-reply').addEventListener('change', async (ev) => {
    try {
      const r = await control('agent/auto-reply', { enabled: ev.target.checked });
      ev.target.checked = r.enabled;
    } catch (e) {
      banner(`The emulator refused: ${e.message}`);
    }
  });
  $('expire-token').addEventListener('click', async () => {
    const r = await control('tokens/expire', {});
    logEvent({ type: 'token-expired', at: Date.now(), lane: '', reason: '' });
    banner(`${r.expired} token${r.expired === 1 ? '' : 's'} expired: the next request answers 401, and the outbox fetches a fresh token from /token.`, 'info');
    setTimeout(() => banner(''), 6000);
  });
}

function buildThreads() {
  $('threads').replaceChildren(...ui.conversations.map((c) => h('ol', {
    class: 'thread', id: `thread-${c.key}`, 'data-testid': `thread-${c.key}`, role: 'tabpanel', 'aria-live': 'polite', hidden: c.key !== ui.active,
  })));
}

async function main() {
  wire();
  buildThreads();
  renderTabs();
  renderConversationSettings();
  const config = await (await fetch('/demo-config.json')).json();
  ui.config = config;
  const emulated = !!config.emulator;
  document.body.classList.toggle('region-mode', !emulated);
  $('mode').textContent = emulated ? `Emulator · ${config.apiBase}` : `Genesys Cloud · ${config.region}`;
  $('mode').title = `API base ${config.apiBase}`;

  await init();
  ui.outbox = await Outbox.open({ origins: [config.apiBase], apiBase: config.apiBase, tokenUrl: '/token' });
  ui.outbox.on(onEvent);

  try {
    await ui.outbox.registerServiceWorker('/sw.js');
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve, reject) => {
        navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true });
        setTimeout(() => reject(new Error('the service worker is installed but does not control this page (a hard reload bypasses it: reload normally)')), 15000);
      });
    }
    ui.worker = true;
    $('worker-status').textContent = 'service worker: active';
    $('worker-status').classList.add('ok');
  } catch (e) {
    $('worker-status').textContent = 'no service worker: page door only';
    $('worker-status').classList.add('warn');
    banner(`No service worker (${e.message ?? e}). outbox.send still works; fetch() goes straight to the network.`, 'info');
  }

  if (emulated) {
    ui.faults = await control('faults').catch(() => ({}));
    renderFaults();
    $('network').disabled = false;
    setInterval(refreshEmulator, 1000);
    refreshEmulator();
  }
  await restore();
  await pageToken(); // fetched while online, so the fetch door has one when the network goes
  setInterval(refreshQueue, 1000);
  // Countdowns: retrying messages and pauses.
  setInterval(() => {
    for (const m of ui.messages) if (m.state === 'retrying') render(m);
  }, 500);
  refreshQueue();
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  console.error(e);
  document.body.dataset.ready = 'error';
  banner(`The demo could not start: ${e?.message ?? e}. Was the bundle built (cargo xtask build)?`);
});
