'use strict';
// The public API: Client, UploadStream (Writable), DownloadStream (Readable), checksums.

const fsp = require('node:fs/promises');
const os = require('node:os');
const util = require('node:util');
const { Writable, Readable } = require('node:stream');
const native = require('./native.cjs');
const { Executor } = require('./executor.cjs');
const { NormanError, RESULT, errorOf, invalid } = require('./errors.cjs');
const msg = require('./msg.cjs');
const bson = require('./bson.cjs');
const { EventWatch, eventValue } = require('./events.cjs');

const { koffi } = native;
let executor = null;

function lib() {
  return native.load().fns;
}

function exec() {
  if (!executor) {
    executor = new Executor(native.load().path, Math.max(4, Math.min(16, os.availableParallelism?.() ?? 4) * 2));
  }
  return executor;
}

// Calls that wait for the network without a bound of their own (pulling notifications, BSON
// reads, accepts, connects) run on a second, larger pool, so that they never hold every thread of
// the first one (closes and frees run there and must always find a thread).
let waitExecutor = null;
function waitExec() {
  if (!waitExecutor) waitExecutor = new Executor(native.load().path, 64);
  return waitExecutor;
}

/** Throws the NormanError of a failed synchronous call made on this (the main) thread. */
function check(rc) {
  if (rc !== 0) throw errorOf(rc, lib().norman_last_error() || '');
}

/** Turns an executor reply into a value or a NormanError (the message read on that thread). */
function unwrap(reply) {
  if (reply.rc !== 0) throw errorOf(reply.rc, reply.msg);
  return reply;
}

const isNull = (p) => p === null || p === undefined || p === 0n;
const hex = (v) => BigInt(v).toString(16).padStart(16, '0');

function cancelled(what, signal) {
  const reason = signal && signal.reason;
  return errorOf(RESULT.NORMAN_ERROR_CANCELLED, `${what} aborted`, reason !== undefined ? { cause: reason } : {});
}

function checkSignal(signal, what) {
  if (signal === undefined || signal === null) return;
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean') throw invalid('signal must be an AbortSignal');
  if (signal.aborted) throw cancelled(what, signal);
}

function checkOptions(options, name) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalid(`${name} must be an object`);
  return options;
}

function requireString(value, name, code = RESULT.NORMAN_ERROR_INVALID_ARGUMENT) {
  if (typeof value !== 'string' || value.length === 0) throw errorOf(code, `${name} must be a non-empty string`);
  return value;
}

/** A string that crosses to C as `const char *`: a NUL byte would cut it short there, so it is refused. */
function noNul(value, name, code = RESULT.NORMAN_ERROR_INVALID_ARGUMENT) {
  if (typeof value === 'string' && value.includes('\0')) throw errorOf(code, `${name} contains a NUL byte`);
  return value;
}

/** requireString for a string that goes to C. */
function requireCString(value, name) {
  return noNul(requireString(value, name), name);
}

// ---------- config ----------

const CONFIG_KEYS = ['baseUrl', 'token', 'timeoutMs', 'retries', 'chunkSize', 'flushSize', 'workerThreads', 'cipherThreads', 'fromEnv'];

function positiveInt(config, key) {
  const v = config[key];
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < 0) throw errorOf(RESULT.NORMAN_ERROR_INVALID_CONFIG, `${key} must be a non-negative integer`);
  return v;
}

function buildConfig(config) {
  if (config === undefined) config = {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw errorOf(RESULT.NORMAN_ERROR_INVALID_CONFIG, 'config must be an object');
  }
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.includes(key)) throw errorOf(RESULT.NORMAN_ERROR_INVALID_CONFIG, `unknown config key "${key}"`);
  }
  if (config.baseUrl !== undefined && typeof config.baseUrl !== 'string') {
    throw errorOf(RESULT.NORMAN_ERROR_INVALID_CONFIG, 'baseUrl must be a string');
  }
  if (config.token !== undefined && config.token !== null && typeof config.token !== 'string') {
    throw errorOf(RESULT.NORMAN_ERROR_INVALID_CONFIG, 'token must be a string');
  }
  noNul(config.baseUrl, 'baseUrl', RESULT.NORMAN_ERROR_INVALID_CONFIG);
  noNul(config.token, 'token', RESULT.NORMAN_ERROR_INVALID_CONFIG);
  const n = lib();
  const out = [null];
  check(config.fromEnv ? n.norman_config_from_env(out) : n.norman_config_new(out));
  const handle = out[0];
  try {
    if (config.baseUrl !== undefined) check(n.norman_config_set_base_url(handle, config.baseUrl));
    if (config.token) check(n.norman_config_set_token(handle, config.token));
    const t = positiveInt(config, 'timeoutMs');
    if (t !== undefined) check(n.norman_config_set_timeout_ms(handle, t));
    const r = positiveInt(config, 'retries');
    if (r !== undefined) check(n.norman_config_set_retries(handle, r));
    const c = positiveInt(config, 'chunkSize');
    if (c !== undefined) check(n.norman_config_set_chunk_size(handle, c));
    const f = positiveInt(config, 'flushSize');
    if (f !== undefined) check(n.norman_config_set_flush_size(handle, f));
    const w = positiveInt(config, 'workerThreads');
    if (w !== undefined) check(n.norman_config_set_worker_threads(handle, w));
    const ct = positiveInt(config, 'cipherThreads');
    if (ct !== undefined) check(n.norman_config_set_cipher_threads(handle, ct));
    const client = [null];
    check(n.norman_client_new(handle, client));
    return client[0];
  } finally {
    n.norman_config_free(handle);
  }
}

// ---------- targets and pairings ----------

const KINDS = { asset: 1, input: 2, output: 3 };

function toTarget(target) {
  if (target === null || typeof target !== 'object') throw invalid('target must be an object');
  const kind = KINDS[target.kind];
  if (!kind) throw invalid('target.kind must be "asset", "input" or "output"');
  const idKey = { 1: 'assetId', 2: 'inputId', 3: 'outputId' }[kind];
  return {
    kind,
    account_id: requireCString(target.accountId, 'target.accountId'),
    model_id: requireCString(target.modelId, 'target.modelId'),
    invocation_id: kind === 1 ? null : requireCString(target.invocationId, 'target.invocationId'),
    id: requireCString(target[idKey], `target.${idKey}`),
  };
}

