// TypeScript declarations of the libnorman Node binding (ESM and CommonJS share them).
import { Readable, Writable } from 'node:stream';

/** Stable codes: the norman_result names of norman.h, plus NORMAN_ERROR_LIBRARY (library not found or loadable). */
export type NormanErrorCode =
  | 'NORMAN_ERROR_NULL_ARGUMENT' | 'NORMAN_ERROR_INVALID_ARGUMENT' | 'NORMAN_ERROR_INVALID_UTF8'
  | 'NORMAN_ERROR_INVALID_JSON' | 'NORMAN_ERROR_INVALID_CONFIG' | 'NORMAN_ERROR_INVALID_PAIRING'
  | 'NORMAN_ERROR_STATE' | 'NORMAN_ERROR_WRONG_THREAD' | 'NORMAN_ERROR_BUSY' | 'NORMAN_ERROR_CANCELLED'
  | 'NORMAN_ERROR_BUFFER_TOO_SMALL' | 'NORMAN_CLOSED' | 'NORMAN_ERROR_INVALID_BSON' | 'NORMAN_ERROR_HTTP_STATUS' | 'NORMAN_ERROR_HTTP_UNAUTHORIZED'
  | 'NORMAN_ERROR_HTTP_NOT_FOUND' | 'NORMAN_ERROR_DECODE' | 'NORMAN_ERROR_CONNECT' | 'NORMAN_ERROR_TIMEOUT'
  | 'NORMAN_ERROR_IO' | 'NORMAN_ERROR_NETWORK' | 'NORMAN_ERROR_TRUNCATED' | 'NORMAN_ERROR_OVERSIZE'
  | 'NORMAN_ERROR_KEYSTREAM_EXHAUSTED' | 'NORMAN_ERROR_AUTH_HEADER_MISMATCH' | 'NORMAN_ERROR_CHECKSUM_MISMATCH'
  | 'NORMAN_ERROR_PROTOCOL' | 'NORMAN_ERROR_MSG_AUTH' | 'NORMAN_ERROR_DECRYPT' | 'NORMAN_ERROR_MSG_REMOTE'
  | 'NORMAN_ERROR_PANIC' | 'NORMAN_ERROR_INTERNAL' | 'NORMAN_ERROR_LIBRARY' | 'NORMAN_ERROR_UNKNOWN';

