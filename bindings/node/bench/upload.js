#!/usr/bin/env node
// Upload throughput through the Writable (client.upload on a pairing from norman_client_upload_begin)
// from memory, with 64 KiB and 1 MiB chunks, against `norman serve` (started here unless --base-url).
// Prints one line per chunk size: `node <chunk-bytes> <MB/s>`.
//
// Usage: node bench/upload.js [--base-url URL] [--mib N]      (N defaults to 256)
import fs from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { Client } from '../index.js';
import { startServe, signup, createAssetTarget } from '../support/serve.js';

const args = process.argv.slice(2);
let baseUrl = null;
let mib = 256;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-url') baseUrl = args[++i];
  else if (args[i] === '--mib') mib = Number(args[++i]);
  else {
    console.error('usage: node bench/upload.js [--base-url URL] [--mib N]');
    process.exit(2);
  }
}
if (!Number.isInteger(mib) || mib <= 0) {
  console.error('--mib needs a positive integer');
  process.exit(2);
}

const serve = baseUrl ? null : await startServe({ dataRoot: fs.existsSync('/dev/shm') ? '/dev/shm' : undefined });
if (serve) baseUrl = serve.baseUrl;
const total = mib << 20;
const data = Buffer.allocUnsafe(4 << 20);
for (let i = 0; i < data.length; i++) data[i] = (i * 131) % 251;

try {
  const { token, accountId } = await signup(baseUrl);
  const client = new Client({ baseUrl, token, workerThreads: 2, timeoutMs: 60000 });
  try {
    for (const chunk of [65536, 1048576]) {
      const target = await createAssetTarget(client, accountId, `node-bench-${chunk}`);
      const start = process.hrtime.bigint();
      const upload = client.upload({ target, size: total });
      for (let sent = 0; sent < total; ) {
        const at = sent % data.length;
        const n = Math.min(chunk, total - sent, data.length - at);
        if (!upload.write(data.subarray(at, at + n))) await once(upload, 'drain');
        sent += n;
      }
      upload.end();
      await finished(upload);
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(`node ${chunk} ${(total / secs / 1e6).toFixed(0)}`);
    }
  } finally {
    await client.close();
  }
} finally {
  if (serve) await serve.stop();
}