const PAIRING_FIELDS = [
  ['pairing_id', 'pairingId'],
  ['host', 'host'],
  ['encryption_key', 'encryptionKey'],
  ['nonce', 'nonce'],
  ['authentication_header', 'authenticationHeader'],
];

/** A pairing as the backend returns it (snake_case), camelCase, or its JSON text. Never echoes values. */
function toPairing(pairing) {
  const bad = (msg) => errorOf(RESULT.NORMAN_ERROR_INVALID_PAIRING, msg);
  if (typeof pairing === 'string') {
    try {
      pairing = JSON.parse(pairing);
    } catch {
      throw errorOf(RESULT.NORMAN_ERROR_INVALID_JSON, 'the pairing text is not JSON');
    }
  }
  if (pairing === null || typeof pairing !== 'object') throw bad('pairing must be an object');
  const out = {};
  for (const [snake, camel] of PAIRING_FIELDS) {
    const v = pairing[snake] ?? pairing[camel];
    if (typeof v !== 'string') throw bad(`pairing field ${snake} must be a string`);
    if (v.includes('\0')) throw bad(`pairing field ${snake} contains a NUL byte`);
    out[snake] = v;
  }
  const port = pairing.port;
  if (!Number.isInteger(port)) throw bad('pairing field port must be an integer');
  out.port = port;
  return out;
}

// ---------- handles: freed by close() or, as a safety net, by a FinalizationRegistry ----------

function freeChild(rec) {
  if (rec.freed) return;
  rec.freed = true;
  if (rec.kind === 'upload') lib().norman_upload_free(rec.handle);
  else lib().norman_download_free(rec.handle);
}

const MSG_FREE = {
  server: 'norman_msg_server_free',
  conn: 'norman_msg_conn_free',
  node: 'norman_msg_node_free',
  bson: 'norman_bson_conn_free',
  listener: 'norman_bson_listener_free',
};

function freeClientState(state) {
  if (state.freed) return;
  for (const rec of state.children) freeChild(rec);
  state.children.clear();
  for (const rec of state.msgChildren) {
    if (!rec.freed) {
      rec.freed = true;
      msg.msgFns()[MSG_FREE[rec.kind]](rec.handle);
    }
  }
  state.msgChildren.clear();
  state.freed = true;
  lib().norman_client_free(state.handle);
}

const clientRegistry = new FinalizationRegistry((state) => {
  try {
    freeClientState(state);
  } catch {
    /* best effort at GC time */
  }
});
const childRegistry = new FinalizationRegistry((rec) => {
  try {
    if (!rec.state.freed) {
      freeChild(rec);
      rec.state.children.delete(rec);
    }
  } catch {
    /* best effort at GC time */
  }
});

// ---------- responses ----------

class Response {
  constructor(status, body) {
    this.status = status;
    this.body = body;
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  text() {
    return this.body.toString('utf8');
  }
  json() {
    if (this.body.length === 0) return null;
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw errorOf(RESULT.NORMAN_ERROR_DECODE, `response body is not JSON: ${e.message}`);
    }
  }
}

function httpError(method, route, response) {
  const s = response.status;
  const result = s === 401 || s === 403 ? RESULT.NORMAN_ERROR_HTTP_UNAUTHORIZED : s === 404 ? RESULT.NORMAN_ERROR_HTTP_NOT_FOUND : RESULT.NORMAN_ERROR_HTTP_STATUS;
  const excerpt = response.text().slice(0, 300);
  return errorOf(result, `HTTP ${s} on ${method} ${route}: ${excerpt}`, { status: s });
}

// ---------- typed routes: checks of arguments and answers ----------

/** A NormanError(DECODE) when a 2xx answer does not have the shape the route promises. */
function decodeError(method, route, what) {
  return errorOf(RESULT.NORMAN_ERROR_DECODE, `${method} ${route}: the answer is not ${what}`);
}

const SHAPES = {
  map: ['a JSON object', (v) => v !== null && typeof v === 'object' && !Array.isArray(v)],
  list: ['a JSON array', Array.isArray],
  int: ['an integer', Number.isSafeInteger],
};

function requireObject(value, name) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(`${name} must be an object`);
  return value;
}

function requireArray(value, name) {
  if (!Array.isArray(value)) throw invalid(`${name} must be an array`);
  return value;
}

/** QueryConstraints or nothing (null: the route's "all"). */
function optionalConstraints(constraints, name = 'constraints') {
  if (constraints === undefined || constraints === null) return null;
  return requireObject(constraints, name);
}

/** GetModelsRequest { constraints, finished_models } (finishedModels accepted too); omitted: all. */
function modelsRequest(request) {
  if (request === undefined || request === null) return { constraints: null, finished_models: false };
  requireObject(request, 'request');
  const finished = request.finished_models ?? request.finishedModels ?? false;
  if (typeof finished !== 'boolean') throw invalid('request.finished_models must be a boolean');
  return { constraints: optionalConstraints(request.constraints, 'request.constraints'), finished_models: finished };
}

/** Splits `(...ids, options?)`: a trailing non-string object is the options. */
function idsAndOptions(args, name) {
  const last = args[args.length - 1];
  const options = last !== null && typeof last === 'object' && !Array.isArray(last) ? args.pop() : undefined;
  const ids = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
  ids.forEach((id, i) => requireString(id, `${name}[${i}]`));
  return { ids, options };
}

/** A pull request: { account_id, model_id, links: [string], ...the given id fields }. */
function linksRequest(req, idFields) {
  requireObject(req, 'request');
  for (const f of ['account_id', 'model_id', ...idFields]) requireString(req[f], `request.${f}`);
  requireArray(req.links, 'request.links').forEach((l, i) => requireString(l, `request.links[${i}]`));
  return req;
}