export class NormanError extends Error {
  readonly name: 'NormanError';
  /** Stable code string, e.g. 'NORMAN_ERROR_CONNECT'. */
  readonly code: NormanErrorCode;
  /** The norman_result number (200 for NORMAN_ERROR_CONNECT; 901 for NORMAN_ERROR_LIBRARY). */
  readonly result: number;
  /** The HTTP status, for errors made from a non-2xx answer by requestJson() and the typed calls. */
  readonly status?: number;
  /** NORMAN_ERROR_MSG_REMOTE: the peer's answer (ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED). */
  readonly reply?: Msg;
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
  /** Threads that encrypt one upload (0: one per core, the default; 1: single thread; at most 64). */
  cipherThreads?: number;
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

// ---------- the objects of the routes (docs/schemas/norman_objects.json) ----------
// Field names are the wire's snake_case. Optional fields are those the schema gives a default: leave
// them out when creating, and the backend fills them (ids "0" or absent mean "assign one"); every
// field is present in what the backend returns. Datetimes are RFC 3339 UTC strings.

export type StatusFlagName =
  | 'Logo_EFS_Staging' | 'Logo_S3_Storage' | 'File_EFS_Staging' | 'File_S3_Storage' | 'File_Image_Build'
  | 'Input_EFS_Staging' | 'Input_S3_Storage' | 'Input_EFS_Transcoding' | 'Input_EFS_Tensor'
  | 'Model_Function_Run' | 'Output_EFS_Staging' | 'Output_S3_Storage';
/** Not_Started=0, Enqueued=1, In_Progress=2, Finished=3, Error=4. */
export type StatusFlagValue = 0 | 1 | 2 | 3 | 4;

export interface StatusFlag {
  id?: string;
  account_id: string;
  entity_id: string;
  update_time?: string;
  flag_name: StatusFlagName;
  flag_value: StatusFlagValue;
}

export interface Account {
  id?: string;
  creation_time?: string;
  name: string;
}

/** What signup and login routes answer. util.inspect shows the tokens as '<redacted>'. */
export interface LoginResponse {
  account?: Account | null;
  /** Bearer token for Client#setToken (a secret). */
  access_token?: string | null;
  id_token?: string | null;
}

export type HttpRequestType = 'Get' | 'Post' | 'Put';
export type ModelType = 'Api' | 'Pytorch_jit' | 'Transformer_hf';
export type ModelHostingLocation = 'External' | 'Internal';
export type OutputFormat = 'Binary' | 'Json' | 'Text';
export type ModelBuildStatus = 'InProgress' | 'Completed' | 'Failed';
export type SignatureType = 'Input' | 'Output';
export type DataModality = 'Audio' | 'File' | 'Float' | 'Image' | 'Integer' | 'Text' | 'Video';
export type ReceiveFormat = 'File' | 'Link' | 'Primitive';
export type HttpLocation = 'Body' | 'Path' | 'Query';

/** A file slot of a model (weights, logo, ...); its id names the file (AssetTarget.assetId). */
export interface ModelAsset {
  id?: string;
  account_id: string;
  model_id?: string;
  asset_name: string;
}

/** How often a tag was given to a model. */
export interface AggregateTag {
  model_id: string;
  name: string;
  tag_count: number;
}

/** A tag a user added to a model. */
export interface ModelTag {
  id?: string;
  account_id?: string;
  model_id?: string;
  name: string;
}

/** One parameter of a signature. */
export interface ModelParam {
  id?: string;
  model_id?: string;
  signature_id?: string;
  data_modality: DataModality;
  data_encoding: string;
  parameter_name: string;
}

/** A transform applied to a signature's data. */
export interface SignatureTransform {
  id?: string;
  signature_id?: string;
  transform_name: string;
  transform_args?: Record<string, string>;
}

/** One input or output of a model. */
export interface ModelSignature {
  id?: string;
  model_id?: string;
  signature_type: SignatureType;
  data_modality: DataModality;
  data_domain: string;
  data_encoding: string;
  receive_format: ReceiveFormat;
  http_location: HttpLocation;
  hidden: boolean;
  display_title: string;
  default_value?: string | null;
  parameters?: ModelParam[];
  transforms?: SignatureTransform[];
  signature_args?: Record<string, string>;
}

/** One version of a model. newModel() makes one to create. */
export interface Model {
  id?: string;
  account_id: string;
  model_base_id?: string;
  version_label: string;
  active?: boolean;
  build_status?: ModelBuildStatus | null;
  creation_time?: string;
  short_description: string;
  assets?: ModelAsset[];
  tags?: AggregateTag[];
  name: string;
  model_class: string;
  url?: string | null;
  request_type: HttpRequestType;
  model_type: ModelType;
  hosting_location: ModelHostingLocation;
  output_format: OutputFormat;
  long_description: string;
  inputs?: ModelSignature[];
  outputs?: ModelSignature[];
  http_headers?: Record<string, string>;
  user_added_tags?: ModelTag[];
}

/** A model as stored: its id (and its base's) assigned. */
export type StoredModel = Model & { id: string; model_base_id: string };

/** The version summary PATCH persist/models/version takes and returns. */
export interface ModelPreview {
  id?: string;
  account_id: string;
  model_base_id?: string;
  version_label: string;
  active?: boolean;
  creation_time?: string;
}

/** Groups the versions of a model. */
export interface ModelBase {
  id?: string;
  account_id: string;
  name: string;
  invocation_count?: number;
  model_previews?: ModelPreview[];
  creation_time?: string;
}

/** One input or output slot of an invocation; its id names the file (InputTarget.inputId / OutputTarget.outputId). */
export interface InvocationSignature {
  id?: string;
  account_id: string;
  model_id: string;
  signature_id: string;
  invocation_id?: string;
  display_title?: string;
}

/** One call of a model, with its input and output slots. */
export interface Invocation {
  id?: string;
  account_id: string;
  model_id: string;
  creation_time?: string;
  inputs?: InvocationSignature[];
  outputs?: InvocationSignature[];
}

/** An invocation as stored: its id and its slots' ids assigned. */
export type StoredInvocation = Invocation & {
  id: string;
  inputs: Array<InvocationSignature & { id: string }>;
  outputs: Array<InvocationSignature & { id: string }>;
};

/** A message the backend keeps for an account (its fields are not fixed by the schema). */
export type Notification = Record<string, unknown>;

export type BinaryRelation = '=' | '!=' | '>' | '<' | '>=' | '<=' | 'LIKE' | 'IN' | 'NOT IN';

/** Compares one column of one table (e.g. { table: 'Models', column: 'Name', operator: '=', value: 'x' }). */
export interface FilterNode {
  table: string;
  /** Default 'ID'. */
  column?: string;
  /** Default '='. */
  operator?: BinaryRelation;
  /** One value, or a list of them for IN and NOT IN. */
  value: string | number | Array<string | number>;
}

/** Joins nodes and nested clauses. */
export interface FilterClause {
  children: Array<FilterClause | FilterNode>;
  /** Default 'AND'. */
  join_condition?: 'AND' | 'OR';
}

export interface SortNode {
  table: string;
  column?: string;
  direction?: 'ASC' | 'DESC';
}

export interface SortClause {
  children: SortNode[];
}

export interface PageClause {
  limit: number | null;
  offset: number | null;
}

/** Filters, sorts and pages the `.../get` routes; whereEquals() and whereIn() make simple ones. */
export interface QueryConstraints {
  filter?: FilterClause | null;
  sort?: SortClause | null;
  page?: PageClause | null;
}

/** The request of getModels() and getModelBases(); omitted: all models. */
export interface GetModelsRequest {
  constraints?: QueryConstraints | null;
  /** Only models whose build finished (default false). */
  finished_models?: boolean;
  /** Alias of finished_models. */
  finishedModels?: boolean;
}

/** Asks for an upload socket for a model asset (what pair() sends for an AssetTarget). */
export interface SocketAssetPairingRequest {
  account_id: string;
  model_id: string;
  file_size_in_bytes: number;
  asset_id: string;
}

/** Asks for an upload socket for an invocation input (what pair() sends for an InputTarget). */
export interface SocketInputPairingRequest {
  account_id: string;
  model_id: string;
  file_size_in_bytes: number;
  invocation_id: string;
  input_id: string;
}

/** Completes an upload made on a pairing (what complete() sends): the backend checks the checksum. */
export interface ChecksumRequest {
  pairing_id: string;
  /** xxh3-64, 16 hex digits. */
  checksum: string;
}

/** Has the backend fetch a model asset from links (http or https only). */
export interface AssetDownloadRequest {
  account_id: string;
  model_id: string;
  links: string[];
  asset_id: string;
  asset_name: string;
}

/** Has the backend fetch an invocation input from links. */
export interface InputDownloadRequest {
  account_id: string;
  model_id: string;
  links: string[];
  signature_id: string;
  invocation_id: string;
  input_id: string;
}

/** Has the backend fetch an invocation output from links. */
export interface OutputDownloadRequest {
  account_id: string;
  model_id: string;
  links: string[];
  signature_id: string;
  invocation_id: string;
  output_id: string;
}

/** The links a pull fetches from, as the backend keeps them. */
export interface NormanFileDownloadRequest {
  account_id: string;
  model_id: string;
  links: string[];
}

interface TrackedDownloadBase {
  download_request: NormanFileDownloadRequest;
  file_link: string;
  model: Model;
  downloaded_bytes: number;
  /** 0 until known; the pull is done when downloaded_bytes === total_bytes > 0. */
  total_bytes: number;
  file_checksum: string;
}
export interface TrackedAssetDownload extends TrackedDownloadBase {
  entity_type: 'Asset';
  asset: ModelAsset;
}
export interface TrackedInputDownload extends TrackedDownloadBase {
  entity_type: 'Input';
  invocation: Invocation;
  invocation_input: InvocationSignature;
}
export interface TrackedOutputDownload extends TrackedDownloadBase {
  entity_type: 'Output';
  invocation: Invocation;
  invocation_output: InvocationSignature;
}
/** The progress of a pull (GET file-pull/metadata/{entity_id}), discriminated by entity_type. */
export type TrackedDownload = TrackedAssetDownload | TrackedInputDownload | TrackedOutputDownload;

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
  signup(options?: CallOptions): Promise<{ token: string; account: Account & { id: string } }>;
  /** POST authenticate/login/default/{account_id}: logs in to an account without credentials. */
  loginDefault(accountId: string, options?: CallOptions): Promise<LoginResponse>;
  /** POST authenticate/login/key. The key is never kept, and '<redacted>' in any error message. */
  loginWithKey(accountId: string, apiKey: string, options?: CallOptions): Promise<LoginResponse>;

