// A few lines of plain `fetch` against `outbox serve` (Node 20's own
// runtime: no SDK, no native addon). The proxy stands where the Genesys
// Cloud API would: the same paths, the same bodies.
//
//   OUTBOX_URL   the proxy (default http://127.0.0.1:8788)
//   OUTBOX_KEY   its API key, if it has one (sent as x-outbox-key)

export const base = process.env.OUTBOX_URL ?? "http://127.0.0.1:8788";

function headers() {
  const h = { "content-type": "application/json" };
  if (process.env.OUTBOX_KEY) h["x-outbox-key"] = process.env.OUTBOX_KEY;
  return h;
}

/**
 * Sends an SMS with Genesys Cloud's agentless route.
 * Resolves `{ delivered: true, id }` when Genesys took it at once, or
 * `{ queued: true, id }` when the outbox kept it (Genesys was down, busy or
 * rate-limited): it is delivered later, in order per recipient. Rejects on
 * a real refusal (a 4xx of Genesys's, or a full outbox: 507): the message
 * is still yours.
 */
export async function sendSms(toAddress, textBody) {
  const res = await fetch(`${base}/api/v2/conversations/messages/agentless`, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({
      fromAddress: "+15550000000",
      toAddress,
      toAddressMessengerType: "sms",
      textBody,
    }),
  });
  const body = await res.json();
  if (res.status === 202 && body.queued) return { queued: true, id: body.id };
  if (res.ok) return { delivered: true, id: body.id };
  throw new Error(`HTTP ${res.status}: ${body.message ?? JSON.stringify(body)}`);
}

/** What the outbox knows of a queued message (404 once delivered). */
export async function status(id) {
  const res = await fetch(`${base}/outbox/v1/messages/${id}`, { headers: headers() });
  return { status: res.status, body: await res.json() };
}

/** Counts: queued, in flight, dead, held lanes, throttled origins. */
export async function stats() {
  const res = await fetch(`${base}/outbox/v1/stats`, { headers: headers() });
  return res.json();
}