/** Shows a LoginResponse (or signup result) with its tokens redacted; the properties stay readable. */
function redactTokens(login) {
  Object.defineProperty(login, util.inspect.custom, {
    enumerable: false,
    value(depth, opts, inspect = util.inspect) {
      const shown = { ...login };
      for (const k of ['access_token', 'id_token', 'token']) if (typeof shown[k] === 'string') shown[k] = '<redacted>';
      return inspect(shown, opts);
    },
  });
  return login;
}

/** The same error with every occurrence of `secret` in its message and stack replaced. */
function scrub(e, secret) {
  if (!(e instanceof NormanError) || !secret || !e.message.includes(secret)) return e;
  const clean = new NormanError(e.result, e.message.split(secret).join('<redacted>'), { code: e.code, status: e.status });
  return clean;
}

// ---------- helpers for the objects of the routes ----------

/**
 * A Model to create: an active external API model answering JSON to POST requests, with one asset
 * slot per name (e.g. 'File'). Ids are left out, so the backend assigns them. Change fields before
 * creating it.
 * @param {string} accountId
 * @param {string} name
 * @param {string} versionLabel
 * @param {...string} assetNames
 */
function newModel(accountId, name, versionLabel, ...assetNames) {
  requireString(accountId, 'accountId');
  requireString(name, 'name');
  requireString(versionLabel, 'versionLabel');
  assetNames.forEach((a, i) => requireString(a, `assetNames[${i}]`));
  return {
    account_id: accountId,
    name,
    version_label: versionLabel,
    active: true,
    short_description: '',
    long_description: '',
    model_class: '',
    request_type: 'Post',
    model_type: 'Api',
    hosting_location: 'External',
    output_format: 'Json',
    assets: assetNames.map((asset_name) => ({ account_id: accountId, asset_name })),
  };
}

/** The id of the model's asset named `name`, or undefined when it has none (or no id yet). */
function assetIdOf(model, name) {
  requireObject(model, 'model');
  const asset = (model.assets || []).find((a) => a && a.asset_name === name);
  return asset && asset.id !== '0' ? asset.id : undefined;
}

/** QueryConstraints: the rows of `table` whose `column` equals `value`. */
function whereEquals(table, column, value) {
  requireString(table, 'table');
  requireString(column, 'column');
  return { filter: { join_condition: 'AND', children: [{ table, column, operator: '=', value }] }, sort: null, page: null };
}

/** QueryConstraints: the rows of `table` whose `column` is one of `values`. */
function whereIn(table, column, ...values) {
  requireString(table, 'table');
  requireString(column, 'column');
  if (values.length === 1 && Array.isArray(values[0])) values = values[0];
  return { filter: { join_condition: 'AND', children: [{ table, column, operator: 'IN', value: values }] }, sort: null, page: null };
}

const STATES = ['pending', 'done', 'failed'];

// ---------- Client ----------

class Client {
  /** The bearer token, kept only to scrub it from error messages a server might echo. */
  #token;

  /**
   * @param {object} [config] { baseUrl, token, timeoutMs, retries, chunkSize, flushSize, workerThreads, fromEnv }
   */
  constructor(config) {
    const handle = buildConfig(config);
    this.#token = (config && config.token) || null;
    this._baseUrl = config && config.baseUrl !== undefined ? config.baseUrl : undefined;
    this._state = { handle, children: new Set(), msgChildren: new Set(), freed: false };
    this._msgObjects = new Set();
    this._closing = null;
    this._eventWatch = null;
    this._jobs = new Set();
    clientRegistry.register(this, this._state, this);
  }

  get closed() {
    return this._closing !== null;
  }

  [util.inspect.custom]() {
    return `Client { baseUrl: ${util.inspect(this._baseUrl)}, closed: ${this.closed} }`;
  }

  toJSON() {
    return { baseUrl: this._baseUrl, closed: this.closed };
  }

  _handle() {
    if (this._closing) throw errorOf(RESULT.NORMAN_ERROR_STATE, 'the client is closed');
    return this._state.handle;
  }

