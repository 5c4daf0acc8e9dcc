// Run by `cargo xtask test` (crates/outbox-server/tests/node.rs) against
// `outbox serve` and the Genesys Cloud emulator: OUTBOX_URL is the proxy,
// EMULATOR_URL the emulator (whose control API switches an outage on).
import { test } from "node:test";
import assert from "node:assert/strict";
import { sendSms, status, stats } from "../outbox.mjs";

const emulator = process.env.EMULATOR_URL;

async function faults(body) {
  const res = await fetch(`${emulator}/__emulator/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
}

async function until(what, check) {
  for (let i = 0; i < 3000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`gave up waiting for ${what}`);
}

test("a message Genesys takes is delivered at once", async () => {
  const r = await sendSms("+15550001", "hello");
  assert.equal(r.delivered, true);
  assert.match(r.id, /[0-9a-f-]{36}/);
});

test("in an outage the outbox keeps messages, then delivers them", async () => {
  await faults({ outage: true });
  const a = await sendSms("+15550002", "one");
  const b = await sendSms("+15550002", "two");
  assert.equal(a.queued, true);
  assert.equal(b.queued, true);
  assert.equal((await status(b.id)).status, 200);
  await faults({ outage: false });
  await until("an empty outbox", async () => (await stats()).queued === 0);
  assert.equal((await status(a.id)).status, 404, "delivered: gone from the outbox");
  const report = await (await fetch(`${emulator}/__emulator/messages`)).json();
  const lane = report.lanes.find((l) => l.lane === "+15550002");
  assert.deepEqual(lane.texts, ["one", "two"]);
});

test("a real refusal is Genesys's own answer, and nothing is kept", async () => {
  await assert.rejects(sendSms("+15550003", ""), /HTTP 400/);
  assert.equal((await stats()).queued, 0);
});
