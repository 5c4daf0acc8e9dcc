// The app's own names the READMEs' TypeScript snippets use, declared for
// `cargo xtask examples`, which compiles every snippet marked
// `<!-- check: tsc page -->` (or `worker`) with `tsc --strict` against the
// packed package, as an app that installed it would.
import type { OutboxError } from 'outbox-genesys';

declare global {
  function markSent(id: string): void;
  function showRetry(id: string, nextAttemptAt: number, error: OutboxError): void;
  function showFailed(id: string, error: OutboxError): void;
  function myToken(): Promise<string>;
  function showUpdateButton(onClick: () => void): void;
  const conversationId: string;
  const communicationId: string;
  const token: string;
}
