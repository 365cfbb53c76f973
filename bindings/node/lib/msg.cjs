'use strict';
// Messaging over libnorman's C API (netaio's wire): layers, servers with async handlers, client
// connections, UDP nodes. Handles hang off a Client (its runtime and callback thread).
//
// Threads: one koffi callback is registered once per process (the message handler). The library
// calls it on the client's callback thread; koffi hands each call to the JS thread and holds the
// callback thread until the JS function returns, so the JS side only copies what it needs and
// defers user code (process.nextTick). Request replies take no callback: they are completion
// events, read on the JS thread when the client's event descriptor wakes it (lib/events.cjs). Hence the one rule of this file: the JS
// thread never makes a native call that could wait for the callback thread (closes and frees run on
// executor threads). Blocking calls (connect, sends, pulling notifications) run on executor threads.

const util = require('node:util');
const native = require('./native.cjs');
const { RESULT, errorOf, invalid } = require('./errors.cjs');

const { koffi } = native;

/** netaio 0.0.9's message types (docs/netaio/WIRE.md §4). */
const MsgType = Object.freeze({
  REQUEST_URI: 0,
  RESPOND_URI: 1,
  CREATE_URI: 2,
  UPDATE_URI: 3,
  DELETE_URI: 4,
  SUBSCRIBE_URI: 5,
  UNSUBSCRIBE_URI: 6,
  PUBLISH_URI: 7,
  NOTIFY_URI: 8,
  ADVERTISE_PEER: 9,
  OK: 10,
  CONFIRM_SUBSCRIBE: 11,
  CONFIRM_UNSUBSCRIBE: 12,
  PEER_DISCOVERED: 13,
  ERROR: 20,
  AUTH_ERROR: 23,
  NOT_FOUND: 24,
  NOT_PERMITTED: 25,
  DISCONNECT: 30,
});
const TYPE_NAMES = Object.fromEntries(Object.entries(MsgType).map(([k, v]) => [v, k]));
const ERROR_TYPES = new Set([MsgType.ERROR, MsgType.AUTH_ERROR, MsgType.NOT_FOUND, MsgType.NOT_PERMITTED]);
/** The answer a handler's plain return value is sent as, by the type it answers. */
const ANSWER_TYPE = {
  [MsgType.REQUEST_URI]: MsgType.RESPOND_URI,
  [MsgType.SUBSCRIBE_URI]: MsgType.CONFIRM_SUBSCRIBE,
  [MsgType.UNSUBSCRIBE_URI]: MsgType.CONFIRM_UNSUBSCRIBE,
};
const NORMAN_MSG_ONCE = 1;
const EMPTY = Buffer.alloc(0);
const DEFAULT_REQUEST_TIMEOUT_MS = 30000;

let loadedMsg = null;
function m() {
  if (!loadedMsg) loadedMsg = native.msgFunctions(native.load());
  return loadedMsg;
}
function mainFns() {
  return native.load().fns;
}

/** Throws the NormanError of a failed synchronous call made on this (the JS) thread. */
function check(rc) {
  if (rc !== 0) throw errorOf(rc, mainFns().norman_last_error() || '');
}

// ---------- arguments ----------

/** A message type: a number 0-255 or a MsgType name. */
function toType(t, name = 'type') {
  if (typeof t === 'string' && Object.hasOwn(MsgType, t)) return MsgType[t];
  if (!Number.isInteger(t) || t < 0 || t > 255) throw invalid(`${name} must be a MsgType name or an integer 0-255`);
  return t;
}

/** A uri for the wire: a string (UTF-8) or bytes; `[value, byteLength]`, value as koffi takes it. */
function toUri(uri, name = 'uri') {
  if (typeof uri === 'string') return [uri, uri.length === 0 ? 0 : Buffer.byteLength(uri)];
  if (uri instanceof Uint8Array) return [uri, uri.length];
  throw invalid(`${name} must be a string, a Buffer or a Uint8Array`);
}

/** Content bytes: a Buffer / Uint8Array as is, a string as UTF-8, nothing as empty. */
function toBytes(content, name = 'content') {
  if (content === undefined || content === null) return EMPTY;
  if (content instanceof Uint8Array) return content;
  if (typeof content === 'string') return Buffer.from(content, 'utf8');
  if (ArrayBuffer.isView(content)) return new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
  throw invalid(`${name} must be a Buffer, a Uint8Array or a string`);
}

function toAddr(addr, name = 'addr') {
  if (typeof addr !== 'string' || addr.length === 0) throw invalid(`${name} must be a non-empty "host:port" string`);
  if (addr.includes('\0')) throw invalid(`${name} contains a NUL byte`);
  return addr;
}

