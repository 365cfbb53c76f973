'use strict';
// BSON documents framed on a TCP stream (py-bson's socket extensions, docs/netaio/BSON_SOCKET.md)
// over libnorman's C API: documents are Buffers holding the exact document bytes (decode them with
// the npm `bson` package, or as JSON with bsonToJson). Every socket call runs on an executor thread.

const util = require('node:util');
const native = require('./native.cjs');
const { RESULT, errorOf, invalid } = require('./errors.cjs');
const { msgFns, toTimeout, options, checkSignal, cancelled, check } = require('./msg.cjs');

const { koffi } = native;
const MAX_DOC_LIMIT = 0x7fffffff;

function toMaxDoc(v) {
  if (v === undefined || v === null) return 0;
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_DOC_LIMIT) throw invalid('maxDoc must be an integer 0 (default: 16 MiB) to 2^31-1');
  return v;
}

function toDoc(doc) {
  if (!(doc instanceof Uint8Array)) throw invalid('the document must be a Buffer or Uint8Array holding one BSON document');
  return doc;
}

/** Relaxed Extended JSON text of one BSON document (key order kept). */
function bsonToJson(doc) {
  toDoc(doc);
  const fns = msgFns();
  const out = [null];
  check(fns.norman_bson_to_json(doc.length ? doc : null, doc.length, out));
  try {
    return koffi.decode(out[0], 'char', -1);
  } finally {
    fns.norman_string_free(out[0]);
  }
}

/** One BSON document (a Buffer) from relaxed Extended JSON text, or from a value (JSON.stringify'd). */
function bsonFromJson(json) {
  const text = typeof json === 'string' ? json : JSON.stringify(json);
  if (typeof text !== 'string') throw invalid('json must be a string or a JSON-serialisable object');
  if (text.includes('\0')) throw invalid('json contains a NUL byte');
  const fns = msgFns();
  const out = [null];
  const len = [0];
  check(fns.norman_bson_from_json(text, out, len));
  const n = Number(len[0]);
  try {
    return native.copyOut(out[0], n);
  } finally {
    fns.norman_bytes_free(out[0], n);
  }
}

