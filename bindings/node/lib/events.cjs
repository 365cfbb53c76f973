'use strict';
// Completions of a client's operations started without a callback (HTTP requests, file pushes and
// retrieves, entity states, message requests). The library queues them and keeps a descriptor
// readable while any is queued (norman_client_event_fd); libuv watches it on the JS thread, which
// then takes every queued event with norman_client_next_event(…, 0). So a completion wakes the JS
// thread straight from the runtime: no executor thread waits for events and no native thread calls
// into JavaScript.

const net = require('node:net');
const native = require('./native.cjs');
const { RESULT, errorOf } = require('./errors.cjs');

const EVENT_OUT = [null];
const FD_OUT = [0];

class EventWatch {
  /** `handle`: the native client; the watch opens its descriptor at once (a failure throws). */
  constructor(handle) {
    const n = native.load().fns;
    const rc = n.norman_client_event_fd(handle, FD_OUT);
    if (rc !== 0) throw errorOf(rc, n.norman_last_error() || '');
    this.handle = handle;
    this.pending = new Map(); // op id (Number) -> settle(event, error)
    this.idle = [];
    // libuv owns the descriptor from here (closes it on destroy). Unref'd while nothing is awaited,
    // so an idle client never keeps the process alive.
    // `onread`: libuv reads into one small buffer and calls back, without a Buffer per wake-up or
    // the stream machinery ('data' events); what was read does not matter.
    this.socket = new net.Socket({
      fd: FD_OUT[0],
      readable: true,
      writable: false,
      onread: { buffer: Buffer.alloc(64), callback: () => this.drain() },
    });
    this.socket.on('error', () => {}); // only at teardown (the client freed): nothing is awaited then
    this.socket.unref();
  }

  /**
   * Routes operation `op`'s completion to `settle(event, null)`, called on the JS thread with the
   * event borrowed for the call (read what you need, do not keep it), or `settle(null, error)` when
   * the client closed without delivering it.
   */
  expect(op, settle) {
    this.pending.set(Number(op), settle);
    if (this.pending.size === 1) this.socket.ref();
  }

  /**
   * Takes the queued events (the descriptor says some may wait; it may also be a stale wake-up).
   * Only this client's awaited operations queue events, so once none is awaited none is left to
   * take: that saves a call per wake-up.
   */
  drain() {
    const n = native.load().fns;
    while (this.pending.size > 0) {
      const rc = n.norman_client_next_event(this.handle, 0, EVENT_OUT);
      if (rc === RESULT.NORMAN_NO_EVENT) break;
      if (rc !== 0) {
        // NORMAN_ERROR_CANCELLED: closed and every completion delivered; anything still awaited
        // cannot come any more.
        const err = errorOf(rc, n.norman_last_error() || '');
        const left = [...this.pending.values()];
        this.pending.clear();
        for (const settle of left) settle(null, err);
        break;
      }
      const ev = EVENT_OUT[0];
      try {
        const op = Number(n.norman_event_op_id(ev));
        const settle = this.pending.get(op);
        this.pending.delete(op);
        if (settle) settle(ev, null);
      } finally {
        n.norman_event_free(ev);
      }
    }
    if (this.pending.size === 0) {
      this.socket.unref();
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Resolves once nothing is awaited (after norman_client_close, every operation completes). */
  settled() {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops watching (after settled()); closes the descriptor. */
  close() {
    this.socket.destroy();
  }
}

/** What a completion event carries, read while it is borrowed (see lib/client.cjs's operations). */
function eventValue(n, ev) {
  const result = n.norman_event_result(ev);
  const v = {
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
    v.body = native.copyOut(bodyPtr[0], Number(len[0]));
  }
  return v;
}

module.exports = { EventWatch, eventValue };