  /** Runs a job on an executor thread, tracked so close() waits for it. */
  _run(op, args, pool = exec()) {
    const p = pool.run(op, args);
    this._jobs.add(p);
    const forget = () => this._jobs.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Records a messaging or BSON handle (and its object, which close() closes first). */
  _adoptMsg(kind, handle, obj) {
    const rec = { kind, handle, freed: false };
    this._state.msgChildren.add(rec);
    if (obj) this._msgObjects.add(obj);
    return rec;
  }

  /** Closes (a server) and frees a messaging handle on an executor thread: never on this thread,
   * which the callback thread may be waiting for. */
  async _freeMsg(rec, obj) {
    if (obj) this._msgObjects.delete(obj);
    if (rec.freed) return;
    if (rec.kind === 'server') await this._run('msg_close', ['server', rec.handle]);
    if (rec.freed) return;
    rec.freed = true;
    this._state.msgChildren.delete(rec);
    await this._run('msg_free', [rec.kind, rec.handle]);
  }

  // ----- messaging and BSON (lib/msg.cjs, lib/bson.cjs) -----

  /** A message server; handle() its messages, then listen(). `{ layers, autoSubscribe }`. */
  msgServer(options) {
    return new msg.MsgServer(this, options);
  }

  /** A TCP connection to a message server; `{ layers, timeoutMs }` (default 10 s to connect). */
  msgConnect(addr, options) {
    return msg.connect(this, addr, options);
  }

  /** A UDP node: `{ bind ('127.0.0.1:0'), group, multicastIf, layers }`. */
  msgNode(options) {
    return new msg.MsgNode(this, options);
  }

  /** A TCP connection carrying BSON documents; `{ maxDoc, timeoutMs }`. */
  bsonConnect(addr, options) {
    return bson.bsonConnect(this, addr, options);
  }

  /** Listens for BSON connections on `addr` ('127.0.0.1:0' picks a port); `{ maxDoc }`. */
  bsonListen(addr, options) {
    return new bson.BsonListener(this, addr, options);
  }

  /** _run() on the pool of calls that wait for the network. */
  _runWait(op, args) {
    return this._run(op, args, waitExec());
  }

  _adopt(kind, handle) {
    const rec = { kind, handle, freed: false, state: this._state };
    this._state.children.add(rec);
    return rec;
  }

  _release(rec) {
    if (!rec.freed) {
      freeChild(rec);
      this._state.children.delete(rec);
    }
  }

  /** Replaces the bearer token (null or '' removes it). */
  setToken(token) {
    if (token !== null && token !== undefined && typeof token !== 'string') throw invalid('token must be a string');
    noNul(token, 'token');
    check(lib().norman_client_set_token(this._handle(), token || null));
    this.#token = token || null;
  }

  // ----- asynchronous operations through the pull-style event API -----

  _startOp(what, signal, start) {
    checkSignal(signal, what);
    const handle = this._handle();
    const events = this._events();
    const op = [0];
    check(start(handle, op)); // returns at once; a failure here is this thread's last error
    const id = BigInt(op[0]);
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, what, signal, onAbort: null };
      if (signal) {
        entry.onAbort = () => lib().norman_client_cancel(handle, id);
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      events.expect(id, (ev, err) => this._settle(entry, ev ? eventValue(lib(), ev) : null, err));
    });
  }

  /** The watch on this client's completion events (lib/events.cjs), opened on first use. */
  _events() {
    if (!this._eventWatch) this._eventWatch = new EventWatch(this._handle());
    return this._eventWatch;
  }

  _settle(entry, ev, err) {
    if (entry.signal && entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
    if (err) return entry.reject(err);
    if (ev.result === RESULT.NORMAN_ERROR_CANCELLED && entry.signal && entry.signal.aborted) {
      return entry.reject(cancelled(entry.what, entry.signal));
    }
    if (ev.result !== 0) return entry.reject(errorOf(ev.result, ev.message));
    entry.resolve(ev);
  }

  /**
   * Sends any request under the base URL. Resolves with a Response whatever its status (2xx or not);
   * rejects with a NormanError on transport failures (connect, timeout) or when aborted.
   */
  async request(method, route, body, options) {
    const { signal } = checkOptions(options, 'options');
    requireCString(method, 'method');
    requireCString(route, 'route');
    let json = null;
    if (body !== undefined && body !== null) {
      if (typeof body === 'string') json = body;
      else if (Buffer.isBuffer(body)) json = body.toString('utf8');
      else json = JSON.stringify(body);
      noNul(json, 'body');
    }
    const ev = await this._startOp(`${method} ${route}`, signal, (h, op) =>
      lib().norman_client_request_async(h, method.toUpperCase(), route, json, null, null, null, op),
    );
    return new Response(ev.status, ev.body || Buffer.alloc(0));
  }

  /** Like request(), parsing the JSON answer; a non-2xx status rejects with NORMAN_ERROR_HTTP_*. */
  async requestJson(method, route, body, options) {
    const response = await this.request(method, route, body, options);
    if (!response.ok) throw scrub(httpError(method, route, response), this.#token);
    return response.json();
  }

  /** PUT authenticate/signup/default: a new account and its token ({ token, account }). */
  async signup(options) {
    const r = await this.requestJson('PUT', 'authenticate/signup/default', null, options);
    return redactTokens({ token: r.access_token, account: r.account });
  }

  /**
   * POST persist/models/: creates models; resolves with the map of id to Model, whichever answer
   * the backend gives (a list in request order, or the earlier generation's map).
   */
  async createModels(models, options) {
    if (!Array.isArray(models)) throw invalid('models must be an array of Model objects');
    return (await this._models('POST', 'persist/models/', models, options)).byId;
  }

  /**
   * A model route whose answer is a list of models in request order (today's backend) or a map of
   * id to model (the earlier generation): { list (null for a map), byId }. A list whose models lack
   * an id or name one twice would lose models in the map: NORMAN_ERROR_DECODE.
   */
  async _models(method, route, models, options) {
    const value = await this.requestJson(method, route, models, options);
    if (SHAPES.map[1](value)) return { list: null, byId: value };
    if (!Array.isArray(value)) throw decodeError(method, route, 'a list of models or a map of id to model');
    const seen = new Set();
    for (const [i, m] of value.entries()) {
      if (m === null || typeof m !== 'object' || Array.isArray(m)) throw decodeError(method, route, `a list of models (item ${i} is no object)`);
      if (typeof m.id !== 'string' || m.id === '' || m.id === '0') throw decodeError(method, route, `a list of stored models (model ${i} has no id)`);
      if (seen.has(m.id)) throw decodeError(method, route, `a list of distinct models (${JSON.stringify(m.id)} twice)`);
      seen.add(m.id);
    }
    return { list: value, byId: Object.fromEntries(value.map((m) => [m.id, m])) };
  }

  /** POST persist/flags/get: { entity_id: [StatusFlag] } for the given constraints (or all). */
  async getStatusFlags(constraints, options) {
    return this._typed('POST', 'persist/flags/get', optionalConstraints(constraints), options, 'map');
  }

  /** requestJson() and a check of the answer's shape ('map' | 'list' | 'int'): else NORMAN_ERROR_DECODE. */
  async _typed(method, route, body, options, shape) {
    const value = await this.requestJson(method, route, body, options);
    const [what, ok] = SHAPES[shape];
    if (!ok(value)) throw decodeError(method, route, what);
    return value;
  }

  // ----- authenticate -----

  /**
   * POST authenticate/login/default/{account_id}: logs in to an account without credentials.
   * @param {string} accountId
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<LoginResponse>} { account, access_token, id_token } (inspect shows the tokens redacted)
   */
  async loginDefault(accountId, options) {
    requireString(accountId, 'accountId');
    return redactTokens(await this._typed('POST', `authenticate/login/default/${encodeURIComponent(accountId)}`, null, options, 'map'));
  }

  /**
   * POST authenticate/login/key: logs in with an API key. The key is a secret: it is sent in the
   * body only, kept on no object, and replaced by <redacted> should an error message contain it.
   * @param {string} accountId
   * @param {string} apiKey
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<LoginResponse>}
   */
  async loginWithKey(accountId, apiKey, options) {
    requireString(accountId, 'accountId');
    requireString(apiKey, 'apiKey');
    try {
      return redactTokens(await this._typed('POST', 'authenticate/login/key', { account_id: accountId, api_key: apiKey }, options, 'map'));
    } catch (e) {
      throw scrub(e, apiKey);
    }
  }

  // ----- persist -----

  /**
   * POST persist/models/get: { id: Model } of the models matching request.constraints (all when
   * omitted); request.finished_models: only models whose build finished.
   * @param {{constraints?: QueryConstraints|null, finished_models?: boolean}} [request]
   * @param {{signal?: AbortSignal}} [options]
   */
  async getModels(request, options) {
    return this._typed('POST', 'persist/models/get', modelsRequest(request), options, 'map');
  }

  /** POST persist/models/bases/get: { id: ModelBase }; the same request as getModels(). */
  async getModelBases(request, options) {
    return this._typed('POST', 'persist/models/bases/get', modelsRequest(request), options, 'map');
  }

  /**
   * Creates one model (POST persist/models/) and resolves with it as stored, its ids and its
   * assets' ids assigned.
   * @param {Model} model e.g. newModel(accountId, 'name', 'v1', 'File')
   * @param {{signal?: AbortSignal}} [options]
   */
  async createModel(model, options) {
    requireObject(model, 'model');
    const { list, byId } = await this._models('POST', 'persist/models/', [model], options);
    const first = list ? list[0] : Object.values(byId)[0];
    if (!first) throw errorOf(RESULT.NORMAN_ERROR_DECODE, 'POST persist/models/: the backend created no model');
    return first;
  }

  /** POST persist/models/version: adds versions to existing bases (each model's model_base_id); { id: Model } from either answer shape. */
  async createModelVersions(models, options) {
    requireArray(models, 'models');
    return (await this._models('POST', 'persist/models/version', models, options)).byId;
  }

  /** PATCH persist/models/: updates models (by id); { id: Model } from either answer shape. */
  async updateModels(models, options) {
    requireArray(models, 'models');
    return (await this._models('PATCH', 'persist/models/', models, options)).byId;
  }

  /** PATCH persist/models/version: sets which version of each base is active; [ModelPreview]. */
  async updateModelVersions(previews, options) {
    requireArray(previews, 'previews');
    return this._typed('PATCH', 'persist/models/version', previews, options, 'list');
  }

  /**
   * DELETE persist/models/: deletes the models matching `constraints` (required: there is no
   * "delete all" default) and resolves with how many.
   * @param {QueryConstraints} constraints e.g. whereIn('Models', 'ID', id1, id2)
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<number>}
   */
  async deleteModels(constraints, options) {
    requireObject(constraints, 'constraints');
    return this._typed('DELETE', 'persist/models/', constraints, options, 'int');
  }

  /** POST persist/invocations/get: { id: Invocation } matching `constraints` (all when omitted). */
  async getInvocations(constraints, options) {
    return this._typed('POST', 'persist/invocations/get', optionalConstraints(constraints), options, 'map');
  }

  /** POST persist/invocation/history/get: { id: Invocation } matching `constraints` (all when omitted). */
  async getInvocationHistory(constraints, options) {
    return this._typed('POST', 'persist/invocation/history/get', optionalConstraints(constraints), options, 'map');
  }

  /**
   * POST persist/invocations: creates invocations with their input and output slots; resolves with
   * them as stored (ids assigned, in order).
   * @param {Invocation[]} invocations
   * @param {{signal?: AbortSignal}} [options]
   */
  async createInvocations(invocations, options) {
    requireArray(invocations, 'invocations');
    return this._typed('POST', 'persist/invocations', invocations, options, 'list');
  }

  /**
   * POST persist/invocations/by-name: `count` new invocations of the model of each name (its active
   * version, else its newest), e.g. { echo: 2 }; resolves with them.
   * @param {Record<string, number>} counts
   * @param {{signal?: AbortSignal}} [options]
   */
  async createInvocationsByName(counts, options) {
    requireObject(counts, 'counts');
    for (const [name, n] of Object.entries(counts)) {
      if (!Number.isSafeInteger(n) || n < 0) throw invalid(`counts["${name}"] must be a non-negative integer`);
    }
    return this._typed('POST', 'persist/invocations/by-name', counts, options, 'list');
  }

  /** POST persist/notifications/get: [Notification] matching `constraints` (all when omitted). */
  async getNotifications(constraints, options) {
    return this._typed('POST', 'persist/notifications/get', optionalConstraints(constraints), options, 'list');
  }

  // ----- status flags -----

  /**
   * The status flags of the given entities, { entity_id: [StatusFlag] } (an entity without flags
   * is absent). A trailing object is the options: getFlagsOf(id1, id2, { signal }).
   * @param {...(string|{signal?: AbortSignal})} args
   */
  async getFlagsOf(...args) {
    const { ids, options } = idsAndOptions(args, 'entityIds');
    return this.getStatusFlags(whereIn('Status_Flags', 'Entity_ID', ...ids), options);
  }

  /** Whether every status flag of an entity is finished: 'pending' | 'done' | 'failed'. */
  async entityState(entityId, options) {
    const { signal } = checkOptions(options, 'options');
    requireCString(entityId, 'entityId');
    const ev = await this._startOp(`entity state of ${entityId}`, signal, (h, op) =>
      lib().norman_client_entity_state_async(h, entityId, null, null, null, op),
    );
    return STATES[ev.state];
  }

  /** POST file-push/socket/pair/asset|input: a pairing for an upload of `size` bytes. */
  async pair(target, size, options) {
    const t = toTarget(target);
    if (!Number.isSafeInteger(size) || size < 0) throw invalid('size must be a non-negative integer');
    if (t.kind === 3) throw invalid('uploads go to an asset or an input, not an output');
    const body =
      t.kind === 1
        ? { account_id: t.account_id, model_id: t.model_id, file_size_in_bytes: size, asset_id: t.id }
        : { account_id: t.account_id, model_id: t.model_id, file_size_in_bytes: size, invocation_id: t.invocation_id, input_id: t.id };
    return this.requestJson('POST', t.kind === 1 ? 'file-push/socket/pair/asset' : 'file-push/socket/pair/input', body, options);
  }

  /** POST file-push/socket/complete: tells the backend the checksum of an upload made on a pairing. */
  async complete(pairingId, checksum, options) {
    requireString(pairingId, 'pairingId');
    if (typeof checksum !== 'string' || !/^[0-9a-fA-F]{16}$/.test(checksum)) throw invalid('checksum must be 16 hex digits');
    return this.requestJson('POST', 'file-push/socket/complete', { pairing_id: pairingId, checksum }, options);
  }

  // ----- file pull: the backend fetches a file from links -----

  /**
   * GET file-pull/metadata/{entity_id}: the progress of a pull, a TrackedDownload whose
   * entity_type ('Asset' | 'Input' | 'Output') says which of asset / invocation_input /
   * invocation_output is set. Done when downloaded_bytes === total_bytes > 0.
   * @param {string} entityId an id submit*Links() resolved with
   * @param {{signal?: AbortSignal}} [options]
   */
  async downloadMetadata(entityId, options) {
    requireString(entityId, 'entityId');
    return this._typed('GET', `file-pull/metadata/${encodeURIComponent(entityId)}`, null, options, 'map');
  }

  /**
   * POST file-pull/upload/assets: has the backend fetch a model asset from links (http or https:
   * other schemes answer 400); resolves with the ids to follow with downloadMetadata().
   * @param {AssetDownloadRequest} request { account_id, model_id, links, asset_id, asset_name }
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<string[]>}
   */
  async submitAssetLinks(request, options) {
    return this._typed('POST', 'file-pull/upload/assets', linksRequest(request, ['asset_id', 'asset_name']), options, 'list');
  }

  /** POST file-pull/upload/inputs: { account_id, model_id, links, signature_id, invocation_id, input_id }; ids. */
  async submitInputLinks(request, options) {
    return this._typed('POST', 'file-pull/upload/inputs', linksRequest(request, ['signature_id', 'invocation_id', 'input_id']), options, 'list');
  }

  /** POST file-pull/upload/outputs: { account_id, model_id, links, signature_id, invocation_id, output_id }; ids. */
  async submitOutputLinks(request, options) {
    return this._typed('POST', 'file-pull/upload/outputs', linksRequest(request, ['signature_id', 'invocation_id', 'output_id']), options, 'list');
  }

  // ----- streams -----

  /**
   * A Writable that uploads what is written to it. `source`: a pairing (as the backend returns it)
   * or { target, size } to allocate one (then finishing also completes the transfer with the
   * backend). `stream.checksum` (16 hex digits) is set before 'finish'; `stream.result` resolves
   * with { checksum, bytes }.
   */
  upload(source, options) {
    const opts = checkOptions(options, 'options');
    this._handle();
    let open;
    if (source && typeof source === 'object' && 'target' in source) {
      const target = toTarget(source.target);
      if (!Number.isSafeInteger(source.size) || source.size < 0) throw invalid('size must be a non-negative integer');
      open = () => this._run('upload_begin', [this._state.handle, target, source.size]);
    } else {
      const pairing = toPairing(source);
      open = () => this._run('upload_open', [this._state.handle, pairing]);
    }
    checkSignal(opts.signal, 'upload');
    return new UploadStream(this, open, opts);
  }

  /** A Readable of the file of `target` (asset, input or output); `stream.checksum` is set at 'end'. */
  download(target, options) {
    const opts = checkOptions(options, 'options');
    const t = toTarget(target);
    this._handle();
    checkSignal(opts.signal, 'download');
    return new DownloadStream(this, t, opts);
  }

  /**
   * Uploads the file at `path` to `target` (allocate, stream, complete). The file is read into two
   * reused buffers, the next read overlapping the current write. `onProgress(sent, total)` runs on
   * the JS thread after each write. Resolves with { checksum, bytes }.
   */
  async pushFile(target, path, options) {
    const opts = checkOptions(options, 'options');
    const t = toTarget(target);
    requireCString(path, 'path');
    const { signal, onProgress } = opts;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('onProgress must be a function');
    const chunk = opts.chunkSize ?? 1 << 20;
    if (!Number.isSafeInteger(chunk) || chunk <= 0) throw invalid('chunkSize must be a positive integer');
    checkSignal(signal, 'pushFile');
    this._handle();
    let fh;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      throw errorOf(RESULT.NORMAN_ERROR_IO, `cannot open ${path}: ${e.message}`, { cause: e });
    }
    let rec = null;
    let onAbort = null;
    try {
      const size = (await fh.stat()).size;
      const handle = unwrap(await this._run('upload_begin', [this._state.handle, t, size])).v;
      rec = this._adopt('upload', handle);
      if (signal) {
        onAbort = () => lib().norman_upload_abort(handle);
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
      }
      const bufs = [Buffer.allocUnsafeSlow(Math.min(chunk, Math.max(size, 1))), Buffer.allocUnsafeSlow(Math.min(chunk, Math.max(size, 1)))];
      const addrs = bufs.map((b) => koffi.address(b));
      const readInto = (i, pos) => fh.read(bufs[i], 0, Math.min(bufs[i].length, size - pos), pos);
      let sent = 0;
      let which = 0;
      let pending = size > 0 ? readInto(0, 0) : null;
      while (pending) {
        const { bytesRead } = await pending;
        if (bytesRead === 0) throw errorOf(RESULT.NORMAN_ERROR_TRUNCATED, `${path} shrank while being uploaded (${sent} of ${size} bytes)`);
        const at = sent + bytesRead;
        pending = at < size ? readInto(1 - which, at) : null;
        const reply = await this._run('upload_write', [handle, [addrs[which], bytesRead]]);
        if (reply.rc !== 0) {
          if (pending) await pending.catch(() => {});
          pending = null;
          if (signal && signal.aborted) throw cancelled('pushFile', signal);
          unwrap(reply);
        }
        sent = at;
        which = 1 - which;
        if (onProgress) onProgress(sent, size);
      }
      const done = await this._run('upload_finish', [handle]);
      if (done.rc !== 0 && signal && signal.aborted) throw cancelled('pushFile', signal);
      return { checksum: hex(unwrap(done).v), bytes: size };
    } catch (e) {
      if (rec && !rec.freed) lib().norman_upload_abort(rec.handle);
      if (e instanceof NormanError) throw e;
      throw errorOf(RESULT.NORMAN_ERROR_IO, `pushFile ${path}: ${e.message}`, { cause: e });
    } finally {
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
      if (rec) this._release(rec);
      await fh.close().catch(() => {});
    }
  }

  /**
   * Downloads `target` (asset, input or output) into the file at `path` (created or truncated;
   * removed again on failure), entirely in the library (norman_client_retrieve_file_async): no
   * bytes cross into JS. Resolves with { checksum, bytes }; an aborted signal cancels it.
   * @param {Target} target
   * @param {string} path
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<{checksum: string, bytes: number}>}
   */
  async retrieveFile(target, path, options) {
    const { signal } = checkOptions(options, 'options');
    const t = toTarget(target);
    requireCString(path, 'path');
    const ev = await this._startOp(`retrieveFile ${path}`, signal, (h, op) =>
      lib().norman_client_retrieve_file_async(h, t, path, null, null, null, op),
    );
    return { checksum: hex(ev.checksum), bytes: Number(ev.bytes) };
  }

  /**
   * Ends every operation of this client (uploads and downloads are aborted, pending requests
   * cancelled), waits for them, then frees the native client. Idempotent.
   */
  close() {
    if (this._closing) return this._closing;
    const state = this._state;
    this._closing = (async () => {
      clientRegistry.unregister(this);
      // Ends every operation, the calls executor threads are blocked in too (a write, a read, an
      // open waiting on the server), so the wait below is short; freeing the uploads and downloads
      // after it resets their connections.
      // Messaging first: servers stop, connections close (their pending requests reject).
      await Promise.allSettled([...this._msgObjects].map((o) => o.close()));
      if (!state.freed) lib().norman_client_close(state.handle);
      if (this._eventWatch) await this._eventWatch.settled();
      while (this._jobs.size > 0) await Promise.allSettled([...this._jobs]);
      if (this._eventWatch) this._eventWatch.close();
      for (const rec of state.children) freeChild(rec);
      state.children.clear();
      if (!state.freed) {
        state.freed = true;
        await exec().run('client_free', [state.handle]);
      }
    })();
    return this._closing;
  }
}

