// Against a real `norman serve` started here: round trips checked with `norman checksum`, aborts,
// parallel uploads and every error path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { Client, NormanError, checksum } from '../index.js';
import { startServe, signup, createAssetTarget, cliChecksum, pattern } from '../support/serve.js';

let serve;
let client;
let accountId;
let token;
let dir;

before(async () => {
  serve = await startServe();
  ({ token, accountId } = await signup(serve.baseUrl));
  client = new Client({ baseUrl: serve.baseUrl, token, timeoutMs: 10000 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'norman-node-files-'));
});

after(async () => {
  await client?.close();
  await serve?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function file(name, len, seed) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, pattern(len, seed));
  return p;
}

const isCode = (code) => (e) => {
  assert.ok(e instanceof NormanError, `expected a NormanError, got ${e}`);
  assert.equal(e.code, code, e.message);
  assert.ok(e.message.length > code.length + 2, `a real message: ${e.message}`);
  return true;
};

test('generic request, typed persist calls and status flags', async () => {
  const r = await client.request('POST', 'persist/flags/get');
  assert.equal(r.status, 200);
  assert.equal(typeof r.json(), 'object');
  const target = await createAssetTarget(client, accountId, 'node-flags');
  assert.equal(await client.entityState(target.assetId), 'pending');
  const anon = new Client({ baseUrl: serve.baseUrl });
  try {
    const unauth = await anon.request('POST', 'persist/flags/get', null);
    assert.ok(unauth.status === 401 || unauth.status === 403);
    await assert.rejects(anon.getStatusFlags(), (e) => isCode('NORMAN_ERROR_HTTP_UNAUTHORIZED')(e) && e.status === unauth.status);
    await assert.rejects(anon.entityState('x'), isCode('NORMAN_ERROR_HTTP_UNAUTHORIZED'));
  } finally {
    await anon.close();
  }
  await assert.rejects(client.requestJson('GET', 'no/such/route'), (e) => isCode('NORMAN_ERROR_HTTP_NOT_FOUND')(e) && e.status === 404);
  await assert.rejects(client.request('GET', 'x', '{not json'), isCode('NORMAN_ERROR_INVALID_JSON'));
  await assert.rejects(client.request(5, 'x'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.entityState(undefined), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('upload through pipeline() and download back; checksums agree with `norman checksum`', async () => {
  const src = file('round.bin', 5 * 1024 * 1024 + 123, 1);
  const cli = cliChecksum(src);
  const target = await createAssetTarget(client, accountId, 'node-round');
  const up = client.upload({ target, size: fs.statSync(src).size });
  await pipeline(fs.createReadStream(src), up);
  assert.equal(up.checksum, cli);
  assert.deepEqual(await up.result, { checksum: cli, bytes: fs.statSync(src).size });

  const out = path.join(dir, 'round.out');
  const down = client.download(target);
  await pipeline(down, fs.createWriteStream(out));
  assert.equal(down.checksum, cli);
  assert.equal(down.contentLength, fs.statSync(src).size);
  assert.equal(cliChecksum(out), cli);
  assert.equal(await client.entityState(target.assetId), 'done');
});

test('upload on a pairing from the backend, then complete with its checksum', async () => {
  const data = pattern(777777, 2);
  const target = await createAssetTarget(client, accountId, 'node-pairing');
  const pairing = await client.pair(target, data.length);
  const up = client.upload(pairing);
  assert.doesNotMatch(util.inspect(up, { depth: 5 }), new RegExp(pairing.encryption_key.replace(/[+/=]/g, '.')));
  await pipeline(Readable.from([data.subarray(0, 1), data.subarray(1, 70000), data.subarray(70000)]), up);
  assert.equal(up.checksum, await checksum(data));
  await client.complete(pairing.pairing_id, up.checksum);
  assert.equal(await checksum(client.download(target)), up.checksum);
});

test('pushFile streams a file with progress; checksum agrees with the CLI', async () => {
  const src = file('push.bin', 3 * 1024 * 1024 + 5, 3);
  const target = await createAssetTarget(client, accountId, 'node-push');
  const seen = [];
  const res = await client.pushFile(target, src, { onProgress: (sent, total) => seen.push([sent, total]), chunkSize: 1 << 20 });
  assert.equal(res.checksum, cliChecksum(src));
  assert.equal(res.bytes, fs.statSync(src).size);
  assert.equal(seen.length, 4);
  assert.deepEqual(seen.at(-1), [res.bytes, res.bytes]);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] > seen[i - 1][0]);
  const empty = file('empty.bin', 0, 0);
  const target2 = await createAssetTarget(client, accountId, 'node-empty');
  assert.equal((await client.pushFile(target2, empty)).checksum, cliChecksum(empty));
  await assert.rejects(client.pushFile(target, path.join(dir, 'missing.bin')), isCode('NORMAN_ERROR_IO'));
  await assert.rejects(client.pushFile(target, src, { onProgress: 5 }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('parallel uploads on one client all arrive intact', async () => {
  const jobs = [];
  for (let i = 0; i < 4; i++) {
    jobs.push(
      (async () => {
        const src = file(`par${i}.bin`, 1024 * 1024 + i * 4099, 10 + i);
        const target = await createAssetTarget(client, accountId, `node-par-${i}`);
        const res =
          i % 2 === 0
            ? await client.pushFile(target, src)
            : await (async () => {
                const up = client.upload({ target, size: fs.statSync(src).size });
                await pipeline(fs.createReadStream(src, { highWaterMark: 65536 }), up);
                return up.result;
              })();
        assert.equal(res.checksum, cliChecksum(src));
        assert.equal(await checksum(client.download(target)), res.checksum);
      })(),
    );
  }
  await Promise.all(jobs);
});

test('aborting mid-upload: CANCELLED, the receiver keeps nothing', async () => {
  const target = await createAssetTarget(client, accountId, 'node-abort');
  const size = 64 * 1024 * 1024;
  const ac = new AbortController();
  const up = client.upload({ target, size }, { signal: ac.signal });
  const chunk = pattern(1 << 20, 4);
  let sent = 0;
  const writer = (async () => {
    while (sent < size) {
      if (sent === 8 << 20) ac.abort();
      if (up.destroyed) break;
      if (!up.write(chunk)) await Promise.race([once(up, 'drain'), once(up, 'close')]);
      sent += chunk.length;
    }
  })();
  await assert.rejects(up.result, isCode('NORMAN_ERROR_CANCELLED'));
  await writer;
  assert.ok(sent < size);
  await assert.rejects(checksum(client.download(target)), isCode('NORMAN_ERROR_HTTP_NOT_FOUND'));
  // A write after the abort is a clear error too.
  await assert.rejects(new Promise((res, rej) => up.write(chunk, (e) => (e ? rej(e) : res()))), isCode('NORMAN_ERROR_STATE'));

  const src = file('abort-push.bin', 6 * 1024 * 1024, 5);
  const ac2 = new AbortController();
  await assert.rejects(
    client.pushFile(target, src, { signal: ac2.signal, chunkSize: 1 << 20, onProgress: (s) => s >= 2 << 20 && ac2.abort() }),
    isCode('NORMAN_ERROR_CANCELLED'),
  );
  await assert.rejects(client.pushFile(target, src, { signal: AbortSignal.abort() }), isCode('NORMAN_ERROR_CANCELLED'));
});

test('aborting a download and a hung request', async () => {
  const src = file('dl-abort.bin', 8 * 1024 * 1024, 6);
  const target = await createAssetTarget(client, accountId, 'node-dl-abort');
  await client.pushFile(target, src);
  const ac = new AbortController();
  const down = client.download(target, { signal: ac.signal, highWaterMark: 65536 });
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const c of down) {
        got += c.length;
        if (got > 1 << 20) ac.abort();
      }
    })(),
    isCode('NORMAN_ERROR_CANCELLED'),
  );
  assert.ok(got < 8 * 1024 * 1024);

  // A server that accepts and never answers: the request is cancelled well before its timeout.
  const sockets = new Set();
  const silent = net.createServer((s) => sockets.add(s)).listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const slow = new Client({ baseUrl: `http://127.0.0.1:${silent.address().port}/v0/`, timeoutMs: 30000, retries: 0 });
  try {
    const ac2 = new AbortController();
    const started = Date.now();
    setTimeout(() => ac2.abort(), 200);
    await assert.rejects(slow.request('GET', 'persist/flags/get', null, { signal: ac2.signal }), isCode('NORMAN_ERROR_CANCELLED'));
    assert.ok(Date.now() - started < 5000);
    await assert.rejects(slow.request('GET', 'x', null, { signal: AbortSignal.abort() }), isCode('NORMAN_ERROR_CANCELLED'));
    // close() cancels what is still running, opens blocked on the server in executor threads too.
    const pending = slow.request('GET', 'persist/flags/get').then(() => null, (e) => e);
    const target = { kind: 'asset', accountId: 'a', modelId: 'm', assetId: 'f' };
    const upload = slow.upload({ target, size: 10 });
    const uploadFailed = new Promise((resolve) => upload.once('error', resolve));
    const download = slow.download(target);
    const downloadFailed = new Promise((resolve) => download.once('error', resolve));
    download.resume();
    await new Promise((r) => setTimeout(r, 200));
    const closing = Date.now();
    await slow.close();
    assert.ok(Date.now() - closing < 5000, `close() took ${Date.now() - closing} ms`);
    isCode('NORMAN_ERROR_CANCELLED')(await pending);
    isCode('NORMAN_ERROR_CANCELLED')(await uploadFailed);
    isCode('NORMAN_ERROR_CANCELLED')(await downloadFailed);
  } finally {
    await slow.close();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('error paths: dead hosts, bad pairings, bad targets, 404, state errors', async () => {
  // Connect refused: a port nothing listens on.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const deadPort = probe.address().port;
  probe.close();
  await once(probe, 'close');
  const dead = new Client({ baseUrl: `http://127.0.0.1:${deadPort}/v0/`, retries: 0, timeoutMs: 3000 });
  try {
    await assert.rejects(dead.request('GET', 'persist/flags/get'), isCode('NORMAN_ERROR_CONNECT'));
    await assert.rejects(dead.entityState('e'), isCode('NORMAN_ERROR_CONNECT'));
  } finally {
    await dead.close();
  }

  const target = await createAssetTarget(client, accountId, 'node-errors');
  const pairing = await client.pair(target, 10);
  const key = pairing.encryption_key;
  const expectUpload = async (p, code) => {
    let up;
    try {
      up = client.upload(p);
    } catch (e) {
      return isCode(code)(e);
    }
    const [err] = await once(up, 'error');
    isCode(code)(err);
    assert.doesNotMatch(err.message, new RegExp(key.replace(/[+/=]/g, '.')));
  };
  await expectUpload({ ...pairing, port: deadPort }, 'NORMAN_ERROR_CONNECT');
  await expectUpload({ ...pairing, host: '127.0.0.1\0evil' }, 'NORMAN_ERROR_INVALID_PAIRING');
  // Strings C would cut short at a NUL byte are refused before they cross.
  assert.throws(() => new Client({ baseUrl: `http://127.0.0.1:${deadPort}/v0/\0x` }), isCode('NORMAN_ERROR_INVALID_CONFIG'));
  assert.throws(() => new Client({ token: 'tok\0en' }), isCode('NORMAN_ERROR_INVALID_CONFIG'));
  assert.throws(() => client.setToken('tok\0en'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.request('GET', 'persist/flags/get\0x'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.request('POST', 'persist/flags/get', '{}\0junk'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.entityState('id\0'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.retrieveFile({ ...target, assetId: 'a\0b' }, '/tmp/x'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(client.retrieveFile(target, '/tmp/x\0y'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await expectUpload({ ...pairing, encryption_key: Buffer.alloc(16).toString('base64') }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload({ ...pairing, nonce: 'not base64!' }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload({ ...pairing, port: 0 }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload({ ...pairing, host: '' }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload({ ...pairing, host: undefined }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload({ ...pairing, port: '80' }, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload(null, 'NORMAN_ERROR_INVALID_PAIRING');
  await expectUpload('{"nope', 'NORMAN_ERROR_INVALID_JSON');

  assert.throws(() => client.upload({ target: { ...target, kind: 'file' }, size: 1 }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  assert.throws(() => client.upload({ target, size: -1 }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  assert.throws(() => client.download({ ...target, accountId: undefined }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  assert.throws(() => client.download(null), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(checksum(client.download({ ...target, assetId: 'no-such-asset' })), isCode('NORMAN_ERROR_HTTP_NOT_FOUND'));

  // Writes: wrong types, null, after finish; a short stream is refused by the backend on finish.
  const up = client.upload({ target, size: 10 });
  assert.equal(up.write(42, (e) => assert.ok(e)), false);
  await assert.rejects(new Promise((res, rej) => up.write(null, (e) => (e ? rej(e) : res()))), isCode('NORMAN_ERROR_NULL_ARGUMENT'));
  await assert.rejects(new Promise((res, rej) => up.write({}, (e) => (e ? rej(e) : res()))), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  up.end(Buffer.alloc(9));
  await assert.rejects(up.result, isCode('NORMAN_ERROR_HTTP_STATUS'));
  const ok = client.upload({ target, size: 3 });
  await pipeline(Readable.from([Buffer.from('abc')]), ok);
  await assert.rejects(new Promise((res, rej) => ok.write(Buffer.from('d'), (e) => (e ? rej(e) : res()))), isCode('NORMAN_ERROR_STATE'));

  // Anything after close() is a STATE error.
  const closed = new Client({ baseUrl: serve.baseUrl, token });
  await closed.close();
  await closed.close();
  await assert.rejects(closed.request('GET', 'x'), isCode('NORMAN_ERROR_STATE'));
  assert.throws(() => closed.upload({ target, size: 1 }), isCode('NORMAN_ERROR_STATE'));
  assert.throws(() => closed.download(target), isCode('NORMAN_ERROR_STATE'));
  await assert.rejects(closed.pushFile(target, path.join(dir, 'round.bin')), isCode('NORMAN_ERROR_STATE'));
});
