// node send.mjs +15551234567 "Your order has shipped"
import { sendSms, stats } from "./outbox.mjs";

const [to = "+15551234567", text = "Hello from Node through Outbox"] = process.argv.slice(2);
const result = await sendSms(to, text);
console.log(result.queued ? `kept by the outbox (${result.id}); it goes out when Genesys takes it` : `delivered (${result.id})`);
console.log(await stats());
