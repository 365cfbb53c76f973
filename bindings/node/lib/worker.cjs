'use strict';
// An executor thread: runs the blocking libnorman calls synchronously, off the JS main thread,
// and reads norman_last_error() on this same thread right after a failure, so the message is the
// real one (it is per thread). No native thread ever calls into JavaScript: this thread only
// answers messages, and every native call here returns on its own (timeouts, abort, cancel).

const { parentPort, workerData } = require('node:worker_threads');
const { loadPath, msgFunctions, koffi } = require('./native.cjs');

const loadedLib = loadPath(workerData.library);
const n = loadedLib.fns;
let mfns = null;
const mf = () => mfns || (mfns = msgFunctions(loadedLib));
const out = [null];
const out2 = [0];
const outLen = [0];

// norman_result values this file tells apart.
const NO_EVENT = 11;
const CLOSED = 13;

/** A copy of native bytes into a fresh ArrayBuffer (transferred to the JS thread, not copied again). */
function copy(ptr, len, transfer) {
  const ab = new ArrayBuffer(len);
  if (len) new Uint8Array(ab).set(new Uint8Array(koffi.view(ptr, len)));
  transfer.push(ab);
  return ab;
}

/** [type, uri, content] of a native message (ArrayBuffers), which is freed. */
function takeMsg(m, msg, transfer) {
  try {
    const type = m.norman_msg_type_of(msg);
    const uri = m.norman_msg_uri(msg, out, outLen) === 0 ? copy(out[0], Number(outLen[0]), transfer) : new ArrayBuffer(0);
    const content = m.norman_msg_content(msg, out, outLen) === 0 ? copy(out[0], Number(outLen[0]), transfer) : new ArrayBuffer(0);
    return [type, uri, content];
  } finally {
    m.norman_msg_free(msg);
  }
}

const CLOSE = { conn: 'norman_msg_conn_close', node: 'norman_msg_node_close', server: 'norman_msg_server_close', bson: 'norman_bson_conn_close' };
const FREE = {
  conn: 'norman_msg_conn_free',
  node: 'norman_msg_node_free',
  server: 'norman_msg_server_free',
  bson: 'norman_bson_conn_free',
  listener: 'norman_bson_listener_free',
};

function fail(rc) {
  return { rc, msg: n.norman_last_error() || '' };
}

