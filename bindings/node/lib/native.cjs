'use strict';
// Finding, loading and declaring libnorman through koffi. Used by the main thread and by the
// executor threads (lib/worker.cjs), which load the same path the main thread found.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');
const { NormanError, LIBRARY_CODE } = require('./errors.cjs');

const ABI_VERSION = 1;
const PACKAGE_DIR = path.resolve(__dirname, '..');

function libraryFileName() {
  if (process.platform === 'win32') return 'norman.dll';
  if (process.platform === 'darwin') return 'libnorman.dylib';
  return 'libnorman.so';
}

/** The places looked at, in order (see README "Finding libnorman"). */
function candidates() {
  const name = libraryFileName();
  const list = [];
  if (process.env.NORMAN_LIBRARY) list.push(['NORMAN_LIBRARY', path.resolve(process.env.NORMAN_LIBRARY)]);
  list.push(['package', path.join(PACKAGE_DIR, 'prebuilds', `${process.platform}-${process.arch}`, name)]);
  list.push(['package', path.join(PACKAGE_DIR, name)]);
  if (process.env.CARGO_TARGET_DIR) {
    const dir = path.resolve(process.env.CARGO_TARGET_DIR);
    list.push(['CARGO_TARGET_DIR', path.join(dir, 'release', name)]);
    list.push(['CARGO_TARGET_DIR', path.join(dir, 'debug', name)]);
  }
  const repoTarget = path.resolve(PACKAGE_DIR, '..', '..', 'target');
  list.push(['repository', path.join(repoTarget, 'release', name)]);
  list.push(['repository', path.join(repoTarget, 'debug', name)]);
  return list;
}

let types;
function defineTypes() {
  if (types) return types;
  types = {
    target: koffi.struct('norman_target', {
      kind: 'int32_t',
      account_id: 'const char *',
      model_id: 'const char *',
      invocation_id: 'const char *',
      id: 'const char *',
    }),
    pairing: koffi.struct('norman_pairing', {
      pairing_id: 'const char *',
      host: 'const char *',
      port: 'int64_t',
      encryption_key: 'const char *',
      nonce: 'const char *',
      authentication_header: 'const char *',
    }),
  };
  return types;
}