/** Races an executor job with an AbortSignal; the job keeps running (see BsonConn.read). */
function abortable(job, signal, what) {
  if (!signal) return job;
  let onAbort;
  const aborted = new Promise((_, reject) => {
    onAbort = () => reject(cancelled(what, signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([job, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

class BsonConn {
  constructor(client, handle) {
    this.client = client;
    this._rec = client._adoptMsg('bson', handle, this);
    this.closed = false;
    this._reading = null; // the executor job of a read that no caller took yet (an aborted read's)
    this._writing = Promise.resolve();
    this._closing = null;
  }

  _live() {
    if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the connection is closed');
    return this._rec.handle;
  }

  /**
   * The next document (a Buffer of exactly its bytes), or null at a clean end of the stream.
   * Rejects with TRUNCATED (ended mid-document), OVERSIZE / PROTOCOL (bad length prefix),
   * INVALID_BSON, TIMEOUT (timeoutMs passed with nothing read). An aborted read rejects at once; the
   * document it was waiting for is not lost: the next read() returns it.
   */
  async read(opts) {
    const o = options(opts);
    const signal = checkSignal(o.signal, 'read');
    const timeout = toTimeout(o.timeoutMs, -1);
    const handle = this._live();
    if (!this._reading) this._reading = this.client._runWait('bson_recv', [handle, timeout]);
    const job = this._reading;
    const reply = await abortable(job, signal, 'read');
    if (this._reading === job) this._reading = null;
    if (reply.rc === RESULT.NORMAN_CLOSED) return null;
    if (reply.rc === RESULT.NORMAN_NO_EVENT) throw errorOf(RESULT.NORMAN_ERROR_TIMEOUT, `no document within ${timeout} ms`);
    if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
    return Buffer.from(reply.v);
  }

  /** read() decoded as relaxed Extended JSON and parsed (null at the end). */
  async readJson(opts) {
    const doc = await this.read(opts);
    return doc === null ? null : JSON.parse(bsonToJson(doc));
  }

  /** Exactly `n` bytes (py-bson's recvbytes); TRUNCATED if the stream ends first. */
  async readExact(n, opts) {
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_DOC_LIMIT) throw invalid('n must be a non-negative integer');
    const o = options(opts);
    const timeout = toTimeout(o.timeoutMs, -1);
    checkSignal(o.signal, 'readExact');
    if (this._reading) throw errorOf(RESULT.NORMAN_ERROR_BUSY, 'an aborted read() is still waiting: read() first');
    const buf = Buffer.alloc(n);
    if (n === 0) return buf;
    const reply = await this.client._runWait('bson_recv_exact', [this._live(), koffi.address(buf), n, timeout]);
    if (reply.rc === RESULT.NORMAN_NO_EVENT) throw errorOf(RESULT.NORMAN_ERROR_TIMEOUT, `nothing within ${timeout} ms`);
    if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
    return buf;
  }

  /** Sends one document (checked: exactly one valid document, else INVALID_BSON and nothing sent). Writes keep their order. */
  write(doc) {
    try {
      toDoc(doc);
      const handle = this._live();
      const run = () => this.client._runWait('bson_send', [handle, doc.length ? koffi.address(doc) : null, doc.length]);
      const p = this._writing.then(run, run).then((reply) => {
        doc = null; // referenced until the native send returned
        if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
      });
      this._writing = p.catch(() => {});
      return p;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Sends a value (JSON.stringify'd) or relaxed Extended JSON text as one document. */
  writeJson(value) {
    try {
      return this.write(bsonFromJson(value));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Documents until the stream ends. */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const doc = await this.read();
      if (doc === null) return;
      yield doc;
    }
  }

  /** Closes the connection (a pending read resolves null or rejects), frees it. Idempotent. */
  close() {
    if (this._closing) return this._closing;
    this.closed = true;
    this._closing = (async () => {
      await this.client._run('msg_close', ['bson', this._rec.handle]);
      if (this._reading) await this._reading.catch(() => {});
      await this._writing;
      await this.client._freeMsg(this._rec, this);
    })();
    return this._closing;
  }

  [util.inspect.custom]() {
    return `BsonConn { closed: ${this.closed} }`;
  }
}

class BsonListener {
  constructor(client, addr, opts) {
    const o = options(opts);
    if (typeof addr !== 'string' || !addr || addr.includes('\0')) throw invalid('addr must be a "host:port" string');
    this._maxDoc = toMaxDoc(o.maxDoc);
    this.client = client;
    const out = [null];
    check(msgFns().norman_bson_listen(client._handle(), addr, this._maxDoc, out));
    this._rec = client._adoptMsg('listener', out[0], this);
    const port = [0];
    check(msgFns().norman_bson_listener_port(this._rec.handle, port));
    this.port = port[0];
    this.closed = false;
    this._closing = null;
  }

  /** The next connection; rejects with TIMEOUT after timeoutMs (default: none). */
  async accept(opts) {
    const o = options(opts);
    const signal = checkSignal(o.signal, 'accept');
    const timeout = toTimeout(o.timeoutMs, -1);
    if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the listener is closed');
    // Waits in slices so that close() and an abort are noticed; a connection accepted by a slice
    // that nobody awaits any more is closed.
    const deadline = timeout < 0 ? Infinity : Date.now() + timeout;
    for (;;) {
      if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the listener is closed');
      if (signal && signal.aborted) throw cancelled('accept', signal);
      const slice = Math.max(0, Math.min(200, deadline - Date.now()));
      const reply = await this.client._runWait('bson_accept', [this._rec.handle, slice]);
      if (reply.rc === 0) {
        if (this.closed || (signal && signal.aborted)) {
          await this.client._run('msg_close', ['bson', reply.v]);
          await this.client._run('msg_free', ['bson', reply.v]);
          continue;
        }
        return new BsonConn(this.client, reply.v);
      }
      if (reply.rc !== RESULT.NORMAN_NO_EVENT) throw errorOf(reply.rc, reply.msg);
      if (Date.now() >= deadline) throw errorOf(RESULT.NORMAN_ERROR_TIMEOUT, `no connection within ${timeout} ms`);
    }
  }

  close() {
    if (this._closing) return this._closing;
    this.closed = true;
    this._closing = this.client._freeMsg(this._rec, this);
    return this._closing;
  }
}

async function bsonConnect(client, addr, opts) {
  const o = options(opts);
  if (typeof addr !== 'string' || !addr || addr.includes('\0')) throw invalid('addr must be a "host:port" string');
  const maxDoc = toMaxDoc(o.maxDoc);
  const timeout = toTimeout(o.timeoutMs, 10000);
  msgFns();
  const reply = await client._runWait('bson_connect', [client._handle(), addr, maxDoc, timeout]);
  if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
  return new BsonConn(client, reply.v);
}

module.exports = { BsonConn, BsonListener, bsonConnect, bsonToJson, bsonFromJson };