// ---------- what UploadStream and DownloadStream share ----------

// Destroys `stream` when `signal` (may be null) aborts; returns the listener to remove.
function destroyOnAbort(stream, what, signal) {
  if (!signal) return null;
  const onAbort = () => stream.destroy(cancelled(what, signal));
  signal.addEventListener('abort', onAbort, { once: true });
  return onAbort;
}

// Records `p` as the stream's one job in flight until it settles.
function trackJob(stream, p) {
  stream._inflight = p;
  return p.finally(() => {
    if (stream._inflight === p) stream._inflight = null;
  });
}

// The common part of _destroy: stop listening to the signal, interrupt the native call in flight
// unless the stream completed (`interrupt(handle)`), and once that call returned release the handle.
function releaseStream(stream, interrupt, then) {
  if (stream._signal) stream._signal.removeEventListener('abort', stream._onAbort);
  if (stream._rec && !stream._rec.freed && stream.checksum === undefined) interrupt(stream._rec.handle);
  const wait = stream._inflight || Promise.resolve();
  wait.catch(() => {}).then(() => {
    if (stream._rec) {
      childRegistry.unregister(stream);
      stream._client._release(stream._rec);
    }
    then();
  });
}

// ---------- UploadStream ----------

class UploadStream extends Writable {
  constructor(client, open, opts) {
    super({ highWaterMark: opts.highWaterMark ?? 4 << 20, decodeStrings: true });
    this._client = client;
    this._open = open;
    this._rec = null;
    this._inflight = null;
    this._signal = opts.signal || null;
    this.checksum = undefined;
    this.bytes = 0;
    let resolve, reject;
    this.result = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.result.catch(() => {});
    this._resolve = resolve;
    this._reject = reject;
    this.once('error', (e) => reject(e));
    this._onAbort = destroyOnAbort(this, 'upload', this._signal);
  }