const SIGNATURES = [
  'const char *norman_version(void)',
  'uint32_t norman_abi_version(void)',
  'const char *norman_result_str(int32_t code)',
  'const char *norman_last_error(void)',
  'int32_t norman_config_new(_Out_ void **out)',
  'int32_t norman_config_from_env(_Out_ void **out)',
  'void norman_config_free(void *config)',
  'int32_t norman_config_set_base_url(void *config, const char *url)',
  'int32_t norman_config_set_token(void *config, const char *token)',
  'int32_t norman_config_set_timeout_ms(void *config, uint64_t ms)',
  'int32_t norman_config_set_retries(void *config, uint32_t retries)',
  'int32_t norman_config_set_chunk_size(void *config, size_t size)',
  'int32_t norman_config_set_flush_size(void *config, size_t size)',
  'int32_t norman_config_set_worker_threads(void *config, size_t threads)',
  'int32_t norman_config_set_cipher_threads(void *config, size_t threads)',
  'int32_t norman_client_new(void *config, _Out_ void **out)',
  'void norman_client_free(void *client)',
  'int32_t norman_client_set_token(void *client, const char *token)',
  'int32_t norman_client_cancel(void *client, uint64_t op)',
  'int32_t norman_client_close(void *client)',
  'int32_t norman_client_next_event(void *client, int32_t timeout_ms, _Out_ void **out)',
  'int32_t norman_client_event_fd(void *client, _Out_ int *fd)',
  'void norman_event_free(void *event)',
  'uint64_t norman_event_op_id(void *event)',
  'int32_t norman_event_kind_of(void *event)',
  'int32_t norman_event_result(void *event)',
  'const char *norman_event_message(void *event)',
  'uint16_t norman_event_http_status(void *event)',
  'int32_t norman_event_body(void *event, _Out_ void **body, _Out_ size_t *len)',
  'uint64_t norman_event_bytes(void *event)',
  'uint64_t norman_event_checksum(void *event)',
  'int32_t norman_event_entity_state(void *event)',
  'int32_t norman_client_request_async(void *client, const char *method, const char *route, const char *body, void *cb, void *ud, void *ud_free, _Out_ uint64_t *op)',
  'int32_t norman_client_retrieve_file_async(void *client, norman_target *target, const char *path, void *cb, void *ud, void *ud_free, _Out_ uint64_t *op)',
  'int32_t norman_client_entity_state_async(void *client, const char *entity, void *cb, void *ud, void *ud_free, _Out_ uint64_t *op)',
  'int32_t norman_entity_state_of_flags(const char *flags, _Out_ int32_t *state)',
  'int32_t norman_upload_open(void *client, norman_pairing *pairing, _Out_ void **out)',
  'int32_t norman_client_upload_begin(void *client, norman_target *target, uint64_t size, _Out_ void **out)',
  'int32_t norman_upload_write(void *upload, void *data, size_t len)',
  'int32_t norman_upload_finish(void *upload, _Out_ uint64_t *checksum)',
  'int32_t norman_upload_abort(void *upload)',
  'uint64_t norman_upload_bytes_written(void *upload)',
  'void norman_upload_free(void *upload)',
  'int32_t norman_client_retrieve_open(void *client, norman_target *target, _Out_ void **out)',
  'int32_t norman_download_read(void *download, void *buffer, size_t capacity, _Out_ size_t *read)',
  'uint64_t norman_download_content_length(void *download)',
  'int32_t norman_download_checksum(void *download, _Out_ uint64_t *checksum)',
  'int32_t norman_download_cancel(void *download)',
  'void norman_download_free(void *download)',
  'int32_t norman_hasher_new(_Out_ void **out)',
  'int32_t norman_hasher_update(void *hasher, void *data, size_t len)',
  'int32_t norman_hasher_digest(void *hasher, _Out_ uint64_t *digest)',
  'void norman_hasher_free(void *hasher)',
  'int32_t norman_checksum(void *data, size_t len, _Out_ uint64_t *digest)',
];

