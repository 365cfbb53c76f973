// Finding and loading libnorman, config validation, offline checksums: no server needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as norman from '../index.js';
import { cliChecksum, pattern } from '../support/serve.js';

const { Client, NormanError, checksum, checksumSync, entityStateOfFlags } = norman;
const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('the library loads with ABI version 1; ESM and CommonJS share one API', () => {
  assert.equal(norman.ABI_VERSION, 1);
  assert.match(norman.version(), /^\d+\.\d+\.\d+$/);
  assert.ok(fs.existsSync(norman.libraryPath()));
  const cjs = createRequire(import.meta.url)('../index.cjs');
  assert.equal(cjs.Client, Client);
  assert.equal(cjs.NormanError, NormanError);
});

test('a missing library fails with one error naming every place tried', () => {
  // A copy of the package outside the repository, so no cargo target dir is near it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'norman-pkg-'));
  try {
    fs.cpSync(path.join(pkg, 'lib'), path.join(dir, 'lib'), { recursive: true });
    fs.copyFileSync(path.join(pkg, 'index.cjs'), path.join(dir, 'index.cjs'));
    fs.symlinkSync(path.join(pkg, 'node_modules'), path.join(dir, 'node_modules'));
    const garbage = path.join(dir, 'garbage.so');
    fs.writeFileSync(garbage, 'not a shared library');
    const script = `const n = require(${JSON.stringify(path.join(dir, 'index.cjs'))});
      try { new n.Client(); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, result: e.result, message: e.message })); }`;
    const env = { ...process.env, NORMAN_LIBRARY: garbage, CARGO_TARGET_DIR: path.join(dir, 'no-target') };
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
    const err = JSON.parse(r.stdout);
    assert.equal(err.name, 'NormanError');
    assert.equal(err.code, 'NORMAN_ERROR_LIBRARY');
    assert.equal(err.result, 901);
    assert.match(err.message, new RegExp(`${garbage.replace(/[.]/g, '\\.')} \\(NORMAN_LIBRARY\\): failed to load`));
    assert.match(err.message, /prebuilds\/[a-z0-9]+-[a-z0-9]+\/libnorman\.so \(package\): missing/);
    assert.match(err.message, /no-target\/release\/libnorman\.so \(CARGO_TARGET_DIR\): missing/);
    assert.match(err.message, /no-target\/debug\/libnorman\.so \(CARGO_TARGET_DIR\): missing/);
    assert.match(err.message, /target\/release\/libnorman\.so \(repository\): missing/);
    assert.match(err.message, /target\/debug\/libnorman\.so \(repository\): missing/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('NORMAN_LIBRARY comes first in the lookup order', () => {
  const env = { ...process.env, NORMAN_LIBRARY: norman.libraryPath() };
  const r = spawnSync(process.execPath, ['-e', `const n = require(${JSON.stringify(path.join(pkg, 'index.cjs'))});
    console.log(JSON.stringify(n.libraryCandidates().map(c => c.origin)), n.libraryPath())`], { env, encoding: 'utf8' });
  const [origins, found] = r.stdout.trim().split(' ');
  assert.deepEqual(JSON.parse(origins).slice(0, 3), ['NORMAN_LIBRARY', 'package', 'package']);
  assert.equal(found, norman.libraryPath());
});

test('bad configurations are NormanErrors with code NORMAN_ERROR_INVALID_CONFIG', () => {
  const bad = [null, 'http://x/', [], { baseUrl: 5 }, { timeoutMs: 0 }, { timeoutMs: -1 }, { retries: 1.5 }, { chunkSize: 0 }, { bogus: 1 }, { token: 42 }];
  for (const config of bad) {
    assert.throws(() => new Client(config), (e) => e instanceof NormanError && e.code === 'NORMAN_ERROR_INVALID_CONFIG' && e.result === 5, util.inspect(config));
  }
});

test('the token never shows in util.inspect, JSON or errors', async () => {
  const token = 'secret-token-0123456789';
  const client = new Client({ baseUrl: 'http://127.0.0.1:1/v0/', token, retries: 0, timeoutMs: 2000 });
  try {
    assert.doesNotMatch(util.inspect(client, { showHidden: true, depth: 10 }), /secret-token/);
    assert.doesNotMatch(JSON.stringify(client), /secret-token/);
    const err = await client.request('GET', 'persist/flags/get').catch((e) => e);
    assert.equal(err.code, 'NORMAN_ERROR_CONNECT');
    assert.doesNotMatch(err.message + err.stack, /secret-token/);
  } finally {
    await client.close();
  }
});

test('a client without an http base URL refuses HTTP calls with INVALID_CONFIG', async () => {
  const client = new Client();
  try {
    await assert.rejects(client.request('GET', 'x'), { code: 'NORMAN_ERROR_INVALID_CONFIG', result: 5 });
  } finally {
    await client.close();
  }
});

test('checksums of buffers, strings and streams agree with `norman checksum`', async () => {
  const data = pattern(3 * 1024 * 1024 + 7, 9);
  const file = path.join(os.tmpdir(), `norman-node-sum-${process.pid}.bin`);
  fs.writeFileSync(file, data);
  try {
    const cli = cliChecksum(file);
    assert.equal(await checksum(data), cli);
    assert.equal(checksumSync(new Uint8Array(data.buffer, data.byteOffset, data.length)), cli);
    assert.equal(await checksum(fs.createReadStream(file, { highWaterMark: 10000 })), cli);
    assert.equal(await checksum(Readable.from([data.subarray(0, 5), data.subarray(5)])), cli);
    assert.equal(await checksum(''), await checksum(Buffer.alloc(0)));
    assert.equal(await checksum('hello world'), 'd447b1ea40e6988b');
  } finally {
    fs.rmSync(file, { force: true });
  }
  await assert.rejects(checksum(null), { code: 'NORMAN_ERROR_NULL_ARGUMENT' });
  await assert.rejects(checksum(42), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  await assert.rejects(checksum(Readable.from([{ a: 1 }])), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => checksumSync({}), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
});

test('status flags are judged offline', () => {
  const flag = (v) => ({ id: 'f', account_id: 'a', entity_id: 'e', update_time: '2025-09-15T12:00:00Z', flag_name: 'File_S3_Storage', flag_value: v });
  assert.equal(entityStateOfFlags([flag(3), flag(3)]), 'done');
  assert.equal(entityStateOfFlags([flag(3), flag(2)]), 'pending');
  assert.equal(entityStateOfFlags([flag(4), flag(3)]), 'failed');
  assert.equal(entityStateOfFlags({ e: [flag(3)] }), 'done');
  assert.throws(() => entityStateOfFlags(null), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => entityStateOfFlags([{ nope: 1 }]), (e) => e instanceof NormanError && e.result > 0);
});
