// BSON documents on a stream through the C API: round trips with a real `norman bson serve --echo`
// and between Node ends, decoded with the npm `bson` package; JSON helpers; clean end, truncation,
// oversize, invalid documents and aborted reads against raw sockets of Node's own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { BSON, Binary, Long } from 'bson';
import { Client, NormanError, bsonToJson, bsonFromJson } from '../index.js';
import { startListening, pattern } from '../support/serve.js';

let client;
let echo;

before(async () => {
  echo = await startListening(['bson', 'serve', '--listen', '127.0.0.1:0', '--echo']);
  client = new Client();
});
after(async () => {
  await client?.close();
  await echo?.stop();
});

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

/** A raw TCP server of Node's own: `onConn(socket)` per connection; resolves { addr, close() }. */
async function rawServer(onConn) {
  const server = net.createServer(onConn);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { addr: `127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

test('round trips through norman bson serve --echo: exact bytes, decoded by the bson package', async () => {
  const conn = await client.bsonConnect(echo.addr);
  try {
    const docs = [
      { message: 'hello!' },
      { id: 1, payload: new Binary(pattern(1024)), nested: { list: [1, 'two', 3.5], flag: true } },
      { big: Long.fromString('9007199254740993'), text: 'ünïcødé', empty: {} },
    ];
    for (const d of docs) {
      const bytes = Buffer.from(BSON.serialize(d));
      await conn.write(bytes);
      const back = await conn.read();
      assert.ok(Buffer.isBuffer(back));
      assert.deepEqual(back, bytes, 'the echo is byte for byte the document sent');
      assert.deepEqual(BSON.deserialize(back, { useBigInt64: false, promoteLongs: false }), BSON.deserialize(bytes, { promoteLongs: false }));
    }
    // The 25-byte example of docs/netaio/BSON_SOCKET.md.
    await conn.writeJson({ message: 'hello!' });
    const raw = await conn.read();
    assert.equal(raw.toString('hex'), '190000000' + '26d65737361676500070000006865' + '6c6c6f210000');
    await conn.writeJson('{"n": {"$numberLong": "5"}}');
    assert.deepEqual(await conn.readJson(), { n: 5 });
  } finally {
    await conn.close();
  }
});

test('JSON helpers: relaxed Extended JSON, key order kept; bad input refused', () => {
  const doc = bsonFromJson({ b: 1, a: 'x', c: [true, null] });
  assert.deepEqual(BSON.deserialize(doc), { b: 1, a: 'x', c: [true, null] });
  assert.deepEqual(Object.keys(JSON.parse(bsonToJson(doc))), ['b', 'a', 'c']);
  const fromLib = Buffer.from(BSON.serialize({ when: new Date(0), bin: new Binary(Buffer.from('hi')) }));
  const json = JSON.parse(bsonToJson(fromLib));
  assert.ok(json.when && json.bin, bsonToJson(fromLib));
  assert.throws(() => bsonToJson(Buffer.from('not bson at all')), { code: 'NORMAN_ERROR_INVALID_BSON' });
  assert.throws(() => bsonToJson(Buffer.alloc(0)), (e) => e instanceof NormanError);
  assert.throws(() => bsonToJson('a string'), { code: 'NORMAN_ERROR_INVALID_ARGUMENT' });
  assert.throws(() => bsonFromJson('{not json'), (e) => e instanceof NormanError && /JSON/.test(e.code));
  assert.throws(() => bsonFromJson('[1, 2]'), (e) => e instanceof NormanError);
});

test('a Node listener and a Node client: documents both ways, null at a clean end', async () => {
  const listener = client.bsonListen('127.0.0.1:0');
  assert.ok(listener.port > 0);
  const accepting = listener.accept({ timeoutMs: 5000 });
  const a = await client.bsonConnect(`127.0.0.1:${listener.port}`);
  const b = await accepting;
  try {
    const docs = Array.from({ length: 50 }, (_, i) => Buffer.from(BSON.serialize({ i, blob: new Binary(pattern(i * 37, i)) })));
    await Promise.all(docs.map((d) => a.write(d)));
    const got = [];
    for (let i = 0; i < docs.length; i++) got.push(await b.read());
    assert.deepEqual(got, docs);
    await b.write(docs[3]);
    assert.deepEqual(await a.read(), docs[3]);
    await a.close();
    assert.equal(await b.read(), null, 'a clean close between documents reads as null');
  } finally {
    await a.close();
    await b.close();
    await listener.close();
  }
  await rejectsWith(listener.accept(), 'NORMAN_ERROR_STATE');
});

test('bad streams: truncated, oversize, invalid body, bad document written', async () => {
  const doc = Buffer.from(BSON.serialize({ k: 'v'.repeat(500) }));
  const peer = await rawServer((sock) => {
    // The client's first document names the case: {case: 'truncate' | 'oversize' | 'garbage'}.
    sock.once('data', (d) => {
      const what = BSON.deserialize(d).case;
      if (what === 'truncate') sock.end(doc.subarray(0, 100));
      else if (what === 'oversize') sock.end(doc);
      else if (what === 'garbage') {
        const bad = Buffer.from(doc);
        bad[4] = 0x77; // an unknown element type
        sock.end(bad);
      } else sock.end();
    });
  });
  try {
    for (const [what, code, opts] of [
      ['truncate', 'NORMAN_ERROR_TRUNCATED', {}],
      ['oversize', 'NORMAN_ERROR_OVERSIZE', { maxDoc: 100 }],
      ['garbage', 'NORMAN_ERROR_INVALID_BSON', {}],
    ]) {
      const conn = await client.bsonConnect(peer.addr, opts);
      try {
        await conn.write(Buffer.from(BSON.serialize({ case: what })));
        await rejectsWith(conn.read({ timeoutMs: 5000 }), code);
      } finally {
        await conn.close();
      }
    }
  } finally {
    await peer.close();
  }
  const conn = await client.bsonConnect(echo.addr);
  try {
    await rejectsWith(conn.write(Buffer.from('definitely not bson')), 'NORMAN_ERROR_INVALID_BSON');
    const twoDocs = Buffer.concat([doc, doc]);
    await rejectsWith(conn.write(twoDocs), 'NORMAN_ERROR_INVALID_BSON');
    await rejectsWith(conn.write('a string'), 'NORMAN_ERROR_INVALID_ARGUMENT');
    // Nothing of those was sent: the next echo is the next document.
    await conn.write(doc);
    assert.deepEqual(await conn.read(), doc);
  } finally {
    await conn.close();
  }
  await rejectsWith(client.bsonConnect('127.0.0.1:1', { timeoutMs: 2000 }), 'NORMAN_ERROR_CONNECT');
  await rejectsWith(client.bsonConnect(echo.addr, { maxDoc: 2 ** 31 }), 'NORMAN_ERROR_INVALID_ARGUMENT');
});

test('an aborted read loses nothing: the next read returns the document; readExact', async () => {
  let peerSock;
  const peer = await rawServer((sock) => {
    peerSock = sock;
  });
  const conn = await client.bsonConnect(peer.addr);
  try {
    const ac = new AbortController();
    const p = conn.read({ signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    await rejectsWith(p, 'NORMAN_ERROR_CANCELLED');
    await rejectsWith(conn.read({ signal: AbortSignal.abort() }), 'NORMAN_ERROR_CANCELLED');
    const doc = Buffer.from(BSON.serialize({ after: 'abort' }));
    while (!peerSock) await new Promise((r) => setTimeout(r, 5));
    peerSock.write(doc);
    assert.deepEqual(await conn.read(), doc);
    peerSock.write(Buffer.from('0123456789'));
    assert.equal((await conn.readExact(4)).toString(), '0123');
    assert.equal((await conn.readExact(6)).toString(), '456789');
    await rejectsWith(conn.read({ timeoutMs: 50 }), 'NORMAN_ERROR_TIMEOUT');
    peerSock.end(Buffer.from('ab'));
    await rejectsWith(conn.readExact(5), 'NORMAN_ERROR_TRUNCATED');
  } finally {
    await conn.close();
    await peer.close();
  }
});