// Messaging and BSON (issue 13): declared on first use, so that a library without them still serves
// everything else. Callback parameters are `void *` (the pointer koffi.register returns) and their
// userdata an integer id (`uintptr_t`: the same register as a pointer on every supported ABI).
// Byte ranges whose pointer may come from a JS string are `const char *` (koffi encodes the string
// without a JS allocation; a Buffer passes its own memory); others are `const void *`.
const MSG_SIGNATURES = [
  'void norman_string_free(void *s)',
  'void norman_bytes_free(void *p, size_t len)',
  'int32_t norman_msg_layers_new(_Out_ void **out)',
  'int32_t norman_msg_layers_add_netaio_hmac(void *l, const void *secret, size_t len, uint32_t max_skew_s)',
  'int32_t norman_msg_layers_add_netaio_cipher(void *l, const void *key, size_t len, bool encrypt_uri)',
  'int32_t norman_msg_layers_add_aead(void *l, const void *key, size_t len)',
  'int32_t norman_msg_layers_add_netaio_hmac_field(void *l, const void *secret, size_t len, uint32_t max_skew_s, const char *field)',
  'int32_t norman_msg_layers_add_netaio_cipher_field(void *l, const void *key, size_t len, bool encrypt_uri, const char *field)',
  'int32_t norman_msg_layers_add_aead_field(void *l, const void *key, size_t len, bool encrypt_uri, const char *field)',
  'void norman_msg_layers_free(void *l)',
  'uint8_t norman_msg_type_of(void *m)',
  'int32_t norman_msg_uri(void *m, _Out_ void **p, _Out_ size_t *len)',
  'int32_t norman_msg_content(void *m, _Out_ void **p, _Out_ size_t *len)',
  'int32_t norman_msg_auth_field(void *m, const char *name, _Out_ void **p, _Out_ size_t *len)',
  'void norman_msg_free(void *m)',
  'int32_t norman_msg_server_new(void *client, void *outer, _Out_ void **out)',
  'int32_t norman_msg_server_on(void *s, uint8_t type, const char *uri, size_t uri_len, void *inner, uint32_t flags, void *handler, uintptr_t ud, void *ud_free)',
  'int32_t norman_msg_server_auto_subscribe(void *s, bool on)',
  'int32_t norman_msg_server_listen(void *s, const char *addr, _Out_ uint16_t *port)',
  'int32_t norman_msg_server_notify(void *s, const char *uri, size_t uri_len, const void *content, size_t len, _Out_ size_t *delivered)',
  'int32_t norman_msg_server_broadcast(void *s, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, _Out_ size_t *delivered)',
  'int32_t norman_msg_server_close(void *s)',
  'void norman_msg_server_free(void *s)',
  'int32_t norman_msg_call_message(void *c, _Out_ void **msg)',
  'uint64_t norman_msg_call_conn_id(void *c)',
  'int32_t norman_msg_call_peer(void *c, _Out_ uint8_t *buf, size_t capacity)',
  'int32_t norman_msg_call_subscribe(void *c, const char *uri, size_t len)',
  'int32_t norman_msg_call_unsubscribe(void *c, const char *uri, size_t len)',
  'int32_t norman_msg_call_reply(void *c, uint8_t type, const void *content, size_t len)',
  'void norman_msg_call_free(void *c)',
  'int32_t norman_msg_connect(void *client, const char *addr, void *outer, int32_t timeout_ms, _Out_ void **out)',
  'int32_t norman_msg_conn_send(void *c, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, void *inner)',
  'int32_t norman_msg_conn_request_async(void *c, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, void *inner, int32_t timeout_ms, void *cb, uintptr_t ud, void *ud_free, _Out_ uint64_t *op)',
  'int32_t norman_event_take_msg(void *event, _Out_ void **msg)',
  'int32_t norman_msg_conn_next(void *c, int32_t timeout_ms, _Out_ void **msg)',
  'int32_t norman_msg_conn_close(void *c)',
  'void norman_msg_conn_free(void *c)',
  'int32_t norman_msg_node_new(void *client, const char *bind, const char *group, const char *multicast_if, void *outer, _Out_ void **out)',
  'int32_t norman_msg_node_port(void *n, _Out_ uint16_t *port)',
  'int32_t norman_msg_node_on(void *n, uint8_t type, const char *uri, size_t uri_len, void *inner, uint32_t flags, void *handler, uintptr_t ud, void *ud_free)',
  'int32_t norman_msg_node_send_to(void *n, const char *addr, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, void *inner)',
  'int32_t norman_msg_node_multicast(void *n, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, void *inner)',
  'int32_t norman_msg_node_request(void *n, const char *addr, uint8_t type, const char *uri, size_t uri_len, const void *content, size_t len, void *inner, int32_t timeout_ms, _Out_ void **reply)',
  'int32_t norman_msg_node_manage_peers(void *n, const void *id, size_t id_len, const void *data, size_t data_len, uint32_t every_ms, uint32_t timeout_ms)',
  'int32_t norman_msg_node_peers_json(void *n, _Out_ void **json)',
  'int32_t norman_msg_node_next(void *n, int32_t timeout_ms, _Out_ void **msg)',
  'int32_t norman_msg_node_close(void *n)',
  'void norman_msg_node_free(void *n)',
  'int32_t norman_bson_connect(void *client, const char *addr, size_t max_doc, int32_t timeout_ms, _Out_ void **out)',
  'int32_t norman_bson_listen(void *client, const char *addr, size_t max_doc, _Out_ void **out)',
  'int32_t norman_bson_listener_port(void *l, _Out_ uint16_t *port)',
  'int32_t norman_bson_accept(void *l, int32_t timeout_ms, _Out_ void **out)',
  'void norman_bson_listener_free(void *l)',
  'int32_t norman_bson_send(void *c, const void *doc, size_t len)',
  'int32_t norman_bson_send_json(void *c, const char *json)',
  'int32_t norman_bson_recv(void *c, int32_t timeout_ms, _Out_ void **doc)',
  'int32_t norman_bson_doc_data(void *d, _Out_ void **data, _Out_ size_t *len)',
  'void norman_bson_doc_free(void *d)',
  'int32_t norman_bson_recv_exact(void *c, void *buf, size_t n, int32_t timeout_ms)',
  'int32_t norman_bson_to_json(const void *doc, size_t len, _Out_ void **json)',
  'int32_t norman_bson_from_json(const char *json, _Out_ void **doc, _Out_ size_t *len)',
  'int32_t norman_bson_conn_close(void *c)',
  'void norman_bson_conn_free(void *c)',
];

