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
} = norman;
export default norman;
