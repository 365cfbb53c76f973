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
    loaded = { path: file, fns: declare(lib) };
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
  return { path: file, fns: declare(koffi.load(file)) };
}

module.exports = { ABI_VERSION, candidates, load, loadPath, koffi };