  /** POST persist/models/get: { id: Model }; no request: all models. */
  getModels(request?: GetModelsRequest | null, options?: CallOptions): Promise<Record<string, StoredModel>>;
  /** POST persist/models/bases/get: { id: ModelBase }. */
  getModelBases(request?: GetModelsRequest | null, options?: CallOptions): Promise<Record<string, ModelBase & { id: string }>>;
  /** POST persist/models/: creates models, each under a new base; { id: Model } whether the backend answers a list (today) or a map (earlier). */
  createModels(models: Model[], options?: CallOptions): Promise<Record<string, StoredModel>>;
  /** Creates one model; resolves with it as stored, its ids and its assets' ids assigned. */
  createModel(model: Model, options?: CallOptions): Promise<StoredModel>;
  /** POST persist/models/version: new versions of existing bases (model_base_id); { id: Model } from a list or map answer. */
  createModelVersions(models: Model[], options?: CallOptions): Promise<Record<string, StoredModel>>;
  /** PATCH persist/models/: { id: Model } from a list or map answer. */
  updateModels(models: Model[], options?: CallOptions): Promise<Record<string, StoredModel>>;
  /** PATCH persist/models/version: sets which version of each base is active. */
  updateModelVersions(previews: ModelPreview[], options?: CallOptions): Promise<ModelPreview[]>;
  /** DELETE persist/models/: resolves with how many models were deleted. */
  deleteModels(constraints: QueryConstraints, options?: CallOptions): Promise<number>;
  /** POST persist/invocations/get: { id: Invocation }; no constraints: all. */
  getInvocations(constraints?: QueryConstraints | null, options?: CallOptions): Promise<Record<string, StoredInvocation>>;
  /** POST persist/invocation/history/get: { id: Invocation }; no constraints: all. */
  getInvocationHistory(constraints?: QueryConstraints | null, options?: CallOptions): Promise<Record<string, StoredInvocation>>;
  /** POST persist/invocations: resolves with them as stored, in order. */
  createInvocations(invocations: Invocation[], options?: CallOptions): Promise<StoredInvocation[]>;
  /** POST persist/invocations/by-name: e.g. { echo: 2 }. */
  createInvocationsByName(counts: Record<string, number>, options?: CallOptions): Promise<StoredInvocation[]>;
  /** POST persist/notifications/get; no constraints: all. */
  getNotifications(constraints?: QueryConstraints | null, options?: CallOptions): Promise<Notification[]>;