  [util.inspect.custom]() {
    return `UploadStream { bytes: ${this.bytes}, checksum: ${util.inspect(this.checksum)}, destroyed: ${this.destroyed} }`;
  }

  _track(p) {
    return trackJob(this, p);
  }

  _construct(cb) {
    this._track(this._open()).then(
      (reply) => {
        if (reply.rc !== 0) return cb(errorOf(reply.rc, reply.msg));
        this._rec = this._client._adopt('upload', reply.v);
        childRegistry.register(this, this._rec, this);
        if (this.destroyed) lib().norman_upload_abort(reply.v);
        cb();
      },
      (e) => cb(e),
    );
  }

  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    let err = null;
    if (this.writableEnded || this.destroyed) {
      err = errorOf(RESULT.NORMAN_ERROR_STATE, this.destroyed ? 'write after the upload was destroyed' : 'write after end of the upload');
    } else if (chunk === null || chunk === undefined) {
      err = errorOf(RESULT.NORMAN_ERROR_NULL_ARGUMENT, 'chunk is null or undefined');
    } else if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      err = invalid('chunk must be a Buffer, Uint8Array or string');
    }
    if (err) {
      if (cb) process.nextTick(cb, err);
      else if (!this.destroyed) this.destroy(err);
      return false;
    }
    return super.write(chunk, encoding, cb);
  }

  _writev(chunks, cb) {
    const list = [];
    const keep = [];
    let bytes = 0;
    for (const { chunk } of chunks) {
      if (chunk.length === 0) continue;
      keep.push(chunk);
      list.push(koffi.address(chunk), chunk.length);
      bytes += chunk.length;
    }
    if (list.length === 0) return cb();
    this._track(this._client._run('upload_write', [this._rec.handle, list])).then(
      (reply) => {
        keep.length = 0; // the buffers were only needed until the native writes returned
        if (reply.rc !== 0) return cb(this._failure(reply));
        this.bytes += bytes;
        cb();
      },
      (e) => cb(e),
    );
  }

  _write(chunk, encoding, cb) {
    this._writev([{ chunk }], cb);
  }

  _failure(reply) {
    if (this._signal && this._signal.aborted) return cancelled('upload', this._signal);
    return errorOf(reply.rc, reply.msg);
  }

  _final(cb) {
    this._track(this._client._run('upload_finish', [this._rec.handle])).then(
      (reply) => {
        if (reply.rc !== 0) return cb(this._failure(reply));
        this.checksum = hex(reply.v);
        this._resolve({ checksum: this.checksum, bytes: this.bytes });
        cb();
      },
      (e) => cb(e),
    );
  }

  _destroy(err, cb) {
    releaseStream(this, (handle) => lib().norman_upload_abort(handle), () => {
      if (err) this._reject(err);
      else if (this.checksum === undefined) this._reject(errorOf(RESULT.NORMAN_ERROR_CANCELLED, 'upload destroyed before it finished'));
      cb(err);
    });
  }
}

