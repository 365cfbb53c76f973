// (Not a test file: node --test runs every .js under test/.) Starts a real `norman serve` for tests and benchmarks, and helpers to sign up and create models.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');

/** The norman program: NORMAN_BIN, else ../../target/release/norman, else ../../target/debug/norman. */
export function normanBin() {
  const tried = [];
  const list = [process.env.NORMAN_BIN, path.join(repo, 'target/release/norman'), path.join(repo, 'target/debug/norman')];
  if (process.env.CARGO_TARGET_DIR) {
    list.push(path.join(process.env.CARGO_TARGET_DIR, 'release/norman'), path.join(process.env.CARGO_TARGET_DIR, 'debug/norman'));
  }
  for (const p of list) {
    if (!p) continue;
    if (fs.existsSync(p)) return p;
    tried.push(p);
  }
  throw new Error(`the norman program was not found (set NORMAN_BIN); tried ${tried.join(', ')}`);
}

/** `norman checksum FILE`: the Rust CLI's 16-hex xxh3-64. */
export function cliChecksum(file) {
  return execFileSync(normanBin(), ['checksum', file], { encoding: 'utf8' }).split(/\s+/)[0];
}

/** Starts `norman serve` on a free port in a fresh data dir; resolves { baseUrl, stop() }. */
export async function startServe({ dataRoot } = {}) {
  const root = dataRoot || os.tmpdir();
  const dir = fs.mkdtempSync(path.join(root, 'norman-node-'));
  // --allow-private-links: the file-pull test fetches from a server of its own on 127.0.0.1.
  const child = spawn(normanBin(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--allow-private-links'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.resume();
  const baseUrl = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('norman serve did not start within 10 s')), 10000);
    child.once('exit', (code) => reject(new Error(`norman serve exited with ${code}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^norman serve listening on (\S+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  child.stdout.resume();
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { baseUrl, dir, stop, process: child };
}

/** Signs up; resolves { token, accountId }. */
export async function signup(baseUrl) {
  const anon = new Client({ baseUrl });
  try {
    const { token, account } = await anon.signup();
    return { token, accountId: account.id };
  } finally {
    await anon.close();
  }
}

/** Creates a model with one asset "File"; resolves the asset target. */
export async function createAssetTarget(client, accountId, name) {
  const models = await client.createModels([
    {
      account_id: accountId,
      version_label: 'v1',
      short_description: 'node test',
      name,
      request_type: 'Post',
      model_type: 'Api',
      hosting_location: 'External',
      output_format: 'Json',
      long_description: 'made by bindings/node',
      assets: [{ account_id: accountId, asset_name: 'File' }],
    },
  ]);
  const model = Object.values(models)[0];
  return { kind: 'asset', accountId, modelId: model.id, assetId: model.assets[0].id };
}

/** Deterministic bytes (the C tests' pattern style). */
export function pattern(len, seed = 1) {
  const b = Buffer.allocUnsafe(len);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * Starts `norman <args...>` (e.g. ['msg', 'serve', '--listen', '127.0.0.1:0']) and waits for its
 * first stdout line "norman <what> listening on ADDR"; resolves { addr, stop(), process }.
 */
export async function startListening(args) {
  const child = spawn(normanBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const addr = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`norman ${args.join(' ')} did not start within 10 s`)), 10000);
    child.once('exit', (code) => reject(new Error(`norman ${args.join(' ')} exited with ${code}: ${stderr}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^norman \S+ listening on (\S+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  child.stdout.resume();
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  return { addr, stop, process: child, stderr: () => stderr };
}
