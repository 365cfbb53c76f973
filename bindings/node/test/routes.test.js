// The typed routes against a real `norman serve` (mirrors bindings/go/norman/services_test.go):
// persist, invocations of the dev backend's "echo" model, status flags, file pull, logins.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { once } from 'node:events';
import { Client, NormanError, checksum, entityStateOfFlags, newModel, assetIdOf, whereEquals, whereIn } from '../index.js';
import { startServe, signup, cliChecksum, pattern } from '../support/serve.js';

let serve;
let dir;
const clients = [];

before(async () => {
  serve = await startServe();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'norman-node-routes-'));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await serve?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function newClient(token) {
  const c = new Client({ baseUrl: serve.baseUrl, token, timeoutMs: 10000 });
  clients.push(c);
  return c;
}

/** A fresh account (so counts are exact) and a client with its token. */
async function newAccount() {
  const { token, accountId } = await signup(serve.baseUrl);
  return { id: accountId, client: newClient(token) };
}

const isCode = (code) => (e) => {
  assert.ok(e instanceof NormanError, `expected a NormanError, got ${e}`);
  assert.equal(e.code, code, e.message);
  return true;
};

test('helpers: newModel, assetIdOf, whereEquals, whereIn', () => {
  const m = newModel('acc', 'n', 'v1', 'File', 'Logo');
  assert.equal(m.id, undefined);
  assert.equal(m.active, true);
  assert.deepEqual([m.request_type, m.model_type, m.hosting_location, m.output_format], ['Post', 'Api', 'External', 'Json']);
  assert.deepEqual(m.assets, [
    { account_id: 'acc', asset_name: 'File' },
    { account_id: 'acc', asset_name: 'Logo' },
  ]);
  assert.equal(assetIdOf({ ...m, assets: [{ ...m.assets[0], id: 'a1' }] }, 'File'), 'a1');
  assert.equal(assetIdOf(m, 'File'), undefined);
  assert.equal(assetIdOf(m, 'Other'), undefined);
  assert.deepEqual(whereEquals('Models', 'Name', 'x').filter, {
    join_condition: 'AND',
    children: [{ table: 'Models', column: 'Name', operator: '=', value: 'x' }],
  });
  assert.deepEqual(whereIn('Models', 'ID', 'a', 'b').filter.children[0], { table: 'Models', column: 'ID', operator: 'IN', value: ['a', 'b'] });
  assert.deepEqual(whereIn('Models', 'ID', ['a', 'b']), whereIn('Models', 'ID', 'a', 'b'));
  assert.throws(() => newModel('acc', '', 'v1'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  assert.throws(() => whereIn(undefined, 'ID'), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('persist: create, get by name and by ids, bases, delete', async () => {
  const a = await newAccount();
  const ids = {};
  for (const name of ['alpha', 'bravo', 'charlie']) {
    const m = await a.client.createModel(newModel(a.id, name, 'v1', 'File'));
    assert.ok(m.id && m.id !== '0', `an id: ${m.id}`);
    assert.equal(m.account_id, a.id);
    assert.equal(m.name, name);
    assert.equal(m.active, true);
    assert.ok(assetIdOf(m, 'File'));
    ids[name] = m.id;
  }
  const byName = await a.client.getModels({ constraints: whereEquals('Models', 'Name', 'bravo') });
  assert.deepEqual(Object.keys(byName), [ids.bravo]);
  assert.equal(byName[ids.bravo].name, 'bravo');
  const byId = await a.client.getModels({ constraints: whereIn('Models', 'ID', ids.alpha, ids.charlie), finishedModels: false });
  assert.deepEqual(Object.keys(byId).sort(), [ids.alpha, ids.charlie].sort());
  const bases = await a.client.getModelBases();
  assert.equal(Object.keys(bases).length, 3);
  for (const b of Object.values(bases)) assert.equal(b.account_id, a.id);
  assert.equal(await a.client.deleteModels(whereIn('Models', 'ID', ids.alpha)), 1);
  const left = await a.client.getModels();
  assert.equal(Object.keys(left).length, 2);
  assert.ok(!(ids.alpha in left), 'the deleted model is gone');

  // A second version of bravo's base, then made the active one.
  const bravo = byName[ids.bravo];
  const v2 = Object.values(
    await a.client.createModelVersions([{ ...newModel(a.id, 'bravo', 'v2'), model_base_id: bravo.model_base_id, active: false }]),
  )[0];
  assert.equal(v2.model_base_id, bravo.model_base_id);
  const previews = await a.client.updateModelVersions([{ id: v2.id, account_id: a.id, model_base_id: v2.model_base_id, version_label: 'v2', active: true }]);
  assert.ok(Array.isArray(previews));
  const updated = await a.client.updateModels([{ ...left[ids.charlie], short_description: 'changed' }]);
  assert.equal(updated[ids.charlie].short_description, 'changed');

  await assert.rejects(a.client.deleteModels(), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(a.client.createModel(null), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(a.client.getModels({ finished_models: 'yes' }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
  await assert.rejects(a.client.createInvocationsByName({ echo: -1 }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('invocations of "echo": input pushed, output retrieved, flags done, by name, notifications', async () => {
  const a = await newAccount();
  const model = await a.client.createModel(newModel(a.id, 'echo', 'v1', 'File'));
  const slot = (title) => ({ account_id: a.id, model_id: model.id, signature_id: '0', display_title: title });
  const created = await a.client.createInvocations([{ account_id: a.id, model_id: model.id, inputs: [slot('prompt')], outputs: [slot('reply')] }]);
  assert.equal(created.length, 1);
  const inv = created[0];
  assert.equal(inv.inputs.length, 1);
  assert.equal(inv.outputs.length, 1);
  const inputId = inv.inputs[0].id;
  const outputId = inv.outputs[0].id;

  const src = path.join(dir, 'prompt.bin');
  fs.writeFileSync(src, pattern(777777, 7));
  const pushed = await a.client.pushFile({ kind: 'input', accountId: a.id, modelId: model.id, invocationId: inv.id, inputId }, src);
  assert.equal(pushed.checksum, cliChecksum(src));
  const out = path.join(dir, 'reply.bin');
  const output = { kind: 'output', accountId: a.id, modelId: model.id, invocationId: inv.id, outputId };
  const got = await a.client.retrieveFile(output, out);
  assert.deepEqual(got, pushed);
  assert.equal(cliChecksum(out), pushed.checksum);
  assert.equal(await checksum(a.client.download(output)), pushed.checksum);

  const flags = await a.client.getFlagsOf(outputId, { signal: AbortSignal.timeout(10000) });
  assert.ok(flags[outputId]?.length > 0, `flags of the output: ${JSON.stringify(flags)}`);
  for (const f of flags[outputId]) assert.equal(f.entity_id, outputId);
  assert.equal(entityStateOfFlags(flags[outputId]), 'done');
  assert.equal(await a.client.entityState(outputId), 'done');
  assert.equal(await a.client.entityState('no-such-entity'), 'pending');
  const both = await a.client.getFlagsOf(inputId, outputId);
  assert.deepEqual(Object.keys(both).sort(), [inputId, outputId].sort());

  const listed = await a.client.getInvocations(whereIn('Invocations', 'ID', inv.id));
  assert.equal(listed[inv.id].model_id, model.id);
  assert.ok(inv.id in (await a.client.getInvocations()));
  assert.equal(typeof (await a.client.getInvocationHistory()), 'object');
  const byName = await a.client.createInvocationsByName({ echo: 2 });
  assert.equal(byName.length, 2);
  for (const i of byName) assert.equal(i.model_id, model.id);
  assert.ok(Array.isArray(await a.client.getNotifications()));
});

test('file pull: a link fetched by the backend, followed with downloadMetadata; file: links refused', async () => {
  const a = await newAccount();
  const model = await a.client.createModel(newModel(a.id, 'pulled', 'v1', 'File'));
  const assetId = assetIdOf(model, 'File');
  const content = pattern(400000, 9);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': content.length, 'Content-Type': 'application/octet-stream' });
    res.end(content);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const link = `http://127.0.0.1:${server.address().port}/weights.bin`;
    const ids = await a.client.submitAssetLinks({ account_id: a.id, model_id: model.id, links: [link], asset_id: assetId, asset_name: 'File' });
    assert.equal(ids.length, 1);
    const deadline = Date.now() + 20000;
    for (;;) {
      const meta = await a.client.downloadMetadata(ids[0]);
      assert.equal(meta.entity_type, 'Asset');
      assert.ok(meta.entity_type === 'Asset' && meta.asset, `metadata of an asset pull: ${JSON.stringify(meta)}`);
      if (meta.total_bytes > 0 && meta.downloaded_bytes === meta.total_bytes) break;
      assert.ok(Date.now() < deadline, `the pull did not finish: ${JSON.stringify(meta)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const target = { kind: 'asset', accountId: a.id, modelId: model.id, assetId };
    const chunks = [];
    for await (const c of a.client.download(target)) chunks.push(c);
    assert.ok(Buffer.concat(chunks).equals(content), 'the pulled asset equals the served content');
  } finally {
    server.close();
  }
  await assert.rejects(
    a.client.submitAssetLinks({ account_id: a.id, model_id: model.id, links: ['file:///etc/passwd'], asset_id: assetId, asset_name: 'File' }),
    (e) => isCode('NORMAN_ERROR_HTTP_STATUS')(e) && e.status === 400,
  );
  await assert.rejects(a.client.downloadMetadata('no-such-pull'), (e) => isCode('NORMAN_ERROR_HTTP_NOT_FOUND')(e) && e.status === 404);
  await assert.rejects(a.client.submitInputLinks({ account_id: a.id, model_id: model.id, links: 'x' }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('loginDefault + setToken on a fresh client; loginWithKey keeps the key out of errors', async () => {
  const a = await newAccount();
  const anon = newClient();
  await assert.rejects(anon.getStatusFlags(), (e) => isCode('NORMAN_ERROR_HTTP_UNAUTHORIZED')(e) && e.status >= 401);
  const login = await anon.loginDefault(a.id);
  assert.equal(login.account.id, a.id);
  assert.ok(typeof login.access_token === 'string' && login.access_token.length > 0);
  assert.ok(!util.inspect(login).includes(login.access_token), 'inspect redacts the token');
  assert.equal(JSON.parse(JSON.stringify(login)).access_token, login.access_token);
  anon.setToken(login.access_token);
  assert.equal(typeof (await anon.getStatusFlags()), 'object');
  assert.deepEqual(await anon.getFlagsOf('nothing-here'), {});

  const key = 'nk_super-secret-key-0123456789';
  const err = await anon.loginWithKey(a.id, key).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof NormanError, `a wrong key is refused: ${err}`);
  assert.ok(err.status >= 400);
  assert.ok(!err.message.includes(key) && !String(err.stack).includes(key) && !util.inspect(err).includes(key), err.message);
  await assert.rejects(anon.loginWithKey(a.id, ''), isCode('NORMAN_ERROR_INVALID_ARGUMENT'));
});

test('odd backends: 2xx answers of the wrong shape are NORMAN_ERROR_DECODE; an echoed API key is redacted', async () => {
  // A tiny backend: 200 with JSON of the wrong shape or no JSON at all; 401 echoing a login body.
  const server = http.createServer(async (req, res) => {
    let body = req.url.includes('models/get') ? '[1,2]' : req.url.includes('models') ? '"three"' : '{not json';
    let status = 200;
    if (req.url.includes('flags')) {
      body = `{"detail":"token ${req.headers.authorization} is not known"}`;
      status = 401;
    } else if (req.url.includes('login/key')) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      body = `{"detail":"bad key in ${Buffer.concat(chunks).toString().replace(/"/g, "'")}"}`;
      status = 401;
    }
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const odd = new Client({ baseUrl: `http://127.0.0.1:${server.address().port}/v0/`, retries: 0 });
  try {
    await assert.rejects(odd.getModels(), isCode('NORMAN_ERROR_DECODE'));
    await assert.rejects(odd.deleteModels(whereIn('Models', 'ID', 'x')), isCode('NORMAN_ERROR_DECODE'));
    await assert.rejects(odd.getNotifications(), isCode('NORMAN_ERROR_DECODE'));
    const key = 'nk_echoed-secret-key-42';
    const err = await odd.loginWithKey('acc', key).then(
      () => null,
      (e) => e,
    );
    isCode('NORMAN_ERROR_HTTP_UNAUTHORIZED')(err);
    assert.equal(err.status, 401);
    assert.match(err.message, /bad key in .*<redacted>/);
    assert.ok(!err.message.includes(key) && !String(err.stack).includes(key) && !util.inspect(err).includes(key), err.message);
    // A server that echoes the bearer token: the client's token never reaches the error either.
    const token = 'tok_echoed-bearer-token-77';
    odd.setToken(token);
    const echoed = await odd.getStatusFlags().then(
      () => null,
      (e) => e,
    );
    isCode('NORMAN_ERROR_HTTP_UNAUTHORIZED')(echoed);
    assert.match(echoed.message, /token Bearer <redacted> is not known/);
    assert.ok(!echoed.message.includes(token) && !String(echoed.stack).includes(token), echoed.message);
  } finally {
    await odd.close();
    server.close();
  }
});