// ---------- DownloadStream ----------

class DownloadStream extends Readable {
  constructor(client, target, opts) {
    super({ highWaterMark: opts.highWaterMark ?? 1 << 20 });
    this._client = client;
    this._target = target;
    this._rec = null;
    this._inflight = null;
    this._signal = opts.signal || null;
    this.checksum = undefined;
    this.contentLength = undefined;
    this.bytes = 0;
    this._onAbort = destroyOnAbort(this, 'download', this._signal);
  }

  [util.inspect.custom]() {
    return `DownloadStream { bytes: ${this.bytes}, checksum: ${util.inspect(this.checksum)}, destroyed: ${this.destroyed} }`;
  }

  _track(p) {
    return trackJob(this, p);
  }

  _construct(cb) {
    this._track(this._client._run('retrieve_open', [this._client._handle(), this._target])).then(
      (reply) => {
        if (reply.rc !== 0) return cb(errorOf(reply.rc, reply.msg));
        this._rec = this._client._adopt('download', reply.v);
        childRegistry.register(this, this._rec, this);
        this.contentLength = reply.length === 0xffffffffffffffffn ? undefined : Number(reply.length);
        cb();
      },
      (e) => cb(e),
    );
  }

  _read(size) {
    const cap = Math.max(size, 64 << 10);
    const buf = Buffer.allocUnsafeSlow(cap);
    this._track(this._client._run('download_read', [this._rec.handle, koffi.address(buf), cap])).then(
      (reply) => {
        if (reply.rc !== 0) {
          const err = this._signal && this._signal.aborted ? cancelled('download', this._signal) : errorOf(reply.rc, reply.msg);
          return this.destroy(err);
        }
        if (reply.v === 0) {
          const out = [0];
          const rc = lib().norman_download_checksum(this._rec.handle, out);
          if (rc !== 0) return this.destroy(errorOf(rc, lib().norman_last_error() || ''));
          this.checksum = hex(out[0]);
          return this.push(null);
        }
        this.bytes += reply.v;
        this.push(buf.subarray(0, reply.v));
      },
      (e) => this.destroy(e),
    );
  }