function toTimeout(ms, fallback, name = 'timeoutMs') {
  if (ms === undefined || ms === null) return fallback;
  if (ms === Infinity) return -1;
  if (!Number.isInteger(ms) || ms < -1 || ms > 0x7fffffff) throw invalid(`${name} must be an integer (ms; -1 or Infinity: no deadline)`);
  return ms;
}

function options(opts, name = 'options') {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object') throw invalid(`${name} must be an object`);
  return opts;
}

function checkSignal(signal, what) {
  if (signal === undefined || signal === null) return null;
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean') throw invalid('signal must be an AbortSignal');
  if (signal.aborted) throw cancelled(what, signal);
  return signal;
}

function cancelled(what, signal) {
  const reason = signal && signal.reason;
  return errorOf(RESULT.NORMAN_ERROR_CANCELLED, `${what} aborted`, reason !== undefined ? { cause: reason } : {});
}

const OUT_PTR = [null];
const OUT_LEN = [0];

/** The type, uri and content of a native message, copied; frees it when `free`. */
function readMsg(fns, msg, free) {
  try {
    const type = fns.norman_msg_type_of(msg);
    let uri = EMPTY;
    let content = EMPTY;
    if (fns.norman_msg_uri(msg, OUT_PTR, OUT_LEN) === 0) uri = native.copyOut(OUT_PTR[0], Number(OUT_LEN[0]));
    if (fns.norman_msg_content(msg, OUT_PTR, OUT_LEN) === 0) content = native.copyOut(OUT_PTR[0], Number(OUT_LEN[0]));
    return new Msg(type, uri, content);
  } finally {
    if (free) fns.norman_msg_free(msg);
  }
}

/** A received message: `type` (number), `uri` (string; `uriBytes` the raw bytes), `content` (Buffer). */
class Msg {
  constructor(type, uriBytes, content) {
    this.type = type;
    this.uriBytes = uriBytes;
    this.content = content;
  }
  /** The MsgType name, or 'TYPE_<n>' for an application type. */
  get typeName() {
    return TYPE_NAMES[this.type] || `TYPE_${this.type}`;
  }
  get uri() {
    return this.uriBytes.toString('utf8');
  }
  text() {
    return this.content.toString('utf8');
  }
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw errorOf(RESULT.NORMAN_ERROR_DECODE, `the content is not JSON: ${e.message}`);
    }
  }
  [util.inspect.custom]() {
    return `Msg { type: ${this.typeName}, uri: ${util.inspect(this.uri)}, content: <${this.content.length} bytes> }`;
  }
}

// ---------- layers ----------

const LAYER_SECRET = new WeakMap(); // Layer -> its key bytes, on no enumerable property

/** One layer description (no native resources); the key is never shown by inspect or JSON. */
class Layer {
  constructor(kind, key, opts) {
    this.kind = kind;
    Object.assign(this, opts);
    LAYER_SECRET.set(this, key);
    Object.freeze(this);
  }
  [util.inspect.custom]() {
    return `Layer { kind: '${this.kind}', key: <redacted> }`;
  }
  toJSON() {
    return { kind: this.kind, key: '<redacted>' };
  }
}

function keyBytes(key, name) {
  let b;
  if (typeof key === 'string') b = Buffer.from(key, 'utf8');
  else if (key instanceof Uint8Array) b = Buffer.from(key); // a copy: later changes by the caller do not apply
  else throw invalid(`${name} must be a string or bytes`);
  if (b.length === 0) throw invalid(`${name} must not be empty`);
  return b;
}

function fieldOption(field) {
  if (field === undefined || field === null) return null;
  if (typeof field !== 'string' || field.length === 0 || field.includes('\0')) throw invalid('field must be a non-empty string without NUL');
  return field;
}

/**
 * netaio's HMACAuthPlugin. `maxSkewS` > 0 refuses messages whose timestamp is further off (0:
 * netaio's behaviour, no window); `field`: the MAC's auth field (default 'hmac'; an inner HMAC
 * under an outer one needs its own, netaio's and `norman msg serve --inner-secret` use 'hmac2').
 */
function netaioHmac(secret, opts) {
  const { maxSkewS = 0, field = null } = options(opts);
  if (!Number.isInteger(maxSkewS) || maxSkewS < 0 || maxSkewS > 0xffffffff) throw invalid('maxSkewS must be a non-negative integer');
  return new Layer('netaioHmac', keyBytes(secret, 'secret'), { maxSkewS, field: fieldOption(field) });
}

/** netaio's Sha256StreamCipherPlugin (no integrity of its own: put a netaioHmac after it); `field`: the IV's auth field (default 'iv'; inner: 'iv2' with encryptUri false). */
function netaioCipher(key, opts) {
  const { encryptUri = true, field = null } = options(opts);
  if (typeof encryptUri !== 'boolean') throw invalid('encryptUri must be a boolean');
  return new Layer('netaioCipher', keyBytes(key, 'key'), { encryptUri, field: fieldOption(field) });
}

