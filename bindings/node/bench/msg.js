#!/usr/bin/env node
// The Node part of the messaging benchmark (MSG_CAPI.md, scripts/bench-msg-bindings.sh): against one
// `norman msg serve` (plain), N sequential 1 KiB echo requests (each awaited before the next), then M
// pipelined 1 KiB one-way NOTIFY_URI messages (which the broker takes without answering) sent as fast as the connection takes them, with one
// request at the end as the barrier that all were processed. Prints exactly one line:
//   MSGBENCH lang=node seq_req_per_s=<float> pipelined_msg_per_s=<float>
//
// Usage: node bench/msg.js [HOST:PORT] [--requests N] [--pipelined M]
//   The address: the argument, else $NORMAN_MSG_ADDR; without either, a `norman msg serve` of its own.
//   Counts: the flags, else $NORMAN_BENCH_REQUESTS / $NORMAN_BENCH_PIPELINED, else 20000 / 200000.
import { Client, MsgType } from '../index.js';
import { startListening } from '../support/serve.js';

const args = process.argv.slice(2);
let addr = process.env.NORMAN_MSG_ADDR || null;
let requests = Number(process.env.NORMAN_BENCH_REQUESTS || 20000);
let pipelined = Number(process.env.NORMAN_BENCH_PIPELINED || 200000);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--requests') requests = Number(args[++i]);
  else if (args[i] === '--pipelined') pipelined = Number(args[++i]);
  else if (!args[i].startsWith('--')) addr = args[i];
  else {
    console.error('usage: node bench/msg.js [HOST:PORT] [--requests N] [--pipelined M]');
    process.exit(2);
  }
}
if (!Number.isSafeInteger(requests) || requests <= 0 || !Number.isSafeInteger(pipelined) || pipelined <= 0) {
  console.error('--requests and --pipelined need positive integers');
  process.exit(2);
}

const serve = addr ? null : await startListening(['msg', 'serve', '--listen', '127.0.0.1:0']);
if (serve) addr = serve.addr;
const client = new Client();
let failed = false;
try {
  const conn = await client.msgConnect(addr);
  const payload = Buffer.alloc(1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;

  // Warm-up (connection, JIT), not counted.
  for (let i = 0; i < 200; i++) await conn.request(MsgType.REQUEST_URI, 'echo', payload);

  let t = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    const reply = await conn.request(MsgType.REQUEST_URI, 'echo', payload);
    if (reply.content.length !== payload.length) throw new Error('the echo differs from the request');
  }
  const seq = requests / (Number(process.hrtime.bigint() - t) / 1e9);

  // Pipelined: sends are queued in order and handed to the library in batches; a bounded window
  // of unsettled sends keeps memory flat.
  t = process.hrtime.bigint();
  const window = [];
  for (let i = 0; i < pipelined; i++) {
    window.push(conn.send(MsgType.NOTIFY_URI, 'bench', payload));
    if (window.length >= 8192) await window.shift();
  }
  await Promise.all(window);
  const barrier = await conn.request(MsgType.REQUEST_URI, 'echo', payload, { timeoutMs: 120000 });
  if (barrier.content.length !== payload.length) throw new Error('the barrier echo differs');
  const piped = pipelined / (Number(process.hrtime.bigint() - t) / 1e9);

  console.log(`MSGBENCH lang=node seq_req_per_s=${seq.toFixed(1)} pipelined_msg_per_s=${piped.toFixed(1)}`);
  await conn.close();
} catch (e) {
  failed = true;
  console.error(`bench/msg.js: ${e.stack || e}`);
} finally {
  await client.close();
  await serve?.stop();
}
process.exitCode = failed ? 1 : 0;
