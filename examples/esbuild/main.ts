// A site without a service worker of its own: Outbox's stand-alone worker
// (sw.js, written beside the bundle by the outbox-genesys/esbuild plugin in
// build.mjs, with outbox-core.js, which the page loads from beside main.js
// when it must decide itself, and the worker from beside itself).
import { Outbox, type OutboxEvent, type WorkerLifecycleEvent } from 'outbox-genesys';

// Genesys Cloud's API for your region; `?api=` points it at a stand-in (the tests' emulator).
const api = new URLSearchParams(location.search).get('api') ?? 'https://api.mypurecloud.ie';

const outbox = await Outbox.open({ origins: [api], apiBase: api, tokenUrl: '/token' });
// A new version of the worker waits (skipWaiting: false) until the user
// takes it: the app decides when (by default it would take over at once).
const lifecycle: WorkerLifecycleEvent[] = [];
const registration: ServiceWorkerRegistration = await outbox.registerServiceWorker('/sw.js', {
  scope: '/',
  skipWaiting: false,
  onLifecycle: (e) => {
    lifecycle.push(e);
    if (e.type === 'waiting') {
      const button = document.getElementById('update') as HTMLButtonElement;
      button.hidden = false;
      button.onclick = () => e.skipWaiting();
    }
  },
});

const log = document.getElementById('log') as HTMLOListElement;
const events: OutboxEvent[] = [];
const stop: () => void = outbox.on((e) => {
  events.push(e);
  log.insertAdjacentHTML('beforeend', `<li>${e.type}</li>`);
});
addEventListener('pagehide', stop);

async function post(conversationId: string, text: string): Promise<{ status: number; body: unknown }> {
  const token = ((await (await fetch('/token')).json()) as { access_token: string }).access_token;
  const r = await fetch(`${api}/api/v2/conversations/messages/${conversationId}/communications/c/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ textBody: text }),
  });
  return { status: r.status, body: await r.json() };
}

document.getElementById('send')?.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = new FormData(e.target as HTMLFormElement).get('text');
  void outbox.sendAgentMessage('conversation-1', 'communication-1', String(text));
});

// For the end-to-end tests.
Object.assign(window, { app: { outbox, events, post, registration, lifecycle } });
