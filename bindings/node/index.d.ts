// TypeScript declarations of the libnorman Node binding (ESM and CommonJS share them).
import { Readable, Writable } from 'node:stream';

/** Stable codes: the norman_result names of norman.h, plus NORMAN_ERROR_LIBRARY (library not found or loadable). */
export type NormanErrorCode =
  | 'NORMAN_ERROR_NULL_ARGUMENT' | 'NORMAN_ERROR_INVALID_ARGUMENT' | 'NORMAN_ERROR_INVALID_UTF8'
  | 'NORMAN_ERROR_INVALID_JSON' | 'NORMAN_ERROR_INVALID_CONFIG' | 'NORMAN_ERROR_INVALID_PAIRING'
  | 'NORMAN_ERROR_STATE' | 'NORMAN_ERROR_WRONG_THREAD' | 'NORMAN_ERROR_BUSY' | 'NORMAN_ERROR_CANCELLED'
  | 'NORMAN_ERROR_BUFFER_TOO_SMALL' | 'NORMAN_ERROR_HTTP_STATUS' | 'NORMAN_ERROR_HTTP_UNAUTHORIZED'
  | 'NORMAN_ERROR_HTTP_NOT_FOUND' | 'NORMAN_ERROR_DECODE' | 'NORMAN_ERROR_CONNECT' | 'NORMAN_ERROR_TIMEOUT'
  | 'NORMAN_ERROR_IO' | 'NORMAN_ERROR_NETWORK' | 'NORMAN_ERROR_TRUNCATED' | 'NORMAN_ERROR_OVERSIZE'
  | 'NORMAN_ERROR_KEYSTREAM_EXHAUSTED' | 'NORMAN_ERROR_AUTH_HEADER_MISMATCH' | 'NORMAN_ERROR_CHECKSUM_MISMATCH'
  | 'NORMAN_ERROR_PANIC' | 'NORMAN_ERROR_INTERNAL' | 'NORMAN_ERROR_LIBRARY' | 'NORMAN_ERROR_UNKNOWN';

export class NormanError extends Error {
  readonly name: 'NormanError';
  /** Stable code string, e.g. 'NORMAN_ERROR_CONNECT'. */
  readonly code: NormanErrorCode;
  /** The norman_result number (200 for NORMAN_ERROR_CONNECT; 901 for NORMAN_ERROR_LIBRARY). */
  readonly result: number;
  /** The HTTP status, for errors made from a non-2xx answer by requestJson() and the typed calls. */
  readonly status?: number;
}

/** norman_result numbers by code name. */
export const RESULT: Readonly<Record<string, number>>;
export const ABI_VERSION: 1;

export interface ClientConfig {
  /** API base URL ending in the version, e.g. 'http://127.0.0.1:8080/v0/'. */
  baseUrl?: string;
  /** Bearer token (a secret: never shown by util.inspect, JSON or errors). */
  token?: string | null;
  timeoutMs?: number;
  retries?: number;
  /** Upload chunk size (unit of hash + encrypt + socket write), 1 byte to 64 MiB. */
  chunkSize?: number;
  flushSize?: number;
  /** Runtime worker threads of the native client (0: one per core, at most 8). */
  workerThreads?: number;
  /** Start from the NORMAN_* environment variables (NORMAN_BASE_URL, NORMAN_TOKEN, ...). */
  fromEnv?: boolean;
}

export interface AssetTarget { kind: 'asset'; accountId: string; modelId: string; assetId: string }
export interface InputTarget { kind: 'input'; accountId: string; modelId: string; invocationId: string; inputId: string }
export interface OutputTarget { kind: 'output'; accountId: string; modelId: string; invocationId: string; outputId: string }
export type Target = AssetTarget | InputTarget | OutputTarget;

/** A SocketPairingResponse as the backend returns it (camelCase keys are accepted too). */
export interface Pairing {
  pairing_id: string;
  host: string;
  port: number;
  encryption_key: string;
  nonce: string;
  authentication_header: string;
}

export interface CallOptions { signal?: AbortSignal }
export interface UploadResult { checksum: string; bytes: number }
export type EntityState = 'pending' | 'done' | 'failed';

export interface StatusFlag {
  id: string;
  account_id: string;
  entity_id: string;
  update_time: string;
  flag_name: string;
  /** Not_Started=0, Enqueued=1, In_Progress=2, Finished=3, Error=4. */
  flag_value: number;
}

