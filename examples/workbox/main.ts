// The page: Outbox's page API, its core loaded from where copy-worker put
// it (the very file the worker loads: a first visit downloads it once), and
// the app's own Workbox service worker (sw.js).
import init, { Outbox, type OutboxEvent } from 'outbox-genesys';

// Genesys Cloud's API for your region; `?api=` points it at a stand-in (the tests' emulator).
const api = new URLSearchParams(location.search).get('api') ?? 'https://api.mypurecloud.ie';

await init({ module_or_path: '/outbox/outbox-core.js' });
const outbox = await Outbox.open({ origins: [api], apiBase: api, tokenUrl: '/token' });
await navigator.serviceWorker.register(`/sw.js?api=${encodeURIComponent(api)}`);

const log = document.getElementById('log') as HTMLOListElement;
const events: OutboxEvent[] = [];
outbox.on((e) => {
  events.push(e);
  log.insertAdjacentHTML('beforeend', `<li>${e.type}</li>`);
});

async function post(conversationId: string, text: string): Promise<{ status: number; body: unknown }> {
  const token = ((await (await fetch('/token')).json()) as { access_token: string }).access_token;
  const r = await fetch(`${api}/api/v2/conversations/messages/${conversationId}/communications/c/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ textBody: text }),
  });
  return { status: r.status, body: await r.json() };
}

async function appRoute(): Promise<{ status: number; body: unknown }> {
  const r = await fetch('/app/notes', { method: 'POST', body: 'note' });
  return { status: r.status, body: await r.json() };
}

// For the end-to-end tests.
Object.assign(window, { app: { outbox, events, post, appRoute } });
