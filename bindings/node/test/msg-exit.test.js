// The process exits promptly with messaging in use: after close(), with connections and clients
// forgotten, with an unref'd server, after leaving a notifications loop, and on process.exit()
// with requests in flight (no callback or thread of the library keeps the loop alive or crashes it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startListening } from '../support/serve.js';

const index = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.js');
let serve;

before(async () => {
  serve = await startListening(['msg', 'serve', '--listen', '127.0.0.1:0']);
});
after(() => serve?.stop());

function run(body) {
  const src = `import * as norman from ${JSON.stringify(index)};
const { Client, MsgType } = norman;
const ADDR = ${JSON.stringify(serve.addr)};
${body}`;
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, ms: Date.now() - started, stdout, stderr });
    });
  });
}

function exitedPromptly(r, marker) {
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, marker);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
}

test('exits promptly after closing a server, a connection and the client', async () => {
  const r = await run(`const c = new Client();
const s = c.msgServer().handle('REQUEST_URI', 'echo', async (call) => call.content);
const port = await s.listen();
const conn = await c.msgConnect('127.0.0.1:' + port);
console.log((await conn.request('REQUEST_URI', 'echo', 'hi')).text());
const it = conn.notifications();
const waiting = it.next();
await conn.close(); await s.close(); await c.close();
console.log('ended', (await waiting).done);`);
  exitedPromptly(r, /hi\nended true/);
});

test('forgotten connections and clients do not keep the process alive', async () => {
  const r = await run(`const c = new Client();
const conn = await c.msgConnect(ADDR);
console.log((await conn.request('REQUEST_URI', 'echo', 'left open')).text());
const c2 = new Client();
await c2.msgConnect(ADDR);`);
  exitedPromptly(r, /left open/);
});

test('a request in flight keeps the process alive until its reply, then lets it exit', async () => {
  // Nothing is awaited: only the client's event descriptor, ref'd while the request is pending,
  // keeps the loop running; once settled it is unref'd and the forgotten client lets the process go.
  const r = await run(`const c = new Client();
const conn = await c.msgConnect(ADDR);
conn.request('REQUEST_URI', 'echo', 'late').then((m) => console.log('got', m.text()));`);
  exitedPromptly(r, /got late/);
});

test('a listening server keeps the process alive until unref()', async () => {
  const r = await run(`const c = new Client();
const s = c.msgServer();
await s.listen();
setTimeout(() => { console.log('unref'); s.unref(); }, 300);`);
  exitedPromptly(r, /unref/);
  assert.ok(r.ms >= 300, `exited after ${r.ms} ms, before unref()`);
});

test('leaving a notifications loop does not keep the process alive', async () => {
  const r = await run(`const c = new Client();
const conn = await c.msgConnect(ADDR);
await conn.subscribe('t');
const pub = await c.msgConnect(ADDR);
await pub.request('UPDATE_URI', 't', 'v');
for await (const n of conn.notifications()) { console.log('got', n.text()); break; }`);
  exitedPromptly(r, /got v/);
});

test('process.exit() with requests in flight neither hangs nor crashes', async () => {
  const r = await run(`const c = new Client();
const s = c.msgServer().handle('REQUEST_URI', 'slow', () => new Promise(() => {}));
const port = await s.listen();
const conn = await c.msgConnect('127.0.0.1:' + port);
for (let i = 0; i < 50; i++) conn.request('REQUEST_URI', 'slow').catch(() => {});
for (let i = 0; i < 50; i++) conn.request('REQUEST_URI', 'echo').catch(() => {});
setTimeout(() => { console.log('exiting'); process.exit(0); }, 100);`);
  exitedPromptly(r, /exiting/);
});
