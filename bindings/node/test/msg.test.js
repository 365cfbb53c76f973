// Messaging through the C API: requests against a real `norman msg serve` with each layer, a Node
// server with a Node client (async handlers, errors, once, per-handler layers, pub/sub), aborts and
// deadlines, ordered sends, notifications ending on close, UDP nodes with peers on loopback, bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, MsgType, NormanError, netaioHmac, netaioCipher, aead, Msg } from '../index.js';
import { startListening, pattern } from '../support/serve.js';

const AEAD_KEY = pattern(32, 7);
let dir;
let client;
const servers = {};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'norman-node-msg-'));
  const keyFile = path.join(dir, 'aead.key');
  fs.writeFileSync(keyFile, AEAD_KEY);
  const serve = (...extra) => startListening(['msg', 'serve', '--listen', '127.0.0.1:0', ...extra]);
  [servers.plain, servers.netaio, servers.aead, servers.inner] = await Promise.all([
    serve(),
    serve('--secret', 'node-secret', '--cipher-key', 'node-cipher'),
    serve('--aead-key-file', keyFile),
    serve('--secret', 'outer', '--inner-secret', 'inner-secret', '--inner-cipher-key', 'inner-key'),
  ]);
  client = new Client();
});

after(async () => {
  await client?.close();
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Rejects with a NormanError of `code`; returns it. */
async function rejectsWith(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof NormanError, `not a NormanError: ${e && e.stack}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`resolved; expected ${code}`);
}

const NETAIO = [netaioCipher('node-cipher'), netaioHmac('node-secret')];
const INNER = [netaioCipher('inner-key', { field: 'iv2', encryptUri: false }), netaioHmac('inner-secret', { field: 'hmac2' })];

test('echo requests against norman msg serve with each layer setting', async () => {
  const cases = [
    ['plain', servers.plain, undefined, undefined],
    ['netaio cipher + hmac', servers.netaio, NETAIO, undefined],
    ['aead', servers.aead, aead(AEAD_KEY), undefined],
    // The CLI's per-handler layers: a cipher on field iv2 (uri in the clear), an HMAC on hmac2.
    ['outer hmac, per-call inner cipher + hmac', servers.inner, netaioHmac('outer'), INNER],
  ];
  for (const [name, server, layers, inner] of cases) {
    const conn = await client.msgConnect(server.addr, { layers });
    const opts = inner ? { layers: inner } : undefined;
    try {
      const body = pattern(1024, name.length);
      const reply = await conn.request(MsgType.REQUEST_URI, 'echo', body, opts);
      assert.ok(reply instanceof Msg);
      assert.equal(reply.type, MsgType.RESPOND_URI, name);
      assert.equal(reply.uri, 'echo');
      assert.deepEqual(reply.content, body, name);
      // Stored and read back: CREATE answers OK, REQUEST the content.
      assert.equal((await conn.request('CREATE_URI', `k-${name}`, 'value', opts)).type, MsgType.OK);
      assert.equal((await conn.request('REQUEST_URI', `k-${name}`, null, opts)).text(), 'value');
    } finally {
      await conn.close();
    }
  }
});

test('a wrong key or secret is refused, never answered as if right', async () => {
  const noInner = await client.msgConnect(servers.inner.addr, { layers: netaioHmac('outer') });
  try {
    const e = await noInner.request('REQUEST_URI', 'echo', 'x', { timeoutMs: 3000 }).then(
      () => null,
      (err) => err,
    );
    assert.ok(e instanceof NormanError, 'a request without the handler layers must fail');
  } finally {
    await noInner.close();
  }
  const conn = await client.msgConnect(servers.netaio.addr, { layers: [netaioCipher('node-cipher'), netaioHmac('wrong')] });
  try {
    const e = await rejectsWith(conn.request('REQUEST_URI', 'echo', 'x', { timeoutMs: 3000 }), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.reply.type, MsgType.AUTH_ERROR);
  } finally {
    await conn.close();
  }
  const bad = await client.msgConnect(servers.aead.addr, { layers: aead(pattern(32, 8)) });
  try {
    const e = await bad.request('REQUEST_URI', 'echo', 'x', { timeoutMs: 1500 }).then(
      () => null,
      (err) => err,
    );
    assert.ok(e instanceof NormanError, 'a request under the wrong AEAD key must fail');
  } finally {
    await bad.close();
  }
});

test('a remote NOT_FOUND rejects with NORMAN_ERROR_MSG_REMOTE carrying the reply', async () => {
  const conn = await client.msgConnect(servers.plain.addr);
  try {
    const e = await rejectsWith(conn.request('REQUEST_URI', 'no-such-key'), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.result, 212);
    assert.equal(e.reply.type, MsgType.NOT_FOUND);
    assert.equal(e.reply.typeName, 'NOT_FOUND');
    assert.equal(e.reply.text(), 'not found');
  } finally {
    await conn.close();
  }
});

test('subscribe to norman msg serve: notifications arrive, and the iterator ends on close', async () => {
  const sub = await client.msgConnect(servers.plain.addr);
  const pub = await client.msgConnect(servers.plain.addr);
  try {
    assert.equal((await sub.subscribe('news')).type, MsgType.CONFIRM_SUBSCRIBE);
    const got = [];
    const reading = (async () => {
      for await (const n of sub.notifications()) got.push(n);
    })();
    for (const v of ['one', 'two', 'three']) assert.equal((await pub.request('UPDATE_URI', 'news', v)).type, MsgType.OK);
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      got.map((n) => [n.typeName, n.uri, n.text()]),
      [['NOTIFY_URI', 'news', 'one'], ['NOTIFY_URI', 'news', 'two'], ['NOTIFY_URI', 'news', 'three']],
    );
    await sub.close();
    await reading; // ended: the for-await loop returned
    await rejectsWith(sub.request('REQUEST_URI', 'echo'), 'NORMAN_ERROR_STATE');
  } finally {
    await sub.close();
    await pub.close();
  }
});

test('a Node server and a Node client: async handlers, thrown errors, once, per-handler layers', async () => {
  // Inner HMAC under the outer one: its own MAC field, as netaio nests them.
  const secret = [netaioHmac('handler-secret', { field: 'hmac2' })];
  const server = client.msgServer({ layers: NETAIO });
  const seen = [];
  server
    .handle('REQUEST_URI', 'echo', async (call) => {
      seen.push([call.typeName, call.uri, call.peer.startsWith('127.0.0.1:'), call.connId > 0]);
      await new Promise((r) => setTimeout(r, 5));
      return call.content;
    })
    .handle('REQUEST_URI', 'boom', () => {
      throw new Error('handler failed on purpose');
    })
    .handle('REQUEST_URI', 'forbidden', async () => {
      throw Object.assign(new Error('not for you'), { msgType: MsgType.NOT_PERMITTED });
    })
    .handle('REQUEST_URI', 'typed', () => ({ type: 40, content: 'custom type' }))
    .handle('CREATE_URI', null, () => 'stored')
    .handle('REQUEST_URI', 'first', () => 'only once', { once: true })
    .handle('REQUEST_URI', 'sealed', (call) => `inner ok ${call.text()}`, { layers: secret });
  const port = await server.listen('127.0.0.1:0');
  assert.ok(port > 0);
  assert.equal(server.port, port);
  const conn = await client.msgConnect(`127.0.0.1:${port}`, { layers: NETAIO });
  try {
    // Concurrent requests to one uri: each gets its own answer (request ids).
    const bodies = Array.from({ length: 20 }, (_, i) => pattern(100 + i, i));
    const replies = await Promise.all(bodies.map((b) => conn.request('REQUEST_URI', 'echo', b)));
    replies.forEach((r, i) => assert.deepEqual(r.content, bodies[i]));
    assert.deepEqual(seen[0], ['REQUEST_URI', 'echo', true, true]);

    let e = await rejectsWith(conn.request('REQUEST_URI', 'boom'), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.reply.type, MsgType.ERROR);
    assert.equal(e.reply.text(), 'handler failed on purpose');
    e = await rejectsWith(conn.request('REQUEST_URI', 'forbidden'), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.reply.type, MsgType.NOT_PERMITTED);

    const typed = await conn.request('REQUEST_URI', 'typed');
    assert.deepEqual([typed.type, typed.text()], [40, 'custom type']);
    const created = await conn.request('CREATE_URI', 'anything');
    assert.deepEqual([created.type, created.text()], [MsgType.OK, 'stored']);

    assert.equal((await conn.request('REQUEST_URI', 'first')).text(), 'only once');
    e = await rejectsWith(conn.request('REQUEST_URI', 'first'), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.reply.type, MsgType.NOT_FOUND);

    assert.equal((await conn.request('REQUEST_URI', 'sealed', 'x', { layers: secret })).text(), 'inner ok x');
    e = await conn.request('REQUEST_URI', 'sealed', 'x', { layers: [netaioHmac('other', { field: 'hmac2' })], timeoutMs: 2000 }).then(
      () => null,
      (err) => err,
    );
    assert.ok(e instanceof NormanError, 'the handler layers must refuse another secret');
  } finally {
    await conn.close();
    await server.close();
  }
  assert.equal(server.closed, true);
});

test('a Node server notifies subscribers and broadcasts; the iterator ends when the server closes', async () => {
  const server = client.msgServer({ autoSubscribe: true });
  const port = await server.listen();
  const conn = await client.msgConnect(`127.0.0.1:${port}`);
  assert.equal((await conn.subscribe('topic')).type, MsgType.CONFIRM_SUBSCRIBE);
  assert.equal(server.notify('topic', 'n1'), 1);
  assert.equal(server.notify('elsewhere', 'nobody'), 0);
  assert.equal(server.broadcast(MsgType.PUBLISH_URI, 'all', 'b1'), 1);
  const got = [];
  for await (const n of conn.notifications()) {
    got.push([n.typeName, n.uri, n.text()]);
    if (got.length === 2) await server.close();
  }
  assert.deepEqual(got, [['NOTIFY_URI', 'topic', 'n1'], ['PUBLISH_URI', 'all', 'b1']]);
  await conn.close();
});

test('sends keep their order; a request after them is answered after all were handled', async () => {
  const server = client.msgServer();
  const order = [];
  server.handle('PUBLISH_URI', 'seq', (call) => {
    order.push(call.content.readUInt32BE(0));
  });
  server.handle('REQUEST_URI', 'count', () => String(order.length));
  const port = await server.listen();
  const conn = await client.msgConnect(`127.0.0.1:${port}`);
  try {
    const sends = [];
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(i, 0);
      sends.push(conn.send('PUBLISH_URI', 'seq', b));
    }
    await Promise.all(sends);
    assert.equal((await conn.request('REQUEST_URI', 'count')).text(), '2000');
    assert.deepEqual(order, Array.from({ length: 2000 }, (_, i) => i));
  } finally {
    await conn.close();
    await server.close();
  }
});

test('AbortSignal and deadlines: a request the server never answers', async () => {
  const server = client.msgServer();
  const held = [];
  server.handle('REQUEST_URI', 'never', (call) => new Promise((resolve) => held.push(resolve)));
  const port = await server.listen();
  const conn = await client.msgConnect(`127.0.0.1:${port}`);
  try {
    const ac = new AbortController();
    const p = conn.request('REQUEST_URI', 'never', 'x', { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('user gave up')), 50);
    const e = await rejectsWith(p, 'NORMAN_ERROR_CANCELLED');
    assert.equal(e.cause.message, 'user gave up');
    await rejectsWith(conn.request('REQUEST_URI', 'never', 'x', { signal: AbortSignal.abort() }), 'NORMAN_ERROR_CANCELLED');
    await rejectsWith(conn.request('REQUEST_URI', 'never', 'x', { timeoutMs: 100 }), 'NORMAN_ERROR_TIMEOUT');
    // The connection still works.
    server.handle('REQUEST_URI', 'echo', (call) => call.content);
    assert.equal((await conn.request('REQUEST_URI', 'echo', 'still')).text(), 'still');
    // A request pending when the connection closes rejects.
    const pending = conn.request('REQUEST_URI', 'never');
    await new Promise((r) => setTimeout(r, 20));
    const closing = conn.close();
    const err = await pending.then(
      () => null,
      (x) => x,
    );
    assert.ok(err instanceof NormanError, 'a pending request must reject on close');
    await closing;
  } finally {
    held.forEach((r) => r('late'));
    await conn.close();
    await server.close();
  }
});

test('bad input: documented codes, nothing sent', async () => {
  assert.throws(() => aead(Buffer.alloc(31)), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => aead('a string key'), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => netaioHmac(''), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => netaioCipher(Buffer.alloc(0)), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.doesNotMatch(JSON.stringify(netaioHmac('top-secret')), /top-secret/);
  const server = client.msgServer();
  assert.throws(() => server.handle(256, 'x', () => {}), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => server.handle('NOPE', 'x', () => {}), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => server.handle(0, 'x', 'not a function'), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  await server.close();
  assert.throws(() => server.notify('x', 'y'), { code: 'NORMAN_ERROR_STATE' });

  await rejectsWith(client.msgConnect('127.0.0.1:1', { timeoutMs: 2000 }), 'NORMAN_ERROR_CONNECT');
  await rejectsWith(client.msgConnect(''), 'NORMAN_ERROR_INVALID_ARGUMENT');
  await rejectsWith(client.msgConnect('127.0.0.1:1', { layers: ['not a layer'] }), 'NORMAN_ERROR_INVALID_ARGUMENT');

  const conn = await client.msgConnect(servers.plain.addr);
  try {
    await rejectsWith(conn.request(-1, 'echo'), 'NORMAN_ERROR_INVALID_ARGUMENT');
    await rejectsWith(conn.request('REQUEST_URI', 42), 'NORMAN_ERROR_INVALID_ARGUMENT');
    await rejectsWith(conn.request('REQUEST_URI', 'echo', { not: 'bytes' }), 'NORMAN_ERROR_INVALID_ARGUMENT');
    await rejectsWith(conn.request('REQUEST_URI', 'echo', 'x', { timeoutMs: 1.5 }), 'NORMAN_ERROR_INVALID_ARGUMENT');
    // uri + content above netaio's one-message limit (65 422 bytes): refused before sending.
    await rejectsWith(conn.request('REQUEST_URI', 'echo', Buffer.alloc(70000)), 'NORMAN_ERROR_OVERSIZE');
    await rejectsWith(conn.send('PUBLISH_URI', 'x', Buffer.alloc(70000)), 'NORMAN_ERROR_OVERSIZE');
    // The connection is fine afterwards.
    assert.equal((await conn.request('REQUEST_URI', 'echo', 'ok')).text(), 'ok');
  } finally {
    await conn.close();
  }
});

test('UDP nodes on loopback: request, unhandled datagrams, peers', async () => {
  const a = client.msgNode({ bind: '127.0.0.1:0' });
  const b = client.msgNode({ bind: '127.0.0.1:0' });
  try {
    a.handle('REQUEST_URI', 'echo', (call) => {
      assert.match(call.peer, /^127\.0\.0\.1:\d+$/);
      return call.content;
    });
    const reply = await b.request(`127.0.0.1:${a.port}`, 'REQUEST_URI', 'echo', 'over udp');
    assert.deepEqual([reply.type, reply.text()], [MsgType.RESPOND_URI, 'over udp']);
    const e = await rejectsWith(b.request(`127.0.0.1:${a.port}`, 'REQUEST_URI', 'nothing-here'), 'NORMAN_ERROR_MSG_REMOTE');
    assert.equal(e.reply.type, MsgType.NOT_FOUND);

    // A datagram no handler takes lands in messages().
    const it = b.messages();
    a.send(`127.0.0.1:${b.port}`, 'PUBLISH_URI', 'loose', 'datagram');
    const { value } = await it.next();
    assert.deepEqual([value.typeName, value.uri, value.text()], ['PUBLISH_URI', 'loose', 'datagram']);
  } finally {
    await a.close();
    await b.close();
  }
});

test('UDP peer discovery over multicast pinned to 127.0.0.1', async () => {
  // The group on a port of its own (free now), where nodes bound to different ports meet.
  const probe = dgram.createSocket('udp4');
  await new Promise((r) => probe.bind(0, '127.0.0.1', r));
  const group = `239.255.77.77:${probe.address().port}`;
  await new Promise((r) => probe.close(r));
  const make = () => client.msgNode({ bind: '127.0.0.1:0', group, multicastIf: '127.0.0.1' });
  const a = make();
  const b = make();
  try {
    a.managePeers({ id: 'node-a', data: 'A data', everyMs: 100, timeoutMs: 5000 });
    b.managePeers({ id: 'node-b', data: 'B data', everyMs: 100, timeoutMs: 5000 });
    let peers = [];
    for (let i = 0; i < 100 && !peers.some((p) => p.id.toString() === 'node-b'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      peers = a.peers();
    }
    const pb = peers.find((p) => p.id.toString() === 'node-b');
    assert.ok(pb, `node-a never learned node-b: ${JSON.stringify(peers)}`);
    assert.equal(pb.idHex, Buffer.from('node-b').toString('hex'));
    assert.equal(pb.data.toString(), 'B data');
    assert.match(pb.addr, /^127\.0\.0\.1:\d+$/);
    assert.ok(pb.lastSeenMsAgo >= 0);
  } finally {
    await a.close();
    await b.close();
  }
});