/** Declares every function of the list on a loaded library: { norman_xxx: fn }. */
function declare(lib) {
  defineTypes();
  const fns = {};
  for (const sig of SIGNATURES) {
    const name = /(norman_[a-z0-9_]+)\(/.exec(sig)[1];
    fns[name] = lib.func(sig);
  }
  return fns;
}

/**
 * The messaging and BSON functions of a loaded library ({ lib, fns, msg }), declared once. One a
 * library lacks (built before them) throws a NormanError (NORMAN_ERROR_LIBRARY) when called.
 */
function msgFunctions(loadedLib) {
  if (loadedLib.msg) return loadedLib.msg;
  defineTypes();
  const fns = {};
  for (const sig of MSG_SIGNATURES) {
    const name = /(norman_[a-z0-9_]+)\(/.exec(sig)[1];
    try {
      fns[name] = loadedLib.lib.func(sig);
    } catch (e) {
      fns[name] = () => {
        throw new NormanError(901, `${LIBRARY_CODE}: ${loadedLib.path} has no ${name} (${e.message}); use a newer libnorman`, {
          code: LIBRARY_CODE,
        });
      };
    }
  }
  loadedLib.msg = fns;
  return fns;
}

let loaded = null;

/**
 * Loads libnorman once: the first candidate that exists, loads, and has ABI version 1. Otherwise
 * throws one NormanError (code NORMAN_ERROR_LIBRARY) listing every place tried and why it failed.
 */
function load() {
  if (loaded) return loaded;
  const tried = [];
  for (const [origin, file] of candidates()) {
    if (!fs.existsSync(file)) {
      tried.push(`  ${file} (${origin}): missing`);
      continue;
    }
    let lib;
    try {
      lib = koffi.load(file);
    } catch (e) {
      tried.push(`  ${file} (${origin}): failed to load: ${e.message}`);
      continue;
    }
    let abi;
    try {
      abi = lib.func('uint32_t norman_abi_version(void)')();
    } catch (e) {
      tried.push(`  ${file} (${origin}): failed to load: no norman_abi_version (${e.message})`);
      continue;
    }
    if (abi !== ABI_VERSION) {
      tried.push(`  ${file} (${origin}): ABI mismatch ${abi} != ${ABI_VERSION}`);
      continue;
    }
    loaded = { path: file, lib, fns: declare(lib), msg: null };
    return loaded;
  }
  throw new NormanError(
    901,
    `${LIBRARY_CODE}: libnorman (ABI version ${ABI_VERSION}) not found; set NORMAN_LIBRARY to its path. Tried:\n${tried.join('\n')}`,
    { code: LIBRARY_CODE },
  );
}

/** Loads a given path without lookup (executor threads). */
function loadPath(file) {
  const lib = koffi.load(file);
  return { path: file, lib, fns: declare(lib), msg: null };
}

// memcpy as the library links it (dlsym on its handle also searches its dependencies): copying
// into a fresh Buffer is several times cheaper than koffi.view's external ArrayBuffer + copy.
let memcpy;
function nativeMemcpy() {
  if (memcpy === undefined) {
    try {
      memcpy = load().lib.func('void memcpy(void *dst, const void *src, size_t n)');
    } catch {
      memcpy = null;
    }
  }
  return memcpy;
}

/** A copy of `len` bytes at `ptr` (native memory about to be freed), on the main thread. */
function copyOut(ptr, len) {
  if (!len) return Buffer.alloc(0);
  const cpy = nativeMemcpy();
  if (!cpy) return Buffer.from(new Uint8Array(koffi.view(ptr, len)));
  const b = Buffer.allocUnsafe(len);
  cpy(b, ptr, len);
  return b;
}

module.exports = { ABI_VERSION, candidates, load, loadPath, msgFunctions, copyOut, koffi };
