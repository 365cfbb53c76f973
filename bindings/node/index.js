// ES module entry: import { Client } from 'norman'. The implementation is CommonJS (lib/*.cjs) so
// that require() and import share one copy of the library state.
import norman from './index.cjs';

export const {
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
  libraryCandidates,
  ABI_VERSION,
  MsgType,
  Msg,
  MsgCall,
  MsgServer,
  MsgConn,
  MsgNode,
  netaioHmac,
  netaioCipher,
  aead,
  BsonConn,
  BsonListener,
  bsonToJson,
  bsonFromJson,
} = norman;
export default norman;