  /** POST persist/flags/get: { entity_id: [StatusFlag] }; no constraints: all. */
  getStatusFlags(constraints?: QueryConstraints | null, options?: CallOptions): Promise<Record<string, StatusFlag[]>>;
  /** The flags of the given entities (filter Status_Flags.Entity_ID IN ids); a trailing object is the options. */
  getFlagsOf(...entityIds: string[]): Promise<Record<string, StatusFlag[]>>;
  getFlagsOf(...args: [...entityIds: string[], options: CallOptions]): Promise<Record<string, StatusFlag[]>>;
  entityState(entityId: string, options?: CallOptions): Promise<EntityState>;

  pair(target: AssetTarget | InputTarget, size: number, options?: CallOptions): Promise<Pairing>;
  complete(pairingId: string, checksum: string, options?: CallOptions): Promise<unknown>;

  /** GET file-pull/metadata/{entity_id}: the progress of a pull. */
  downloadMetadata(entityId: string, options?: CallOptions): Promise<TrackedDownload>;
  /** POST file-pull/upload/assets: resolves with the ids to follow with downloadMetadata(). */
  submitAssetLinks(request: AssetDownloadRequest, options?: CallOptions): Promise<string[]>;
  /** POST file-pull/upload/inputs. */
  submitInputLinks(request: InputDownloadRequest, options?: CallOptions): Promise<string[]>;
  /** POST file-pull/upload/outputs. */
  submitOutputLinks(request: OutputDownloadRequest, options?: CallOptions): Promise<string[]>;

  /** Upload on a pairing (then call complete()), or allocate one for `target` (finishing completes it). */
  upload(source: Pairing | string | { target: AssetTarget | InputTarget; size: number }, options?: UploadOptions): UploadStream;
  download(target: Target, options?: DownloadOptions): DownloadStream;
  pushFile(target: AssetTarget | InputTarget, path: string, options?: PushFileOptions): Promise<UploadResult>;
  /** Downloads target into the file at path (removed again on failure), inside the library. */
  retrieveFile(target: Target, path: string, options?: CallOptions): Promise<UploadResult>;

