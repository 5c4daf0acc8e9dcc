// The page: Outbox's page API, and the app's own service worker (public/sw.js),
// which adds Outbox with the worker module.
import { Outbox, type OutboxEvent } from 'outbox-genesys';

// Genesys Cloud's API for your region; `?api=` points it at a stand-in (the tests' emulator).
const api = new URLSearchParams(location.search).get('api') ?? 'https://api.mypurecloud.ie';
const config = { origins: [api], apiBase: api, tokenUrl: '/token' };

const outbox = await Outbox.open(config);
// The app registers its own worker as usual (Outbox's configuration is in its code).
await navigator.serviceWorker.register(`/sw.js?api=${encodeURIComponent(api)}`);

const log = document.getElementById('log') as HTMLOListElement;
const events: OutboxEvent[] = [];
outbox.on((e) => {
  events.push(e);
  log.insertAdjacentHTML('beforeend', `<li>${e.type}</li>`);
});

// A plain fetch of the app's existing code: the worker passes it through, or keeps it (202).
async function post(conversationId: string, text: string): Promise<{ status: number; body: unknown }> {
  const token = ((await (await fetch('/token')).json()) as { access_token: string }).access_token;
  const r = await fetch(`${api}/api/v2/conversations/messages/${conversationId}/communications/c/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ textBody: text }),
  });
  return { status: r.status, body: await r.json() };
}

// The app's own POST route, answered by its worker.
async function appRoute(): Promise<{ status: number; body: unknown }> {
  const r = await fetch('/app/notes', { method: 'POST', body: 'note' });
  return { status: r.status, body: await r.json() };
}

document.getElementById('send')?.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = new FormData(e.target as HTMLFormElement).get('text');
  void outbox.sendAgentMessage('conversation-1', 'communication-1', String(text));
});

// For the end-to-end tests.
Object.assign(window, { app: { outbox, events, post, appRoute } });