const ops = {
  upload_open(client, pairing) {
    const rc = n.norman_upload_open(client, pairing, out);
    return rc ? fail(rc) : { rc, v: out[0] };
  },
  upload_begin(client, target, size) {
    const rc = n.norman_client_upload_begin(client, target, size, out);
    return rc ? fail(rc) : { rc, v: out[0] };
  },
  // `chunks`: [address, length, address, length, ...] of buffers the main thread keeps alive.
  upload_write(upload, chunks) {
    for (let i = 0; i < chunks.length; i += 2) {
      const rc = n.norman_upload_write(upload, chunks[i], chunks[i + 1]);
      if (rc) return fail(rc);
    }
    return { rc: 0 };
  },
  upload_finish(upload) {
    const rc = n.norman_upload_finish(upload, out2);
    return rc ? fail(rc) : { rc, v: BigInt(out2[0]) };
  },
  retrieve_open(client, target) {
    const rc = n.norman_client_retrieve_open(client, target, out);
    if (rc) return fail(rc);
    return { rc, v: out[0], length: BigInt(n.norman_download_content_length(out[0])) };
  },
  download_read(download, address, capacity) {
    const rc = n.norman_download_read(download, address, capacity, out2);
    return rc ? fail(rc) : { rc, v: Number(out2[0]) };
  },
  msg_connect(client, addr, outer, timeoutMs) {
    const rc = mf().norman_msg_connect(client, addr, outer, timeoutMs, out);
    return rc ? fail(rc) : { rc, v: out[0] };
  },
  // `items`: [type, uri, uriLen, contentAddress, contentLen, inner, ...]; stops at the first failure.
  msg_send(conn, items) {
    const m = mf();
    let sent = 0;
    for (let i = 0; i < items.length; i += 6) {
      const rc = m.norman_msg_conn_send(conn, items[i], items[i + 1], items[i + 2], items[i + 3], items[i + 4], items[i + 5]);
      if (rc) return { ...fail(rc), sent };
      sent++;
    }
    return { rc: 0, sent };
  },
  // Unsolicited messages of a conn or node: waits up to timeoutMs for the first, then takes what
  // else is ready, up to max. `closed`: the stream ended (NORMAN_CLOSED).
  msg_next(kind, handle, timeoutMs, max) {
    const m = mf();
    const next = kind === 'node' ? m.norman_msg_node_next : m.norman_msg_conn_next;
    const v = [];
    const transfer = [];
    for (let wait = timeoutMs; v.length < max; wait = 0) {
      const rc = next(handle, wait, out);
      if (rc === NO_EVENT) break;
      if (rc === CLOSED) return { rc: 0, v, closed: true, _transfer: transfer };
      if (rc) return { ...fail(rc), v, _transfer: transfer };
      v.push(takeMsg(m, out[0], transfer));
    }
    return { rc: 0, v, closed: false, _transfer: transfer };
  },
  msg_close(kind, handle) {
    const rc = mf()[CLOSE[kind]](handle);
    return rc ? fail(rc) : { rc };
  },
  msg_free(kind, handle) {
    mf()[FREE[kind]](handle);
    return { rc: 0 };
  },
  node_request(node, addr, type, uri, content, inner, timeoutMs) {
    const m = mf();
    const rc = m.norman_msg_node_request(node, addr, type, uri, uri.length, content, content.length, inner, timeoutMs, out);
    const reply = { rc, _transfer: [] };
    if (rc) Object.assign(reply, fail(rc));
    if ((rc === 0 || rc === 212) && out[0]) reply.reply = takeMsg(m, out[0], reply._transfer);
    return reply;
  },
  bson_connect(client, addr, maxDoc, timeoutMs) {
    const rc = mf().norman_bson_connect(client, addr, maxDoc, timeoutMs, out);
    return rc ? fail(rc) : { rc, v: out[0] };
  },
  bson_accept(listener, timeoutMs) {
    const rc = mf().norman_bson_accept(listener, timeoutMs, out);
    if (rc === NO_EVENT) return { rc };
    return rc ? fail(rc) : { rc, v: out[0] };
  },
  bson_send(conn, address, len) {
    const rc = mf().norman_bson_send(conn, address, len);
    return rc ? fail(rc) : { rc };
  },
  bson_recv(conn, timeoutMs) {
    const m = mf();
    const rc = m.norman_bson_recv(conn, timeoutMs, out);
    if (rc === NO_EVENT || rc === CLOSED) return { rc };
    if (rc) return fail(rc);
    const doc = out[0];
    try {
      const rc2 = m.norman_bson_doc_data(doc, out, outLen);
      if (rc2) return fail(rc2);
      const transfer = [];
      return { rc: 0, v: copy(out[0], Number(outLen[0]), transfer), _transfer: transfer };
    } finally {
      m.norman_bson_doc_free(doc);
    }
  },
  bson_recv_exact(conn, address, len, timeoutMs) {
    const rc = mf().norman_bson_recv_exact(conn, address, len, timeoutMs);
    if (rc === NO_EVENT) return { rc };
    return rc ? fail(rc) : { rc };
  },
  client_free(client) {
    n.norman_client_free(client);
    return { rc: 0 };
  },
};

parentPort.on('message', (m) => {
  let reply;
  try {
    reply = ops[m.op](...m.a);
  } catch (e) {
    reply = { rc: 2, msg: `invalid argument to ${m.op}: ${e.message}` };
  }
  reply.id = m.id;
  const transfer = reply._transfer;
  delete reply._transfer;
  parentPort.postMessage(reply, transfer);
});