  /** A message server: handle() its messages, then listen(). */
  msgServer(options?: MsgServerOptions): MsgServer;
  /** A TCP connection to a message server (netaio's wire). */
  msgConnect(addr: string, options?: MsgConnectOptions): Promise<MsgConn>;
  /** A UDP node (datagrams, multicast, peers). */
  msgNode(options?: MsgNodeOptions): MsgNode;
  /** A TCP connection carrying BSON documents (py-bson's framing). */
  bsonConnect(addr: string, options?: BsonConnectOptions): Promise<BsonConn>;
  /** Listens for BSON connections ('127.0.0.1:0' picks a port). */
  bsonListen(addr: string, options?: BsonListenOptions): BsonListener;
}

// ---------- messaging (netaio 0.0.9's wire) ----------

/** netaio's message types. */
export const MsgType: {
  readonly REQUEST_URI: 0; readonly RESPOND_URI: 1; readonly CREATE_URI: 2; readonly UPDATE_URI: 3;
  readonly DELETE_URI: 4; readonly SUBSCRIBE_URI: 5; readonly UNSUBSCRIBE_URI: 6; readonly PUBLISH_URI: 7;
  readonly NOTIFY_URI: 8; readonly ADVERTISE_PEER: 9; readonly OK: 10; readonly CONFIRM_SUBSCRIBE: 11;
  readonly CONFIRM_UNSUBSCRIBE: 12; readonly PEER_DISCOVERED: 13; readonly ERROR: 20; readonly AUTH_ERROR: 23;
  readonly NOT_FOUND: 24; readonly NOT_PERMITTED: 25; readonly DISCONNECT: 30;
};
export type MsgTypeName = keyof typeof MsgType;
/** A MsgType name or number (0-255; application types are 31 and up). */
export type MsgTypeLike = MsgTypeName | number;
/** A uri: a string (sent as UTF-8) or raw bytes. */
export type Uri = string | Uint8Array;
/** Content: bytes, or a string (sent as UTF-8); null/undefined: empty. */
export type Content = Uint8Array | string | null | undefined;

/** One layer; the key is on no visible property (inspect and JSON show <redacted>). */
export class Layer {
  readonly kind: 'netaioHmac' | 'netaioCipher' | 'aead';
  readonly maxSkewS?: number;
  readonly encryptUri?: boolean;
  /** The auth field it writes (null: its default, 'hmac' / 'iv' / 'aead'). */
  readonly field?: string | null;
  private constructor();
}
/** A layer, or layers in the order they seal (netaio's usual: [netaioCipher(k), netaioHmac(s)]). */
export type Layers = Layer | Layer[];
/** netaio's HMACAuthPlugin; maxSkewS > 0 refuses stale timestamps (0: netaio's behaviour). */
export function netaioHmac(secret: string | Uint8Array, options?: { maxSkewS?: number; field?: string }): Layer;
/** netaio's Sha256StreamCipherPlugin (no integrity of its own: use it under an HMAC). */
export function netaioCipher(key: string | Uint8Array, options?: { encryptUri?: boolean; field?: string }): Layer;
/** libnorman's ChaCha20-Poly1305 layer; the key is exactly 32 bytes. Inner: { field: 'aead2', encryptUri: false }. */
export function aead(key: Uint8Array, options?: { encryptUri?: boolean; field?: string }): Layer;

