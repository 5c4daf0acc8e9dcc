// Type-checked by `cargo xtask test` (tsc --noEmit --strict, lib ES2022
// and ESNext) against the declarations tsc writes from web/host: every
// method of the page API as an app would call it, and every configuration
// field the README documents. Lines under `@ts-expect-error` must stay
// errors: they keep the types precise.
import init, {
  Outbox,
  GuestOutbox,
  type Accepted,
  type OutboxEvent,
  type OutboxStats,
  type OutboxEntry,
  type CancelResult,
  type FlushReport,
  type Purged,
  type WorkerLifecycleEvent,
} from './outbox_page.js';

export async function rest(): Promise<void> {
  await init(); // optional
  const bare: Outbox = await Outbox.open(); // every field is optional
  bare.close();
  const outbox = await Outbox.open({
    region: 'mypurecloud.ie',
    tokenUrl: '/token',
    retry: { maxAttempts: 5 },
    pacer: { burst: 2 },
    routes: [{ name: 'chat', path: '/chat/{room}/send', lane: ['path:room'], carriers: ['body:externalId'], onDead: 'skip' }],
    onDead: { agentless: 'skip', 'agent-send': 'hold' },
    getToken: async () => ({ token: 't', expiresIn: 60 }),
  });
  await Outbox.open({
    retry: { baseMs: 2000, factor: 2, capMs: 60000, maxAttempts: 25, maxAgeMs: 259200000, maxAuthFailures: 3, authWindowMs: 60000 },
    pacer: {
      ratePerMinute: 150,
      burst: 10,
      throttle: { enabled: true, tolerancePercent: 30, stepPercent: 5, memoryMs: 120000, maxIntervalMs: 120000 },
    },
  });
  // @ts-expect-error onDead is hold or skip
  await Outbox.open({ onDead: { agentless: 'drop' } });
  const registration: ServiceWorkerRegistration = await outbox.registerServiceWorker('/sw.js', { scope: '/' });
  await outbox.registerServiceWorker('/sw.js');
  await outbox.registerServiceWorker('/sw.js', {
    skipWaiting: false,
    onLifecycle: (e: WorkerLifecycleEvent) => {
      const worker: ServiceWorker = e.worker;
      void worker;
      if (e.type === 'waiting') e.skipWaiting();
      // @ts-expect-error only a waiting worker can be told to skip waiting
      else e.skipWaiting();
    },
  });
  void registration.scope;

  const stop: () => void = outbox.on((e: OutboxEvent) => {
    switch (e.type) {
      case 'sent': {
        const duplicate: boolean = e.duplicate;
        void duplicate;
        break;
      }
      case 'retrying': {
        const next: number = e.nextAttemptAt;
        const status: number | undefined = e.error.status;
        void next, status;
        break;
      }
      case 'purged': {
        // @ts-expect-error a purge is not about one entry
        void e.id;
        break;
      }
    }
  });
  stop();

  const { id, lane }: Accepted = await outbox.sendAgentMessage('conversation', 'communication', 'Hello');
  const s: string = id + lane;
  void s;
  await outbox.sendOpenMessage('integration', 'customer', 'Hi'); // options are optional
  await outbox.sendOpenMessage('integration', 'customer', 'Hi', { idType: 'Email', nickname: 'C' });
  // @ts-expect-error idType is one of three
  await outbox.sendOpenMessage('integration', 'customer', 'Hi', { idType: 'Fax' });
  await outbox.send({ url: 'https://api.mypurecloud.ie/api/v2/conversations/messages/agentless', body: { toAddress: 'x' } });
  await outbox.send({ url: '/x', headers: new Headers({ 'x-a': '1' }), body: 'text' });
  await outbox.send({ url: '/x', headers: [['x-a', '1']], body: new Uint8Array(1) });
  await outbox.send({ url: '/x', headers: { 'x-a': '1' } });
  await outbox.setToken('token');
  await outbox.setToken('token', 3600, 'https://api.mypurecloud.ie');
  const stats: OutboxStats = await outbox.stats();
  const oldest: number | null = stats.oldestCreatedAt;
  void oldest;
  const queued: OutboxEntry[] = await outbox.queued(10);
  const dead: OutboxEntry[] = await outbox.deadLetters();
  void queued, dead;
  const revived: boolean = await outbox.retry(id);
  const discarded: boolean = await outbox.discard(id);
  const cancelled: CancelResult = await outbox.cancel(id);
  void revived, discarded, cancelled;
  const report: FlushReport = await outbox.flush();
  const delivered: number = report.delivered;
  void delivered;
  const purged: Purged = await outbox.purge();
  void purged.dead;
  // @ts-expect-error parameters are camelCase and the result is typed, not any
  const nope: string = (await outbox.stats()).pending_count;
  void nope;
  // @ts-expect-error on returns a function to call, not any Function
  outbox.on(() => {})(1, 2);
  outbox.close();
  outbox.free();
}

export async function guest(): Promise<void> {
  const chat: GuestOutbox = await Outbox.guest({ deploymentId: 'deployment', region: 'mypurecloud.ie' });
  const token: string = chat.sessionToken;
  void token;
  const { id }: Accepted = await chat.send('Hello');
  await chat.send({ text: 'Hello again' });
  await chat.cancel(id);
  // @ts-expect-error a guest outbox has no REST helpers
  await chat.sendAgentMessage('a', 'b', 'c');
  // @ts-expect-error a guest needs a deployment
  await Outbox.guest({ region: 'mypurecloud.ie' });
  chat.close();
}

export function dispose(outbox: Outbox): void {
  outbox[Symbol.dispose]();
}