export interface Model {
  id?: string;
  account_id: string;
  name: string;
  version_label: string;
  short_description?: string;
  long_description?: string;
  request_type?: string;
  model_type?: string;
  hosting_location?: string;
  output_format?: string;
  assets?: Array<{ id?: string; account_id: string; asset_name: string; [key: string]: unknown }>;
  [key: string]: unknown;
}

export class Response {
  readonly status: number;
  readonly body: Buffer;
  readonly ok: boolean;
  text(): string;
  json<T = unknown>(): T;
}

export interface UploadOptions extends CallOptions {
  /** Bytes buffered before write() returns false (default 4 MiB). */
  highWaterMark?: number;
}
export interface DownloadOptions extends CallOptions {
  /** Size of each read (default 1 MiB). */
  highWaterMark?: number;
}
export interface PushFileOptions extends CallOptions {
  /** Called on the JS thread after each write with the bytes sent so far and the file size. */
  onProgress?: (sent: number, total: number) => void;
  /** Size of each read and write (default 1 MiB). */
  chunkSize?: number;
}

/** A Writable that uploads what is written; `checksum` is set before 'finish'. */
export class UploadStream extends Writable {
  /** xxh3-64 of the bytes written, 16 hex digits, once finished. */
  readonly checksum: string | undefined;
  readonly bytes: number;
  /** Resolves when finished; rejects with the stream's NormanError. */
  readonly result: Promise<UploadResult>;
}

/** A Readable of a stored file; `checksum` is set at 'end'. */
export class DownloadStream extends Readable {
  readonly checksum: string | undefined;
  /** The length the server announced, once open. */
  readonly contentLength: number | undefined;
  readonly bytes: number;
}

export class Client {
  constructor(config?: ClientConfig);
  readonly closed: boolean;
  /** Aborts uploads and downloads, cancels pending calls, waits for them, frees the native client. Idempotent. */
  close(): Promise<void>;
  setToken(token: string | null): void;

  /** Any route; resolves with the answer whatever its status; rejects on transport failures. */
  request(method: string, route: string, body?: unknown, options?: CallOptions): Promise<Response>;
  /** Like request(), parsing JSON; a non-2xx status rejects with NORMAN_ERROR_HTTP_*. */
  requestJson<T = unknown>(method: string, route: string, body?: unknown, options?: CallOptions): Promise<T>;
  signup(options?: CallOptions): Promise<{ token: string; account: { id: string; [key: string]: unknown } }>;
  createModels(models: Model[], options?: CallOptions): Promise<Record<string, Model & { id: string }>>;
  getStatusFlags(constraints?: unknown, options?: CallOptions): Promise<Record<string, StatusFlag[]>>;
  entityState(entityId: string, options?: CallOptions): Promise<EntityState>;
  pair(target: AssetTarget | InputTarget, size: number, options?: CallOptions): Promise<Pairing>;
  complete(pairingId: string, checksum: string, options?: CallOptions): Promise<unknown>;

  /** Upload on a pairing (then call complete()), or allocate one for `target` (finishing completes it). */
  upload(source: Pairing | string | { target: AssetTarget | InputTarget; size: number }, options?: UploadOptions): UploadStream;
  download(target: Target, options?: DownloadOptions): DownloadStream;
  pushFile(target: AssetTarget | InputTarget, path: string, options?: PushFileOptions): Promise<UploadResult>;
}

/** xxh3-64 as 16 hex digits (what `norman checksum` prints). */
export function checksum(input: Uint8Array | string | AsyncIterable<Uint8Array | string>): Promise<string>;
export function checksumSync(input: Uint8Array | string): string;
export function entityStateOfFlags(flags: StatusFlag[] | Record<string, StatusFlag[]>): EntityState;
export function version(): string;
/** Path of the loaded libnorman (loads it; throws NORMAN_ERROR_LIBRARY listing every place tried). */
export function libraryPath(): string;
export function libraryCandidates(): Array<{ origin: 'NORMAN_LIBRARY' | 'package' | 'CARGO_TARGET_DIR' | 'repository'; path: string }>;

declare const norman: {
  Client: typeof Client;
  UploadStream: typeof UploadStream;
  DownloadStream: typeof DownloadStream;
  Response: typeof Response;
  NormanError: typeof NormanError;
  RESULT: typeof RESULT;
  checksum: typeof checksum;
  checksumSync: typeof checksumSync;
  entityStateOfFlags: typeof entityStateOfFlags;
  version: typeof version;
  libraryPath: typeof libraryPath;
  libraryCandidates: typeof libraryCandidates;
  ABI_VERSION: 1;
};
export default norman;