/** A received message. */
export class Msg {
  readonly type: number;
  /** The MsgType name, or 'TYPE_<n>'. */
  readonly typeName: string;
  /** The uri as UTF-8 text; uriBytes: as received. */
  readonly uri: string;
  readonly uriBytes: Buffer;
  readonly content: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

/** One received message awaiting an answer (a handler's argument). */
export class MsgCall {
  readonly type: number;
  readonly typeName: string;
  readonly uri: string;
  readonly uriBytes: Buffer;
  readonly content: Buffer;
  /** The TCP connection it came on (0 for UDP). */
  readonly connId: number;
  /** The sender, "ip:port". */
  readonly peer: string;
  /** True once answered (reply(), the handler's result, or dropped). */
  readonly answered: boolean;
  text(): string;
  json<T = unknown>(): T;
  /** An auth field of the message ('ts', 'nonce', ...), until answered. */
  authField(name: string): Buffer | undefined;
  /** Subscribes the sender's connection to `uri` (default: this call's). */
  subscribe(uri?: Uri): void;
  unsubscribe(uri?: Uri): void;
  /** Answers now; the handler's return value is then ignored. */
  reply(type: MsgTypeLike, content?: Content): void;
}

/** What a handler returns: content (sent as the natural answer: RESPOND_URI to REQUEST_URI, ...), an explicit type and content, or nothing (no answer). */
export type MsgAnswer = Content | { type?: MsgTypeLike; content?: Content } | void;
/** A handler; a thrown error answers ERROR (or its msgType: AUTH_ERROR, NOT_FOUND, NOT_PERMITTED) with its message. */
export type MsgHandler = (call: MsgCall) => MsgAnswer | Promise<MsgAnswer>;
export interface HandleOptions {
  /** Inner layers of this handler (inside the server's). */
  layers?: Layers;
  /** Removed after its first message. */
  once?: boolean;
}

export interface MsgServerOptions {
  /** The instance layers of every connection. */
  layers?: Layers;
  /** SUBSCRIBE_URI / UNSUBSCRIBE_URI answered by the library. */
  autoSubscribe?: boolean;
}

export class MsgServer {
  readonly port: number;
  readonly closed: boolean;
  /** Routes `type` (and `uri`; null: any uri) to `handler`. */
  handle(type: MsgTypeLike, uri: Uri | null, handler: MsgHandler, options?: HandleOptions): this;
  autoSubscribe(on?: boolean): this;
  /** Listens (default '127.0.0.1:0'); resolves with the port. Keeps the process alive until close() or unref(). */
  listen(addr?: string): Promise<number>;
  /** NOTIFY_URI to the subscribers of `uri`; how many it was queued for. */
  notify(uri: Uri, content?: Content): number;
  /** To every connected client; how many. */
  broadcast(type: MsgTypeLike, uri: Uri, content?: Content): number;
  ref(): this;
  unref(): this;
  /** Stops listening, closes every connection, frees the server. Idempotent. */
  close(): Promise<void>;
}

export interface MsgConnectOptions {
  layers?: Layers;
  /** Deadline to connect (default 10000; -1: none). */
  timeoutMs?: number;
}
export interface MsgRequestOptions extends CallOptions {
  /** Deadline for the reply (default 30000; -1 or Infinity: none). */
  timeoutMs?: number;
  /** Per-call inner layers. */
  layers?: Layers;
}
export interface MsgSendOptions {
  layers?: Layers;
}

export class MsgConn {
  readonly closed: boolean;
  /** Resolves with the reply; a remote error rejects with NORMAN_ERROR_MSG_REMOTE (error.reply). */
  request(type: MsgTypeLike, uri: Uri, content?: Content, options?: MsgRequestOptions): Promise<Msg>;
  /** One message, no answer awaited; resolves once queued (sends keep their order). */
  send(type: MsgTypeLike, uri: Uri, content?: Content, options?: MsgSendOptions): Promise<void>;
  /** SUBSCRIBE_URI; then notifications() yields the uri's NOTIFY_URI messages. */
  subscribe(uri: Uri, options?: MsgRequestOptions): Promise<Msg>;
  unsubscribe(uri: Uri, options?: MsgRequestOptions): Promise<Msg>;
  /** Unsolicited messages; ends when the connection closes. */
  notifications(): AsyncIterableIterator<Msg>;
  [Symbol.asyncIterator](): AsyncIterableIterator<Msg>;
  /** Closes: pending requests reject, notifications() ends. Idempotent. */
  close(): Promise<void>;
}

export interface MsgNodeOptions {
  /** UDP address to bind (default '127.0.0.1:0'). */
  bind?: string;
  /** Multicast group (none by default). */
  group?: string | null;
  /** Interface multicast goes out of, e.g. '127.0.0.1' (default: the kernel's). */
  multicastIf?: string | null;
  layers?: Layers;
}
export interface PeerInfo {
  id: Buffer;
  idHex: string;
  /** "ip:port" */
  addr: string;
  data: Buffer;
  lastSeenMsAgo: number;
}
export interface ManagePeersOptions {
  id: Uint8Array | string;
  data?: Content;
  /** Advertise every N ms (default 20000). */
  everyMs?: number;
  /** Forget peers silent for N ms (default 60000). */
  timeoutMs?: number;
}

export class MsgNode {
  readonly port: number;
  readonly closed: boolean;
  /** As MsgServer.handle(); the answer goes to the sender. */
  handle(type: MsgTypeLike, uri: Uri | null, handler: MsgHandler, options?: HandleOptions): this;
  send(addr: string, type: MsgTypeLike, uri: Uri, content?: Content, options?: MsgSendOptions): void;
  multicast(type: MsgTypeLike, uri: Uri, content?: Content, options?: MsgSendOptions): void;
  request(addr: string, type: MsgTypeLike, uri: Uri, content?: Content, options?: MsgRequestOptions): Promise<Msg>;
  managePeers(options: ManagePeersOptions): this;
  peers(): PeerInfo[];
  /** Datagrams no handler took; ends when the node closes. */
  messages(): AsyncIterableIterator<Msg>;
  [Symbol.asyncIterator](): AsyncIterableIterator<Msg>;
  close(): Promise<void>;
}

// ---------- BSON documents on a stream (py-bson's socket framing) ----------

export interface BsonConnectOptions {
  /** Largest document accepted (default 0: 16 MiB; at most 2^31-1). */
  maxDoc?: number;
  /** Deadline to connect (default 10000). */
  timeoutMs?: number;
}
export interface BsonListenOptions {
  maxDoc?: number;
}
export interface BsonReadOptions extends CallOptions {
  /** Deadline (default: none); passing it with nothing read rejects NORMAN_ERROR_TIMEOUT. */
  timeoutMs?: number;
}

export class BsonConn {
  readonly closed: boolean;
  /** The next document, exactly its bytes (decode with the npm bson package), or null at a clean end. */
  read(options?: BsonReadOptions): Promise<Buffer | null>;
  /** read() as relaxed Extended JSON, parsed. */
  readJson<T = unknown>(options?: BsonReadOptions): Promise<T | null>;
  /** Exactly n bytes. */
  readExact(n: number, options?: BsonReadOptions): Promise<Buffer>;
  /** One document (checked; NORMAN_ERROR_INVALID_BSON and nothing sent otherwise). */
  write(doc: Uint8Array): Promise<void>;
  /** A value (JSON.stringify'd) or relaxed Extended JSON text, as one document. */
  writeJson(value: unknown): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer>;
  close(): Promise<void>;
}

export class BsonListener {
  readonly port: number;
  readonly closed: boolean;
  accept(options?: BsonReadOptions): Promise<BsonConn>;
  close(): Promise<void>;
}

/** Relaxed Extended JSON of one document. */
export function bsonToJson(doc: Uint8Array): string;
/** One document from relaxed Extended JSON text or a value. */
export function bsonFromJson(json: string | object): Buffer;

/** A model to create: active, external Api answering Json to Post, one asset slot per name; no ids. */
export function newModel(accountId: string, name: string, versionLabel: string, ...assetNames: string[]): Model;
/** The id of the model's asset named `name` (undefined when there is none or it has no id yet). */
export function assetIdOf(model: Model, name: string): string | undefined;
/** Rows of `table` whose `column` equals `value`. */
export function whereEquals(table: string, column: string, value: string | number): QueryConstraints;
/** Rows of `table` whose `column` is one of `values` (given as arguments or as one array). */
export function whereIn(table: string, column: string, ...values: Array<string | number>): QueryConstraints;
export function whereIn(table: string, column: string, values: Array<string | number>): QueryConstraints;

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
  newModel: typeof newModel;
  assetIdOf: typeof assetIdOf;
  whereEquals: typeof whereEquals;
  whereIn: typeof whereIn;
  version: typeof version;
  libraryPath: typeof libraryPath;
  libraryCandidates: typeof libraryCandidates;
  ABI_VERSION: 1;
  MsgType: typeof MsgType;
  Msg: typeof Msg;
  MsgCall: typeof MsgCall;
  MsgServer: typeof MsgServer;
  MsgConn: typeof MsgConn;
  MsgNode: typeof MsgNode;
  netaioHmac: typeof netaioHmac;
  netaioCipher: typeof netaioCipher;
  aead: typeof aead;
  BsonConn: typeof BsonConn;
  BsonListener: typeof BsonListener;
  bsonToJson: typeof bsonToJson;
  bsonFromJson: typeof bsonFromJson;
};
export default norman;
