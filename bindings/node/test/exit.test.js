// The process exits promptly: after close(), with a forgotten client, with an upload left open,
// and when clients are garbage-collected (FinalizationRegistry). Each case is its own node process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServe, signup } from '../support/serve.js';

const index = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.js');
let serve;
let token;
let accountId;

before(async () => {
  serve = await startServe();
  ({ token, accountId } = await signup(serve.baseUrl));
});
after(() => serve?.stop());

/** Runs an ES module body in a fresh node; resolves { code, ms, stdout, stderr }. */
function run(body, args = []) {
  const src = `import * as norman from ${JSON.stringify(index)};
const { Client } = norman;
const BASE = ${JSON.stringify(serve.baseUrl)}, TOKEN = ${JSON.stringify(token)}, ACCOUNT = ${JSON.stringify(accountId)};
${body}`;
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [...args, '--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
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

const MODEL = `const models = await c.createModels([{ account_id: ACCOUNT, version_label: 'v1', short_description: 'x', name: 'exit',
  request_type: 'Post', model_type: 'Api', hosting_location: 'External', output_format: 'Json', long_description: 'x',
  assets: [{ account_id: ACCOUNT, asset_name: 'File' }] }]);
const m = Object.values(models)[0];
const target = { kind: 'asset', accountId: ACCOUNT, modelId: m.id, assetId: m.assets[0].id };`;

test('exits promptly after close()', async () => {
  const r = await run(`const c = new Client({ baseUrl: BASE, token: TOKEN });
${MODEL}
const up = c.upload({ target, size: 3 }); up.end(Buffer.from('abc')); await up.result;
await c.close(); console.log('closed');`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /closed/);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
});

test('a forgotten client and a half-written upload do not keep the process alive', async () => {
  const r = await run(`const c = new Client({ baseUrl: BASE, token: TOKEN });
${MODEL}
const up = c.upload({ target, size: 10 << 20 });
await new Promise((res) => up.write(Buffer.alloc(1 << 20), res));
await c.entityState(target.assetId);
console.log('left open');`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /left open/);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
});

test('clients dropped without close() are freed by the FinalizationRegistry', async () => {
  const r = await run(`for (let i = 0; i < 20; i++) {
  const c = new Client({ baseUrl: BASE, token: TOKEN });
  await c.request('POST', 'persist/flags/get');
}
for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((res) => setTimeout(res, 20)); }
const c = new Client({ baseUrl: BASE, token: TOKEN });
console.log((await c.request('POST', 'persist/flags/get')).status);`, ['--expose-gc']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /200/);
  assert.ok(r.ms < 8000, `took ${r.ms} ms`);
});

test('process.exit() during an upload does not hang', async () => {
  const r = await run(`const c = new Client({ baseUrl: BASE, token: TOKEN });
${MODEL}
const up = c.upload({ target, size: 256 << 20 });
const chunk = Buffer.alloc(1 << 20);
(async () => { for (;;) { if (!up.write(chunk)) await new Promise((res) => up.once('drain', res)); } })();
setTimeout(() => { console.log('exiting'); process.exit(0); }, 100);`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /exiting/);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
});
