'use strict';
// An executor thread: runs the blocking libnorman calls synchronously, off the JS main thread,
// and reads norman_last_error() on this same thread right after a failure, so the message is the
// real one (it is per thread). No native thread ever calls into JavaScript: this thread only
// answers messages, and every native call here returns on its own (timeouts, abort, cancel).

const { parentPort, workerData } = require('node:worker_threads');
const { loadPath, koffi } = require('./native.cjs');

const n = loadPath(workerData.library).fns;
const out = [null];
const out2 = [0];

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
  // Pull-style events: waits up to `timeoutMs` for one completion of this client's operations.
  next_event(client, timeoutMs) {
    const rc = n.norman_client_next_event(client, timeoutMs, out);
    if (rc === 11) return { rc: 0, v: null };
    if (rc) return fail(rc);
    const ev = out[0];
    try {
      const result = n.norman_event_result(ev);
      const v = {
        op: BigInt(n.norman_event_op_id(ev)),
        kind: n.norman_event_kind_of(ev),
        result,
        message: result ? n.norman_event_message(ev) || '' : null,
        status: n.norman_event_http_status(ev),
        body: null,
        state: n.norman_event_entity_state(ev),
        // NORMAN_EVENT_PUSH_FILE (2) and NORMAN_EVENT_RETRIEVE_FILE (3): bytes and checksum.
        bytes: BigInt(n.norman_event_bytes(ev)),
        checksum: BigInt(n.norman_event_checksum(ev)),
      };
      const bodyPtr = [null];
      const len = [0];
      if (v.kind === 1 && n.norman_event_body(ev, bodyPtr, len) === 0 && Number(len[0]) > 0) {
        v.body = new Uint8Array(koffi.view(bodyPtr[0], Number(len[0])).slice(0));
      }
      return { rc: 0, v };
    } finally {
      n.norman_event_free(ev);
    }
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
  parentPort.postMessage(reply);
});