  _destroy(err, cb) {
    releaseStream(this, (handle) => lib().norman_download_cancel(handle), () => cb(err));
  }
}

// ---------- checksums ----------

function checksumSync(data) {
  if (typeof data === 'string') data = Buffer.from(data, 'utf8');
  if (!(data instanceof Uint8Array)) throw invalid('data must be a Buffer, Uint8Array or string');
  const out = [0];
  check(lib().norman_checksum(data.length ? data : null, data.length, out));
  return hex(out[0]);
}

/** xxh3-64 (16 hex digits, as `norman checksum` prints) of a Buffer / Uint8Array / string or a stream. */
async function checksum(input) {
  if (input === null || input === undefined) throw errorOf(RESULT.NORMAN_ERROR_NULL_ARGUMENT, 'checksum of null or undefined');
  if (typeof input === 'string' || input instanceof Uint8Array) return checksumSync(input);
  if (typeof input[Symbol.asyncIterator] !== 'function') throw invalid('checksum needs a Buffer, Uint8Array, string or readable stream');
  const n = lib();
  const out = [null];
  check(n.norman_hasher_new(out));
  const hasher = out[0];
  try {
    for await (let chunk of input) {
      if (typeof chunk === 'string') chunk = Buffer.from(chunk, 'utf8');
      if (!(chunk instanceof Uint8Array)) throw invalid('the stream yielded something other than bytes');
      if (chunk.length) check(n.norman_hasher_update(hasher, chunk, chunk.length));
    }
    const digest = [0];
    check(n.norman_hasher_digest(hasher, digest));
    return hex(digest[0]);
  } finally {
    n.norman_hasher_free(hasher);
  }
}

/** Judges a status-flag list offline: 'pending' | 'done' | 'failed'. */
function entityStateOfFlags(flags) {
  if (flags === null || typeof flags !== 'object') throw invalid('flags must be an array of StatusFlag or a map');
  const out = [0];
  check(lib().norman_entity_state_of_flags(JSON.stringify(flags), out));
  return STATES[out[0]];
}

function version() {
  return lib().norman_version();
}

function libraryPath() {
  return native.load().path;
}

module.exports = {
  Client,
  UploadStream,
  DownloadStream,
  Response,
  NormanError,
  RESULT,
  checksum,
  checksumSync,
  entityStateOfFlags,
  newModel,
  assetIdOf,
  whereEquals,
  whereIn,
  version,
  libraryPath,
  libraryCandidates: () => native.candidates().map(([origin, path]) => ({ origin, path })),
  MsgType: msg.MsgType,
  Msg: msg.Msg,
  MsgCall: msg.MsgCall,
  MsgServer: msg.MsgServer,
  MsgConn: msg.MsgConn,
  MsgNode: msg.MsgNode,
  netaioHmac: msg.netaioHmac,
  netaioCipher: msg.netaioCipher,
  aead: msg.aead,
  BsonConn: bson.BsonConn,
  BsonListener: bson.BsonListener,
  bsonToJson: bson.bsonToJson,
  bsonFromJson: bson.bsonFromJson,
  ABI_VERSION: native.ABI_VERSION,
};
