/**
 * Events out to every page of the origin over a `BroadcastChannel`, and to
 * this context's own listeners (a channel does not echo to its sender).
 */

import type { OutboxEvent } from './types.js';

export class Events {
  private readonly channel: BroadcastChannel | null;
  private readonly listeners = new Set<(event: OutboxEvent) => void>();

  constructor(name: string) {
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(name) : null;
  }

  /** Tells events the core decided (each stamped with `at`). */
  tell(events: readonly object[]): void {
    for (const e of events) {
      const event = { ...e, at: Date.now() } as OutboxEvent;
      this.channel?.postMessage(event);
      this.deliver(event);
    }
  }

  /** Hands an event (of this context or another) to the local listeners. */
  deliver(event: OutboxEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (e) {
        // A throwing listener must not stop the others or the engine.
        console.error('[outbox] an event listener threw:', e);
      }
    }
  }

  /** Adds a listener; returns the function that removes it. */
  listen(listener: (event: OutboxEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Listens to the other contexts' events; returns the function that stops. */
  relay(): () => void {
    const channel = this.channel;
    if (!channel) return () => {};
    const onMessage = (e: MessageEvent) => {
      if (e.data && typeof e.data === 'object') this.deliver(e.data as OutboxEvent);
    };
    channel.addEventListener('message', onMessage);
    return () => channel.removeEventListener('message', onMessage);
  }

  close(): void {
    this.channel?.close();
  }
}
