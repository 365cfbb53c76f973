'use strict';
// NormanError and the stable result codes of norman.h (numbers never change, only get added).

const RESULTS = Object.freeze({
  0: 'NORMAN_OK',
  1: 'NORMAN_ERROR_NULL_ARGUMENT',
  2: 'NORMAN_ERROR_INVALID_ARGUMENT',
  3: 'NORMAN_ERROR_INVALID_UTF8',
  4: 'NORMAN_ERROR_INVALID_JSON',
  5: 'NORMAN_ERROR_INVALID_CONFIG',
  6: 'NORMAN_ERROR_INVALID_PAIRING',
  7: 'NORMAN_ERROR_STATE',
  8: 'NORMAN_ERROR_WRONG_THREAD',
  9: 'NORMAN_ERROR_BUSY',
  10: 'NORMAN_ERROR_CANCELLED',
  11: 'NORMAN_NO_EVENT',
  12: 'NORMAN_ERROR_BUFFER_TOO_SMALL',
  13: 'NORMAN_CLOSED',
  14: 'NORMAN_ERROR_INVALID_BSON',
  100: 'NORMAN_ERROR_HTTP_STATUS',
  101: 'NORMAN_ERROR_HTTP_UNAUTHORIZED',
  102: 'NORMAN_ERROR_HTTP_NOT_FOUND',
  103: 'NORMAN_ERROR_DECODE',
  200: 'NORMAN_ERROR_CONNECT',
  201: 'NORMAN_ERROR_TIMEOUT',
  202: 'NORMAN_ERROR_IO',
  203: 'NORMAN_ERROR_NETWORK',
  204: 'NORMAN_ERROR_TRUNCATED',
  205: 'NORMAN_ERROR_OVERSIZE',
  206: 'NORMAN_ERROR_KEYSTREAM_EXHAUSTED',
  207: 'NORMAN_ERROR_AUTH_HEADER_MISMATCH',
  208: 'NORMAN_ERROR_CHECKSUM_MISMATCH',
  209: 'NORMAN_ERROR_PROTOCOL',
  210: 'NORMAN_ERROR_MSG_AUTH',
  211: 'NORMAN_ERROR_DECRYPT',
  212: 'NORMAN_ERROR_MSG_REMOTE',
  900: 'NORMAN_ERROR_PANIC',
  901: 'NORMAN_ERROR_INTERNAL',
});

/** The result number of each code name, e.g. RESULT.NORMAN_ERROR_CONNECT === 200. */
const RESULT = Object.freeze(Object.fromEntries(Object.entries(RESULTS).map(([n, c]) => [c, Number(n)])));

/** Code of the one error that is not a norman_result: the library could not be found or loaded. */
const LIBRARY_CODE = 'NORMAN_ERROR_LIBRARY';

class NormanError extends Error {
  /**
   * @param {number} result a norman_result number (901 for LIBRARY errors)
   * @param {string} message the library's message, or the binding's own for checks made in JS
   * @param {{code?: string, status?: number, cause?: unknown, reply?: unknown}} [extra]
   */
  constructor(result, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'NormanError';
    this.result = result;
    this.code = extra.code || RESULTS[result] || 'NORMAN_ERROR_UNKNOWN';
    if (extra.status !== undefined) this.status = extra.status;
    // NORMAN_ERROR_MSG_REMOTE: the peer's answer (ERROR, AUTH_ERROR, NOT_FOUND, NOT_PERMITTED).
    if (extra.reply !== undefined) this.reply = extra.reply;
  }
}

/** A NormanError for a result number and an optional message (prefixed with the code). */
function errorOf(result, message, extra) {
  const code = RESULTS[result] || 'NORMAN_ERROR_UNKNOWN';
  return new NormanError(result, message ? `${code}: ${message}` : code, extra);
}

const invalid = (message) => errorOf(2, message);

module.exports = { NormanError, RESULTS, RESULT, LIBRARY_CODE, errorOf, invalid };