/** libnorman's ChaCha20-Poly1305 layer; `key` is exactly 32 bytes (libnorman peers only). Inner use: `{ field: 'aead2', encryptUri: false }`. */
function aead(key, opts) {
  if (!(key instanceof Uint8Array)) throw invalid('the AEAD key must be 32 bytes (a Buffer or Uint8Array)');
  if (key.length !== 32) throw invalid(`the AEAD key must be exactly 32 bytes, not ${key.length}`);
  const { encryptUri = true, field = null } = options(opts);
  if (typeof encryptUri !== 'boolean') throw invalid('encryptUri must be a boolean');
  return new Layer('aead', Buffer.from(key), { encryptUri, field: fieldOption(field) });
}

/** A layer, an array of layers (the first seals first, as netaio's cipher-then-HMAC), or nothing. */
function layerList(layers, name = 'layers') {
  if (layers === undefined || layers === null) return null;
  const list = layers instanceof Layer ? [layers] : layers;
  if (!Array.isArray(list)) throw invalid(`${name} must be a layer or an array of layers (netaioHmac(), netaioCipher(), aead())`);
  list.forEach((l, i) => {
    if (!(l instanceof Layer)) throw invalid(`${name}[${i}] is not a layer (use netaioHmac(), netaioCipher() or aead())`);
  });
  return list.length ? list : null;
}

const layerCache = new WeakMap(); // array or Layer -> { list: Layer[], handle }
const layerRegistry = new FinalizationRegistry((handle) => {
  try {
    m().norman_msg_layers_free(handle);
  } catch {
    /* best effort at GC time */
  }
});

/** A native norman_msg_layers for `layers` (null for none), built once per array or layer and kept. */
function nativeLayers(layers, name) {
  const list = layerList(layers, name);
  if (!list) return null;
  const cached = layerCache.get(layers);
  if (cached && cached.list.length === list.length && cached.list.every((l, i) => l === list[i])) return cached.handle;
  const fns = m();
  const out = [null];
  check(fns.norman_msg_layers_new(out));
  const handle = out[0];
  try {
    for (const l of list) {
      const key = LAYER_SECRET.get(l);
      // The *_field forms only when a field is named: a library without them still has the rest.
      if (l.kind === 'netaioHmac') {
        check(l.field ? fns.norman_msg_layers_add_netaio_hmac_field(handle, key, key.length, l.maxSkewS, l.field) : fns.norman_msg_layers_add_netaio_hmac(handle, key, key.length, l.maxSkewS));
      } else if (l.kind === 'netaioCipher') {
        check(l.field ? fns.norman_msg_layers_add_netaio_cipher_field(handle, key, key.length, l.encryptUri, l.field) : fns.norman_msg_layers_add_netaio_cipher(handle, key, key.length, l.encryptUri));
      } else if (l.field || !l.encryptUri) {
        check(fns.norman_msg_layers_add_aead_field(handle, key, key.length, l.encryptUri, l.field));
      } else {
        check(fns.norman_msg_layers_add_aead(handle, key, key.length));
      }
    }
  } catch (e) {
    fns.norman_msg_layers_free(handle);
    throw e;
  }
  const entry = { list: list.slice(), handle };
  layerCache.set(layers, entry);
  layerRegistry.register(entry, handle);
  return handle;
}

// ---------- keeping the event loop alive while something is awaited from the library ----------

// Handler calls arrive through koffi's callback broker, which does not keep the loop alive: one
// ref'd timer does while servers listen. (Pending requests keep it alive through lib/events.cjs.)
let keepTimer = null;
let holds = 0;
function hold() {
  if (holds++ === 0) {
    if (!keepTimer) keepTimer = setInterval(() => {}, 1 << 30);
    else keepTimer.ref();
  }
}
function release() {
  if (--holds === 0 && keepTimer) keepTimer.unref();
}

// ---------- the registered callbacks ----------

const handlers = new Map(); // userdata id -> handler entry
let nextId = 1;
let callbacks = null;

function registered() {
  if (callbacks) return callbacks;
  m();
  const Handler = koffi.proto('void norman_js_msg_handler(uintptr_t userdata, void *call)');
  callbacks = { handler: koffi.register(onCall, koffi.pointer(Handler)) };
  return callbacks;
}

// A request's completion event (borrowed): its code, message and reply.
function readReply(event) {
  const fns = m();
  const main = mainFns();
  let rc;
  let text = null;
  let reply = null;
  try {
    rc = main.norman_event_result(event);
    if (rc !== 0) text = main.norman_event_message(event) || '';
    if (fns.norman_event_take_msg(event, OUT_PTR) === 0 && OUT_PTR[0]) reply = readMsg(fns, OUT_PTR[0], true);
  } catch (e) {
    rc = RESULT.NORMAN_ERROR_INTERNAL;
    text = e.message;
  }
  return [rc, text, reply];
}

