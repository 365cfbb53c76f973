// No `norman serve` here: small loopback servers stand for a backend of either generation (model
// routes answering a list or a map) and record what reaches them (the token goes to the base URL
// only).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { Client, NormanError, newModel } from '../index.js';

const closers = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

const isCode = (code) => (e) => {
  assert.ok(e instanceof NormanError, `expected a NormanError, got ${e}`);
  assert.equal(e.code, code, e.message);
  return true;
};

/** A loopback HTTP server: handler(req, body) -> [status, text]; keeps every request it got. */
async function server(handler) {
  const seen = [];
  const srv = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString();
    seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, body });
    const [status, text] = handler(req, body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  closers.push(() => new Promise((r) => srv.close(r)));
  return { host: `127.0.0.1:${srv.address().port}`, base: `http://127.0.0.1:${srv.address().port}/v0/`, seen };
}

function client(baseUrl, token) {
  const c = new Client({ baseUrl, token, retries: 0, timeoutMs: 10000 });
  closers.push(() => c.close());
  return c;
}

/** A backend of one generation: the models sent back, ids assigned, as a list in order or an id map. */
function generation(shape) {
  return (req, body) => {
    const models = JSON.parse(body);
    models.forEach((m, i) => {
      if (!m.id || m.id === '0') m.id = `${req.url.replace(/\W/g, '')}-${i}`;
      m.model_base_id = `base-${m.id}`;
    });
    return [200, JSON.stringify(shape === 'list' ? models : Object.fromEntries(models.map((m) => [m.id, m])))];
  };
}

for (const shape of ['list', 'map']) {
  test(`model routes accept the ${shape} answer of a backend generation`, async () => {
    const { base } = await server(generation(shape));
    const c = client(base, 'tok');
    const one = await c.createModel(newModel('acc', 'solo', 'v1', 'File'));
    assert.equal(one.name, 'solo');
    assert.equal(one.model_base_id, `base-${one.id}`);
    assert.equal(one.assets.length, 1);
    for (const call of ['createModels', 'createModelVersions', 'updateModels']) {
      const kept = { ...newModel('acc', 'kept', 'v2'), id: 'given-id' };
      const got = await c[call]([newModel('acc', 'a', 'v1'), newModel('acc', 'b', 'v1'), kept]);
      assert.equal(Object.keys(got).length, 3, call);
      assert.equal(got['given-id'].name, 'kept', call);
      for (const [id, m] of Object.entries(got)) assert.equal(m.id, id, call);
      assert.deepEqual(Object.values(got).map((m) => m.name).sort(), ['a', 'b', 'kept'], call);
    }
  });
}

test('model answers of neither shape, or lists that would lose models, are NORMAN_ERROR_DECODE', async () => {
  for (const raw of ['7', 'null', '"x"', '[7]', '[{"name":"no id"}]', '[{"id":"0"}]', '[{"id":"a"},{"id":"a"}]']) {
    const { base } = await server(() => [200, raw]);
    const c = client(base, 'tok');
    await assert.rejects(c.createModels([newModel('acc', 'a', 'v1')]), isCode('NORMAN_ERROR_DECODE'), raw);
    await assert.rejects(c.updateModels([newModel('acc', 'a', 'v1')]), isCode('NORMAN_ERROR_DECODE'), raw);
    await assert.rejects(c.createModel(newModel('acc', 'a', 'v1')), isCode('NORMAN_ERROR_DECODE'), raw);
  }
  const { base } = await server(() => [200, '[]']);
  await assert.rejects(client(base, 'tok').createModel(newModel('acc', 'a', 'v1')), isCode('NORMAN_ERROR_DECODE'));
});

test('the token goes to the base URL only: routes that leave it are NORMAN_ERROR_INVALID_ARGUMENT', async () => {
  const home = await server(() => [200, '{}']);
  const other = await server(() => [200, '{}']);
  const token = 'tok-must-stay-home-7';
  const c = client(home.base, token);
  const forms = ['http://{h}/steal', 'HTTP://{h}/steal', 'https://{h}/steal', ' http://{h}/steal', '\t\nhttp://{h}/steal',
    'ht\ttp://{h}/steal', '\\\\{h}/steal', '/\\\\{h}/steal', '\\/{h}/steal', ' //{h}/steal', 'http://x@{h}/steal'];
  for (const form of forms) {
    const route = form.replace('{h}', other.host);
    await assert.rejects(c.request('GET', route), isCode('NORMAN_ERROR_INVALID_ARGUMENT'), JSON.stringify(route));
    await assert.rejects(c.requestJson('POST', route, { a: 1 }), isCode('NORMAN_ERROR_INVALID_ARGUMENT'), JSON.stringify(route));
  }
  for (const route of ['../steal', '%2e%2e/steal', 'a/../../steal']) {
    await assert.rejects(c.request('GET', route), isCode('NORMAN_ERROR_INVALID_ARGUMENT'), route);
  }
  assert.equal((await c.request('GET', 'persist/x')).status, 200);
  assert.deepEqual(other.seen, []);
  assert.deepEqual(home.seen.map((r) => [r.method, r.url, r.authorization]), [['GET', '/v0/persist/x', `Bearer ${token}`]]);
});