function onCall(id, callPtr) {
  const fns = m();
  const h = handlers.get(id);
  if (!h || h.owner.closed) {
    fns.norman_msg_call_free(callPtr);
    return;
  }
  if (h.once) h.owner._forget(h);
  let call;
  try {
    call = new MsgCall(fns, callPtr, h.owner);
  } catch {
    fns.norman_msg_call_free(callPtr);
    return;
  }
  process.nextTick(runHandler, h, call);
}

async function runHandler(h, call) {
  let out;
  try {
    out = await h.fn(call);
  } catch (e) {
    if (call.answered) return;
    const type = e && ERROR_TYPES.has(e.msgType) ? e.msgType : MsgType.ERROR;
    const text = e && typeof e.message === 'string' ? e.message : String(e);
    call._send(type, Buffer.from(text, 'utf8'));
    return;
  }
  if (call.answered) return;
  if (out === undefined || out === null) return call._drop();
  let type = ANSWER_TYPE[call.type] ?? MsgType.OK;
  let content = out;
  if (typeof out === 'object' && !(out instanceof Uint8Array) && !ArrayBuffer.isView(out)) {
    if (out.type !== undefined) type = out.type;
    content = out.content;
  }
  try {
    type = toType(type, 'the reply type');
    content = toBytes(content, 'the reply content');
  } catch (e) {
    call._send(MsgType.ERROR, Buffer.from(`the handler's answer is invalid: ${e.message}`, 'utf8'));
    return;
  }
  call._send(type, content);
}

// ---------- server side: calls ----------

const PEER_BUF = Buffer.alloc(64);

/**
 * One received message awaiting an answer. The handler's return value answers it (see
 * MsgServer.handle); `reply()` answers it explicitly, earlier or from elsewhere.
 */
class MsgCall {
  #fns;
  #handle;
  constructor(fns, handle, owner) {
    this.#fns = fns;
    this.#handle = handle;
    this.owner = owner;
    check(fns.norman_msg_call_message(handle, OUT_PTR));
    const msg = readMsg(fns, OUT_PTR[0], false);
    this.type = msg.type;
    this.uriBytes = msg.uriBytes;
    this.content = msg.content;
    this.connId = Number(fns.norman_msg_call_conn_id(handle));
    this.peer = fns.norman_msg_call_peer(handle, PEER_BUF, PEER_BUF.length) === 0 ? PEER_BUF.toString('latin1', 0, PEER_BUF.indexOf(0)) : '';
  }
  get typeName() {
    return TYPE_NAMES[this.type] || `TYPE_${this.type}`;
  }
  get uri() {
    return this.uriBytes.toString('utf8');
  }
  text() {
    return this.content.toString('utf8');
  }
  json() {
    return Msg.prototype.json.call(this);
  }
  /** Whether an answer was sent (or the call dropped). */
  get answered() {
    return this.#handle === null;
  }
  #live() {
    if (this.#handle === null) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the call was already answered');
    return this.#handle;
  }
  /** An auth field of the received message (e.g. 'ts'), undefined when absent; until answered. */
  authField(name) {
    if (typeof name !== 'string' || name.includes('\0')) throw invalid('name must be a string without NUL');
    const h = this.#live();
    check(this.#fns.norman_msg_call_message(h, OUT_PTR));
    if (this.#fns.norman_msg_auth_field(OUT_PTR[0], name, OUT_PTR, OUT_LEN) !== 0) return undefined;
    return native.copyOut(OUT_PTR[0], Number(OUT_LEN[0]));
  }
  /** Subscribes this call's connection to `uri` (then server.notify(uri) reaches it). */
  subscribe(uri = this.uriBytes) {
    const [u, len] = toUri(uri);
    check(this.#fns.norman_msg_call_subscribe(this.#live(), u, len));
  }
  unsubscribe(uri = this.uriBytes) {
    const [u, len] = toUri(uri);
    check(this.#fns.norman_msg_call_unsubscribe(this.#live(), u, len));
  }
  /** Answers now (uri and request id echoed); the handler's return value is then ignored. */
  reply(type, content) {
    const t = toType(type);
    const c = toBytes(content);
    const h = this.#live();
    this.#handle = null;
    check(this.#fns.norman_msg_call_reply(h, t, c, c.length));
  }
  _send(type, content) {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#fns.norman_msg_call_reply(h, type, content, content.length); // a closed peer: nothing to tell
  }
  _drop() {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#fns.norman_msg_call_free(h);
  }
  [util.inspect.custom]() {
    return `MsgCall { type: ${this.typeName}, uri: ${util.inspect(this.uri)}, peer: '${this.peer}', content: <${this.content.length} bytes> }`;
  }
}

/** Handlers by (type, uri) for a server or a node: each one userdata id in `handlers`. */
class HandlerTable {
  constructor() {
    this.byKey = new Map();
  }
  add(owner, type, uri, fn, once) {
    const key = `${type}:${uri === null ? '*' : Buffer.from(uri).toString('hex')}`;
    const old = this.byKey.get(key);
    if (old) handlers.delete(old.id);
    const h = { id: nextId++, key, fn, once, owner };
    this.byKey.set(key, h);
    handlers.set(h.id, h);
    return h;
  }
  forget(h) {
    handlers.delete(h.id);
    if (this.byKey.get(h.key) === h) this.byKey.delete(h.key);
  }
  clear() {
    for (const h of this.byKey.values()) handlers.delete(h.id);
    this.byKey.clear();
  }
}

/** Checks handle()'s arguments: [type, uri bytes or null, uri length, fn, inner layers, flags]. */
function handlerArgs(type, uri, fn, opts) {
  const t = toType(type);
  let u = null;
  let len = 0;
  if (uri !== undefined && uri !== null) [u, len] = toUri(uri);
  if (typeof fn !== 'function') throw invalid('the handler must be a function (call) => answer');
  const { layers, once = false } = options(opts);
  if (typeof once !== 'boolean') throw invalid('once must be a boolean');
  return { t, u, len, fn, inner: nativeLayers(layers), once };
}

// ---------- MsgServer ----------

class MsgServer {
  constructor(client, opts) {
    const { layers, autoSubscribe = false } = options(opts);
    this.client = client;
    const out = [null];
    check(m().norman_msg_server_new(client._handle(), nativeLayers(layers), out));
    this._rec = client._adoptMsg('server', out[0], this);
    this._table = new HandlerTable();
    this.port = 0;
    this.closed = false;
    this._listening = false;
    this._ref = true;
    this._closing = null;
    if (autoSubscribe) this.autoSubscribe(true);
  }

  _live() {
    if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the server is closed');
    return this._rec.handle;
  }

  _forget(h) {
    this._table.forget(h);
  }

  /**
   * Routes messages of `type` (and `uri`; null: any uri) to `fn(call)`. What fn returns (or
   * resolves with) is the answer: bytes or a string (sent as RESPOND_URI to a REQUEST_URI,
   * CONFIRM_(UN)SUBSCRIBE to a (UN)SUBSCRIBE_URI, else OK), `{ type, content }`, or nothing (no
   * answer). A thrown error answers ERROR (or its `msgType` when that is an error type) with its
   * message. `{ layers, once }`: per-handler inner layers; once: removed after its first message.
   */
  handle(type, uri, fn, opts) {
    return addHandler(this, m().norman_msg_server_on, type, uri, fn, opts);
  }

  /** SUBSCRIBE_URI / UNSUBSCRIBE_URI answered by the library (netaio's usual server). */
  autoSubscribe(on = true) {
    check(m().norman_msg_server_auto_subscribe(this._live(), !!on));
    return this;
  }

  /** Listens on `addr` (default '127.0.0.1:0'); resolves with the port. Keeps the process alive until close() (or unref()). */
  async listen(addr = '127.0.0.1:0') {
    toAddr(addr);
    const port = [0];
    check(m().norman_msg_server_listen(this._live(), addr, port));
    this.port = port[0];
    if (!this._listening) {
      this._listening = true;
      if (this._ref) hold();
    }
    return this.port;
  }

  /** NOTIFY_URI to the subscribers of `uri`; returns how many connections it was queued for. */
  notify(uri, content) {
    const [u, len] = toUri(uri);
    const c = toBytes(content);
    const n = [0];
    check(m().norman_msg_server_notify(this._live(), u, len, c, c.length, n));
    return Number(n[0]);
  }

  /** A message to every connected client; returns how many. */
  broadcast(type, uri, content) {
    const t = toType(type);
    const [u, len] = toUri(uri);
    const c = toBytes(content);
    const n = [0];
    check(m().norman_msg_server_broadcast(this._live(), t, u, len, c, c.length, n));
    return Number(n[0]);
  }

  /** Lets the process exit while listening. */
  unref() {
    if (this._ref && this._listening && !this.closed) release();
    this._ref = false;
    return this;
  }
  ref() {
    if (!this._ref && this._listening && !this.closed) hold();
    this._ref = true;
    return this;
  }

  /** Stops listening, closes every connection, frees the server. Idempotent. */
  close() {
    if (this._closing) return this._closing;
    this.closed = true;
    this._table.clear();
    if (this._listening && this._ref) release();
    this._closing = this.client._freeMsg(this._rec, this);
    return this._closing;
  }

  [util.inspect.custom]() {
    return `MsgServer { port: ${this.port}, closed: ${this.closed} }`;
  }
}

// Registers fn through the server's or the node's `*_on` C function (`on`); a refused
// registration is forgotten again.
function addHandler(owner, on, type, uri, fn, opts) {
  const a = handlerArgs(type, uri, fn, opts);
  const { handler } = registered();
  const h = owner._table.add(owner, a.t, a.u, a.fn, a.once);
  const rc = on(owner._live(), a.t, a.u, a.len, a.inner, a.once ? NORMAN_MSG_ONCE : 0, handler, h.id, null);
  if (rc !== 0) {
    owner._table.forget(h);
    check(rc);
  }
  return owner;
}

// ---------- MsgConn ----------

const OP_OUT = [0];

class MsgConn {
  constructor(client, handle) {
    this.client = client;
    this._rec = client._adoptMsg('conn', handle, this);
    this.closed = false;
    this._pending = new Set();
    this._drained = null;
    this._sendQueue = [];
    this._sending = null;
    this._inbox = null;
    this._closing = null;
  }

  _live() {
    if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the connection is closed');
    return this._rec.handle;
  }

  /**
   * Sends a request and resolves with the reply (a Msg). A remote ERROR / AUTH_ERROR / NOT_FOUND /
   * NOT_PERMITTED rejects with NORMAN_ERROR_MSG_REMOTE, the reply in `error.reply`.
   * Options: signal (AbortSignal), timeoutMs (default 30000; -1: none), layers (per-call inner layers).
   */
  request(type, uri, content, opts) {
    try {
      const o = opts === undefined ? {} : options(opts);
      const t = toType(type);
      const [u, len] = toUri(uri);
      const c = toBytes(content);
      const timeout = toTimeout(o.timeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
      const signal = checkSignal(o.signal, 'request');
      const inner = o.layers === undefined ? null : nativeLayers(o.layers);
      const events = this.client._events();
      const rc = m().norman_msg_conn_request_async(this._live(), t, u, len, c, c.length, inner, timeout, null, 0, null, OP_OUT);
      if (rc !== 0) throw errorOf(rc, mainFns().norman_last_error() || '');
      const op = OP_OUT[0];
      return new Promise((resolve, reject) => {
        const req = new PendingRequest(this, resolve, reject, signal, op);
        events.expect(op, (ev, err) => (ev ? req.complete(...readReply(ev)) : req.complete(err.result, err.message, null)));
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Sends one message without waiting for an answer; resolves once queued (in order with other sends). */
  send(type, uri, content, opts) {
    try {
      const o = opts === undefined ? {} : options(opts);
      const t = toType(type);
      const [u, len] = toUri(uri);
      const c = toBytes(content);
      const inner = o.layers === undefined ? null : nativeLayers(o.layers);
      this._live();
      return new Promise((resolve, reject) => {
        this._sendQueue.push({ t, u, len, c, inner, resolve, reject });
        if (!this._sending) this._sending = this._drainSends();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // One executor job at a time sends every queued message (order kept), each with its buffer's
  // address: the buffers stay referenced here until the job returns.
  async _drainSends() {
    try {
      while (this._sendQueue.length) {
        const batch = this._sendQueue.splice(0, 4096);
        if (this.closed) {
          for (const s of batch) s.reject(errorOf(RESULT.NORMAN_ERROR_STATE, 'the connection is closed'));
          continue;
        }
        const items = [];
        for (const s of batch) items.push(s.t, s.u, s.len, s.c.length ? koffi.address(s.c) : null, s.c.length, s.inner);
        let reply;
        try {
          reply = await this.client._runWait('msg_send', [this._rec.handle, items]);
        } catch (e) {
          reply = { rc: RESULT.NORMAN_ERROR_INTERNAL, msg: e.message, sent: 0 };
        }
        batch.forEach((s, i) => {
          if (i < reply.sent) s.resolve();
          else if (i === reply.sent && reply.rc !== 0) s.reject(errorOf(reply.rc, reply.msg));
          else s.reject(errorOf(RESULT.NORMAN_ERROR_CANCELLED, 'not sent: an earlier message failed'));
        });
      }
    } finally {
      this._sending = null;
    }
  }

  /**
   * Unsolicited messages (NOTIFY_URI, broadcasts, answers nobody awaited) as an async iterator that
   * ends when the connection closes. One stream per connection: iterators share it.
   */
  notifications() {
    if (!this._inbox) this._inbox = new Inbox(this.client, 'conn', this._rec);
    return this._inbox.iterator();
  }

  [Symbol.asyncIterator]() {
    return this.notifications();
  }

  /** Subscribes to `uri` (SUBSCRIBE_URI, awaits CONFIRM_SUBSCRIBE); notifications() then yields its NOTIFY_URI messages. */
  subscribe(uri, opts) {
    return this.request(MsgType.SUBSCRIBE_URI, uri, null, opts);
  }

  unsubscribe(uri, opts) {
    return this.request(MsgType.UNSUBSCRIBE_URI, uri, null, opts);
  }

  /** Closes the connection (pending requests reject), ends notifications(), frees it. Idempotent. */
  close() {
    if (this._closing) return this._closing;
    this.closed = true;
    this._closing = (async () => {
      await this.client._run('msg_close', ['conn', this._rec.handle]);
      // Closing completes every pending request (completion events): wait for them.
      if (this._pending.size) await new Promise((r) => (this._drained = r));
      if (this._sending) await this._sending;
      if (this._inbox) await this._inbox.stop();
      await this.client._freeMsg(this._rec, this);
    })();
    return this._closing;
  }

  [util.inspect.custom]() {
    return `MsgConn { closed: ${this.closed} }`;
  }
}

class PendingRequest {
  constructor(conn, resolve, reject, signal, op) {
    this.conn = conn;
    this.resolve = resolve;
    this.reject = reject;
    this.signal = signal;
    this.done = false;
    this.onAbort = null;
    conn._pending.add(this);
    if (signal) {
      this.onAbort = () => {
        // Rejects now; the library cancels and completes it (as cancelled), which releases it.
        if (this.done) return;
        this.done = true;
        mainFns().norman_client_cancel(conn.client._state.handle, BigInt(op));
        reject(cancelled('request', signal));
      };
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }
  complete(rc, text, reply) {
    const conn = this.conn;
    conn._pending.delete(this);
    if (conn._pending.size === 0 && conn._drained) {
      conn._drained();
      conn._drained = null;
    }
    if (this.onAbort) this.signal.removeEventListener('abort', this.onAbort);
    if (this.done) return;
    this.done = true;
    if (rc === 0) return this.resolve(reply);
    this.reject(errorOf(rc, text, reply ? { reply } : undefined));
  }
}

// ---------- pulling unsolicited messages (conn and node) ----------

/** A shared queue filled by one executor loop (norman_msg_*_next) while someone awaits it. */
class Inbox {
  constructor(client, kind, rec) {
    this.client = client;
    this.kind = kind;
    this.rec = rec;
    this.queue = [];
    this.waiters = [];
    this.ended = false;
    this.error = null;
    this.pump = null;
    this.stopping = false;
  }

  iterator() {
    const inbox = this;
    return {
      next: () => inbox.next(),
      return: async () => ({ value: undefined, done: true }),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  next() {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.pump) this.pump = this.run();
    });
  }

  // Pulls while someone waits: each executor job waits up to 250 ms for one message then takes
  // what else is ready, so a forgotten iterator does not keep the process alive for long.
  async run() {
    try {
      while (this.waiters.length && !this.ended && !this.stopping) {
        const reply = await this.client._runWait('msg_next', [this.kind, this.rec.handle, 250, 256]);
        for (const [type, uri, content] of reply.v || []) {
          const msg = new Msg(type, Buffer.from(uri), Buffer.from(content));
          const w = this.waiters.shift();
          if (w) w.resolve({ value: msg, done: false });
          else this.queue.push(msg);
        }
        if (reply.closed) this.ended = true;
        else if (reply.rc !== 0) this.error = errorOf(reply.rc, reply.msg);
        if (this.ended || this.error) break;
      }
    } catch (e) {
      this.error = e;
    } finally {
      this.pump = null;
      if (this.ended || this.error || this.stopping) {
        for (const w of this.waiters.splice(0)) {
          if (this.error) w.reject(this.error);
          else w.resolve({ value: undefined, done: true });
        }
      }
    }
  }

  async stop() {
    this.stopping = true;
    this.ended = true;
    if (this.pump) await this.pump;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }
}

// ---------- MsgNode (UDP) ----------

class MsgNode {
  constructor(client, opts) {
    const { bind = '127.0.0.1:0', group = null, multicastIf = null, layers } = options(opts);
    toAddr(bind, 'bind');
    if (group !== null) toAddr(group, 'group');
    if (multicastIf !== null) toAddr(multicastIf, 'multicastIf');
    this.client = client;
    const out = [null];
    check(m().norman_msg_node_new(client._handle(), bind, group, multicastIf, nativeLayers(layers), out));
    this._rec = client._adoptMsg('node', out[0], this);
    this._table = new HandlerTable();
    const port = [0];
    check(m().norman_msg_node_port(this._rec.handle, port));
    this.port = port[0];
    this.closed = false;
    this._inbox = null;
    this._closing = null;
  }

  _live() {
    if (this.closed) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the node is closed');
    return this._rec.handle;
  }

  _forget(h) {
    this._table.forget(h);
  }

  /** As MsgServer.handle(); the answer goes to the datagram's sender. */
  handle(type, uri, fn, opts) {
    return addHandler(this, m().norman_msg_node_on, type, uri, fn, opts);
  }

  /** One datagram to `addr` ("ip:port"). */
  send(addr, type, uri, content, opts) {
    const o = options(opts);
    toAddr(addr);
    const t = toType(type);
    const [u, len] = toUri(uri);
    const c = toBytes(content);
    check(m().norman_msg_node_send_to(this._live(), addr, t, u, len, c, c.length, nativeLayers(o.layers)));
  }

  /** One datagram to the multicast group. */
  multicast(type, uri, content, opts) {
    const o = options(opts);
    const t = toType(type);
    const [u, len] = toUri(uri);
    const c = toBytes(content);
    check(m().norman_msg_node_multicast(this._live(), t, u, len, c, c.length, nativeLayers(o.layers)));
  }

  /** A request to `addr`; resolves with the reply (remote errors as MsgConn.request). */
  async request(addr, type, uri, content, opts) {
    const o = options(opts);
    toAddr(addr);
    const t = toType(type);
    const [u] = toUri(uri);
    const uriBytes = typeof u === 'string' ? Buffer.from(u, 'utf8') : u;
    const c = toBytes(content);
    const timeout = toTimeout(o.timeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
    const signal = checkSignal(o.signal, 'request');
    const inner = nativeLayers(o.layers);
    const job = this.client._runWait('node_request', [this._live(), addr, t, uriBytes, c, inner, timeout]);
    let onAbort;
    const aborted = signal
      ? new Promise((_, reject) => {
          onAbort = () => reject(cancelled('request', signal));
          signal.addEventListener('abort', onAbort, { once: true });
        })
      : null;
    try {
      const reply = await (aborted ? Promise.race([job, aborted]) : job);
      const msg = reply.reply ? new Msg(reply.reply[0], Buffer.from(reply.reply[1]), Buffer.from(reply.reply[2])) : null;
      if (reply.rc === 0) return msg;
      throw errorOf(reply.rc, reply.msg, msg ? { reply: msg } : undefined);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** netaio's peer management: advertise `{ id, data }` every `everyMs`, forget peers silent for `timeoutMs`. */
  managePeers(opts) {
    const { id, data, everyMs = 20000, timeoutMs = 60000 } = options(opts);
    const i = toBytes(id, 'id');
    if (i.length === 0) throw invalid('id must not be empty');
    const d = toBytes(data, 'data');
    for (const [k, v] of [['everyMs', everyMs], ['timeoutMs', timeoutMs]]) {
      if (!Number.isInteger(v) || v <= 0 || v > 0xffffffff) throw invalid(`${k} must be a positive integer`);
    }
    check(m().norman_msg_node_manage_peers(this._live(), i, i.length, d, d.length, everyMs, timeoutMs));
    return this;
  }

  /** The peers known now: [{ id (Buffer), idHex, addr, data (Buffer), lastSeenMsAgo }]. */
  peers() {
    const fns = m();
    const out = [null];
    check(fns.norman_msg_node_peers_json(this._live(), out));
    let text;
    try {
      text = koffi.decode(out[0], 'char', -1);
    } finally {
      fns.norman_string_free(out[0]);
    }
    return JSON.parse(text).map((p) => ({
      id: Buffer.from(p.id_hex, 'hex'),
      idHex: p.id_hex,
      addr: p.addr,
      data: Buffer.from(p.data_b64, 'base64'),
      lastSeenMsAgo: p.last_seen_ms_ago,
    }));
  }

  /** Datagrams no handler took, as an async iterator that ends when the node closes. */
  messages() {
    if (!this._inbox) this._inbox = new Inbox(this.client, 'node', this._rec);
    return this._inbox.iterator();
  }

  [Symbol.asyncIterator]() {
    return this.messages();
  }

  close() {
    if (this._closing) return this._closing;
    this.closed = true;
    this._table.clear();
    this._closing = (async () => {
      await this.client._run('msg_close', ['node', this._rec.handle]);
      if (this._inbox) await this._inbox.stop();
      await this.client._freeMsg(this._rec, this);
    })();
    return this._closing;
  }

  [util.inspect.custom]() {
    return `MsgNode { port: ${this.port}, closed: ${this.closed} }`;
  }
}

/** Connects (on an executor thread); resolves with a MsgConn. */
async function connect(client, addr, opts) {
  const o = options(opts);
  toAddr(addr);
  const timeout = toTimeout(o.timeoutMs, 10000);
  const outer = nativeLayers(o.layers);
  m();
  const reply = await client._runWait('msg_connect', [client._handle(), addr, outer, timeout]);
  if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
  return new MsgConn(client, reply.v);
}

module.exports = {
  MsgType,
  Msg,
  MsgCall,
  MsgServer,
  MsgConn,
  MsgNode,
  Layer,
  netaioHmac,
  netaioCipher,
  aead,
  connect,
  msgFns: m,
  toBytes,
  toTimeout,
  options,
  checkSignal,
  cancelled,
  check,
};
