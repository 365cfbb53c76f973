// The Node binding cannot drift from docs/schemas/norman_objects.json:
// - index.d.ts declares every object of the schema with exactly its properties, each of a
//   compatible type (enums as the same literals, nested objects checked in turn) and optional only
//   where the schema has a default. typescript is no dependency of the package, so a small parser of
//   the declaration subset index.d.ts uses reads it (it fails loudly on syntax it does not know).
// - the object helpers of lib/client.cjs (newModel, whereEquals, whereIn, the bodies of pair(),
//   complete() and submit*Links(), the fields of a pairing) produce and check the schema's fields:
//   what they send reaches a loopback server and is validated against the schema there.
// A property added to the schema fails here, by name, until every place has it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Client, NormanError, newModel, whereEquals, whereIn } from '../index.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const SCHEMA = JSON.parse(fs.readFileSync(here('../../../docs/schemas/norman_objects.json'), 'utf8'));
const DTS = fs.readFileSync(here('../index.d.ts'), 'utf8');

/** Schema objects whose TypeScript name differs. */
const TS_NAMES = { SocketPairingResponse: 'Pairing', TrackedDownloadUnion: 'TrackedDownload' };
/** Interfaces of answers only: the backend always sends every field, so defaults need not be optional. */
const ANSWER_ONLY = new Set(['TrackedAssetDownload', 'TrackedInputDownload', 'TrackedOutputDownload']);

// ---------- a parser of the TypeScript declaration subset of index.d.ts ----------

function tokenize(text) {
  const tokens = [];
  const re = /\s+|\/\/[^\n]*|\/\*[\s\S]*?\*\/|('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|([A-Za-z_$][\w$]*)|(=>|\.\.\.|[{}()[\]<>;,:?|&=.])|(.)/gy;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[1] !== undefined) tokens.push({ t: 'str', v: JSON.parse(m[1][0] === "'" ? `"${m[1].slice(1, -1).replace(/"/g, '\\"')}"` : m[1]) });
    else if (m[2] !== undefined) tokens.push({ t: 'num', v: Number(m[2]) });
    else if (m[3] !== undefined) tokens.push({ t: 'id', v: m[3] });
    else if (m[4] !== undefined) tokens.push({ t: 'p', v: m[4] });
    else if (m[5] !== undefined) throw new Error(`index.d.ts: unexpected character ${JSON.stringify(m[5])} at ${m.index}`);
  }
  return tokens;
}

/** { interfaces: name -> { extends: [names], members: name -> { optional, type } }, aliases: name -> type }. */
function parseDeclarations(text) {
  const tokens = tokenize(text);
  let i = 0;
  const peek = (k = 0) => tokens[i + k];
  const is = (v, k = 0) => peek(k) && peek(k).t !== 'str' && peek(k).v === v;
  const expect = (v) => {
    if (!is(v)) throw new Error(`index.d.ts: expected ${v}, found ${JSON.stringify(peek())} (token ${i})`);
    i++;
  };
  const ident = () => {
    if (!peek() || peek().t !== 'id') throw new Error(`index.d.ts: expected a name, found ${JSON.stringify(peek())}`);
    return tokens[i++].v;
  };
  const skipBalanced = (open, close) => {
    let depth = 0;
    do {
      if (is(open)) depth++;
      else if (is(close)) depth--;
      i++;
    } while (depth > 0 && i < tokens.length);
  };

  function members(close) {
    const out = {};
    while (!is(close)) {
      if (is('readonly')) i++;
      const name = peek().t === 'str' ? tokens[i++].v : ident();
      const optional = is('?') && (i++, true);
      if (is('(') || is('<')) {
        // A method signature: not an object property.
        if (is('<')) skipBalanced('<', '>');
        skipBalanced('(', ')');
        expect(':');
        parseType();
      } else {
        expect(':');
        out[name] = { optional, type: parseType() };
      }
      if (is(';') || is(',')) i++;
    }
    expect(close);
    return out;
  }

  function parseType() {
    if (is('|')) i++;
    const parts = [parseIntersection()];
    while (is('|')) {
      i++;
      parts.push(parseIntersection());
    }
    return parts.length === 1 ? parts[0] : { k: 'union', of: parts };
  }
  function parseIntersection() {
    const parts = [parsePostfix()];
    while (is('&')) {
      i++;
      parts.push(parsePostfix());
    }
    return parts.length === 1 ? parts[0] : { k: 'intersection', of: parts };
  }
  function parsePostfix() {
    let type = parsePrimary();
    while (is('[') && is(']', 1)) {
      i += 2;
      type = { k: 'array', of: type };
    }
    return type;
  }
  function parsePrimary() {
    const tok = peek();
    if (tok.t === 'str' || tok.t === 'num') {
      i++;
      return { k: 'lit', v: tok.v };
    }
    if (is('{')) {
      i++;
      return { k: 'literal', members: members('}') };
    }
    if (is('[')) {
      i++;
      const of = [];
      while (!is(']')) {
        if (is('...')) i++;
        if (peek().t === 'id' && is(':', 1)) i += 2;
        of.push(parseType());
        if (is(',')) i++;
      }
      i++;
      return { k: 'tuple', of };
    }
    if (is('(')) {
      // A function type `(a: T) => R`, or a parenthesized type.
      const start = i;
      skipBalanced('(', ')');
      if (is('=>')) {
        i++;
        parseType();
        return { k: 'function' };
      }
      i = start + 1;
      const inner = parseType();
      expect(')');
      return inner;
    }
    if (is('typeof')) {
      i++;
      return { k: 'typeof', name: ident() };
    }
    let name = ident();
    while (is('.')) {
      i++;
      name += `.${ident()}`;
    }
    const args = [];
    if (is('<')) {
      i++;
      while (!is('>')) {
        args.push(parseType());
        if (is(',')) i++;
      }
      i++;
    }
    return { k: 'ref', name, args };
  }

  const interfaces = {};
  const aliases = {};
  while (i < tokens.length) {
    if (is('interface')) {
      i++;
      const name = ident();
      const ext = [];
      if (is('extends')) {
        i++;
        ext.push(ident());
        while (is(',')) {
          i++;
          ext.push(ident());
        }
      }
      expect('{');
      interfaces[name] = { extends: ext, members: members('}') };
    } else if (is('type') && peek(1)?.t === 'id' && (is('=', 2) || is('<', 2))) {
      i++;
      const name = ident();
      if (is('<')) skipBalanced('<', '>');
      expect('=');
      aliases[name] = parseType();
      if (is(';')) i++;
    } else if (is('{')) {
      skipBalanced('{', '}');
    } else {
      i++;
    }
  }
  return { interfaces, aliases };
}

const DECLS = parseDeclarations(DTS);

/** An interface's own and inherited members. */
function membersOf(name) {
  const decl = DECLS.interfaces[name];
  if (!decl) return null;
  const out = {};
  for (const base of decl.extends) Object.assign(out, membersOf(base));
  return Object.assign(out, decl.members);
}

// ---------- both sides as comparable type keys ----------

const key = (d) => d.key;
function union(descs) {
  const flat = new Map();
  for (const d of descs) for (const m of d.k === 'union' ? d.of : [d]) flat.set(m.key, m);
  const of = [...flat.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  return of.length === 1 ? of[0] : { k: 'union', of, key: of.map(key).join(' | ') };
}
const prim = (name) => ({ k: name, key: name });
const lit = (v) => ({ k: 'lit', v, key: JSON.stringify(v) });
const arrayOf = (of) => ({ k: 'array', of, key: `Array<${of.key}>` });
const recordOf = (of) => ({ k: 'record', of, key: `Record<string, ${of.key}>` });
const objectNamed = (name) => ({ k: 'object', name, key: name });

/** A schema node, $refs resolved in `defs`; objects are named by their TypeScript name. */
function fromSchema(node, defs, name) {
  if (node.$ref) {
    const refName = node.$ref.replace('#/$defs/', '');
    const def = defs[refName];
    if (!def) throw new Error(`unresolved ${node.$ref}`);
    return def.properties || def.oneOf ? objectNamed(TS_NAMES[refName] ?? refName) : fromSchema(def, defs);
  }
  if ('const' in node) return lit(node.const);
  if (node.enum) return union(node.enum.map(lit));
  if (node.anyOf || node.oneOf) return union((node.anyOf || node.oneOf).map((n) => fromSchema(n, defs)));
  switch (node.type) {
    case 'string':
    case 'boolean':
    case 'null':
      return prim(node.type);
    case 'integer':
    case 'number':
      return prim('number');
    case 'array':
      return arrayOf(node.prefixItems ? union(node.prefixItems.map((n) => fromSchema(n, defs))) : fromSchema(node.items, defs));
    case 'object':
      if (node.properties) return objectNamed(name);
      return recordOf(fromSchema(node.additionalProperties ?? { type: 'string' }, defs));
    default:
      throw new Error(`a schema node this test does not know: ${JSON.stringify(node)}`);
  }
}

/** A TypeScript type of index.d.ts, aliases resolved. */
function fromTs(type) {
  switch (type.k) {
    case 'union':
      return union(type.of.map(fromTs));
    case 'lit':
      return lit(type.v);
    case 'array':
      return arrayOf(fromTs(type.of));
    case 'literal':
      return { k: 'inline', key: `{ ${Object.keys(type.members).sort().join('; ')} }` };
    case 'ref': {
      if (['string', 'number', 'boolean', 'null'].includes(type.name)) return prim(type.name);
      if (type.name === 'Array') return arrayOf(fromTs(type.args[0]));
      if (type.name === 'Record' && type.args[0].name === 'string') return recordOf(fromTs(type.args[1]));
      if (DECLS.aliases[type.name]) return fromTs(DECLS.aliases[type.name]);
      if (DECLS.interfaces[type.name]) return objectNamed(type.name);
      return { k: 'unknown', key: type.name };
    }
    default:
      return { k: type.k, key: type.k };
  }
}

/** Every difference between the schema objects and index.d.ts, by path. */
function checkDeclarations(schema) {
  const problems = [];
  const done = new Set();
  const queue = [];
  for (const [name, object] of Object.entries(schema)) queue.push([name, object, object.$defs || {}, TS_NAMES[name] ?? name]);
  while (queue.length) {
    const [path, node, defs, tsName] = queue.shift();
    if (done.has(tsName)) continue;
    done.add(tsName);
    if (node.oneOf) {
      const alias = DECLS.aliases[tsName];
      if (!alias) {
        problems.push(`${path}: no type ${tsName} in index.d.ts`);
        continue;
      }
      const want = fromSchema(node, defs);
      const got = fromTs(alias);
      if (want.key !== got.key) problems.push(`${path}: the schema says ${want.key}, index.d.ts ${got.key}`);
      for (const alt of node.oneOf) {
        const refName = alt.$ref.replace('#/$defs/', '');
        queue.push([`${path}.${refName}`, defs[refName], defs, TS_NAMES[refName] ?? refName]);
      }
      continue;
    }
    const members = membersOf(tsName);
    if (!members) {
      problems.push(`${path}: no interface ${tsName} in index.d.ts`);
      continue;
    }
    const required = new Set(node.required || []);
    for (const [prop, propSchema] of Object.entries(node.properties)) {
      const member = members[prop];
      if (!member) {
        problems.push(`${path}.${prop}: in the schema, not in index.d.ts ${tsName}`);
        continue;
      }
      if (member.optional && required.has(prop)) problems.push(`${path}.${prop}: required by the schema, optional in index.d.ts`);
      if (!member.optional && !required.has(prop) && !ANSWER_ONLY.has(tsName)) {
        problems.push(`${path}.${prop}: the schema has a default, index.d.ts makes it required`);
      }
      const want = fromSchema(propSchema, defs);
      const got = fromTs(member.type);
      if (want.key !== got.key) problems.push(`${path}.${prop}: the schema says ${want.key}, index.d.ts ${got.key}`);
      // Nested objects are checked in turn.
      const nested = [];
      const collect = (d) => (d.k === 'union' ? d.of.forEach(collect) : d.k === 'array' || d.k === 'record' ? collect(d.of) : d.k === 'object' && nested.push(d.name));
      collect(want);
      for (const nestedName of nested) {
        const refName = Object.keys(defs).find((n) => (TS_NAMES[n] ?? n) === nestedName);
        if (refName) queue.push([`${path}.${prop}`, defs[refName], defs, nestedName]);
      }
    }
    for (const prop of Object.keys(members)) {
      if (!(prop in node.properties)) problems.push(`${path}.${prop}: in index.d.ts ${tsName}, not in the schema`);
    }
  }
  return problems;
}

test('index.d.ts declares every object of the schema, field by field', () => {
  assert.deepEqual(checkDeclarations(SCHEMA), []);
});

test('the declaration check catches a property added to the schema, nested or not', () => {
  const changed = structuredClone(SCHEMA);
  changed.Model.properties.license = { type: 'string' };
  changed.Model.$defs.ModelParam.properties.unit = { type: 'string' };
  changed.StatusFlag.$defs.StatusFlagName.enum.push('New_Flag');
  changed.Account.required.push('id');
  const problems = checkDeclarations(changed);
  assert.ok(problems.includes('Model.license: in the schema, not in index.d.ts Model'), problems.join('\n'));
  assert.ok(problems.includes('Model.inputs.parameters.unit: in the schema, not in index.d.ts ModelParam'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('StatusFlag.flag_name: the schema says') && p.includes('"New_Flag"')), problems.join('\n'));
  assert.ok(problems.includes('Account.id: required by the schema, optional in index.d.ts'), problems.join('\n'));
});

// ---------- the helpers of lib/client.cjs against the schema ----------

/** Where `value` does not fit schema node `node` (a subset of JSON Schema: what the schema uses). */
function validate(value, node, defs, path = '$', out = []) {
  if (node.$ref) return validate(value, defs[node.$ref.replace('#/$defs/', '')], defs, path, out);
  if (node.anyOf || node.oneOf) {
    const alts = node.anyOf || node.oneOf;
    if (!alts.some((alt) => validate(value, alt, defs, path, []).length === 0)) out.push(`${path}: fits none of ${alts.length} alternatives: ${JSON.stringify(value)}`);
    return out;
  }
  if ('const' in node && value !== node.const) out.push(`${path}: not ${JSON.stringify(node.const)}`);
  if (node.enum && !node.enum.includes(value)) out.push(`${path}: ${JSON.stringify(value)} is not one of ${node.enum.join(', ')}`);
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  const fits = {
    string: type === 'string',
    integer: Number.isInteger(value),
    number: type === 'number',
    boolean: type === 'boolean',
    null: type === 'null',
    array: type === 'array',
    object: type === 'object',
  };
  if (node.type && !fits[node.type]) {
    out.push(`${path}: ${JSON.stringify(value)} is not ${node.type}`);
    return out;
  }
  if (type === 'array') value.forEach((v, i) => validate(v, node.items ?? node.prefixItems?.[i] ?? {}, defs, `${path}[${i}]`, out));
  if (type === 'object' && node.properties) {
    for (const r of node.required || []) if (!(r in value)) out.push(`${path}.${r}: required, missing`);
    for (const [k, v] of Object.entries(value)) {
      if (!(k in node.properties)) out.push(`${path}.${k}: not in the schema`);
      else validate(v, node.properties[k], defs, `${path}.${k}`, out);
    }
  } else if (type === 'object' && node.additionalProperties) {
    for (const [k, v] of Object.entries(value)) validate(v, node.additionalProperties, defs, `${path}.${k}`, out);
  }
  return out;
}
const validateAs = (value, name) => validate(value, SCHEMA[name], SCHEMA[name].$defs || {});

/** An example of a schema object with every property set (first enum value, first alternative). */
function example(node, defs) {
  if (node.$ref) return example(defs[node.$ref.replace('#/$defs/', '')], defs);
  if ('const' in node) return node.const;
  if (node.enum) return node.enum[0];
  if (node.anyOf || node.oneOf) return example((node.anyOf || node.oneOf).find((n) => n.type !== 'null'), defs);
  switch (node.type) {
    case 'string':
      return 'x1';
    case 'integer':
    case 'number':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [example(node.items, defs)];
    default:
      return Object.fromEntries(Object.entries(node.properties || {}).map(([k, v]) => [k, example(v, defs)]));
  }
}
const exampleOf = (name) => example(SCHEMA[name], SCHEMA[name].$defs || {});

const isCode = (code) => (e) => {
  assert.ok(e instanceof NormanError, `expected a NormanError, got ${e}`);
  assert.equal(e.code, code, e.message);
  return true;
};

test('newModel, whereEquals and whereIn make objects of the schema', () => {
  assert.deepEqual(validateAs(newModel('acc', 'n', 'v1', 'File', 'Logo'), 'Model'), []);
  assert.deepEqual(validateAs(whereEquals('Models', 'Name', 'x'), 'QueryConstraints'), []);
  assert.deepEqual(validateAs(whereEquals('Models', 'Count', 3), 'QueryConstraints'), []);
  assert.deepEqual(validateAs(whereIn('Models', 'ID', 'a', 'b'), 'QueryConstraints'), []);
  // The validator itself refuses what does not fit.
  assert.ok(validateAs({ ...newModel('acc', 'n', 'v1'), license: 'x' }, 'Model').some((p) => p.includes('license')));
  assert.ok(validateAs({ ...newModel('acc', 'n', 'v1'), model_type: 'Onnx' }, 'Model').length > 0);
});

test('the bodies pair(), complete() and submit*Links() send, and the pairings upload() takes, are the schema objects', async () => {
  const seen = [];
  const srv = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    seen.push({ url: req.url, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') });
    const answer = req.url.includes('file-pull/upload') ? '["id-1"]' : '{}';
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length });
    res.end(answer);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const c = new Client({ baseUrl: `http://127.0.0.1:${srv.address().port}/v0/`, token: 'tok', retries: 0 });
  try {
    await c.pair({ kind: 'asset', accountId: 'a', modelId: 'm', assetId: 's' }, 5);
    await c.pair({ kind: 'input', accountId: 'a', modelId: 'm', invocationId: 'i', inputId: 'n' }, 5);
    await c.complete('p', '0123456789abcdef');
    const sent = [
      ['SocketAssetPairingRequest', '/v0/file-push/socket/pair/asset'],
      ['SocketInputPairingRequest', '/v0/file-push/socket/pair/input'],
      ['ChecksumRequest', '/v0/file-push/socket/complete'],
    ];
    for (const [i, [name, url]] of sent.entries()) {
      assert.equal(seen[i].url, url);
      assert.deepEqual(validateAs(seen[i].body, name), [], name);
      assert.deepEqual(Object.keys(seen[i].body).sort(), Object.keys(SCHEMA[name].properties).sort(), name);
    }
    // submit*Links: an example with every property is sent as it is; one without any required
    // property is refused before anything is sent.
    const links = { submitAssetLinks: 'AssetDownloadRequest', submitInputLinks: 'InputDownloadRequest', submitOutputLinks: 'OutputDownloadRequest' };
    for (const [method, name] of Object.entries(links)) {
      const full = exampleOf(name);
      assert.deepEqual(await c[method](full), ['id-1']);
      assert.deepEqual(seen.at(-1).body, full, name);
      for (const prop of SCHEMA[name].required) {
        const { [prop]: _, ...partial } = full;
        const before = seen.length;
        await assert.rejects(c[method](partial), isCode('NORMAN_ERROR_INVALID_ARGUMENT'), `${name} without ${prop}`);
        assert.equal(seen.length, before, `${name} without ${prop} was sent`);
      }
    }
    // upload(pairing): every field of SocketPairingResponse is read; without one, INVALID_PAIRING.
    const pairing = { ...exampleOf('SocketPairingResponse'), port: 1 };
    for (const prop of SCHEMA.SocketPairingResponse.required) {
      const { [prop]: _, ...partial } = pairing;
      assert.throws(() => c.upload(partial), isCode('NORMAN_ERROR_INVALID_PAIRING'), `a pairing without ${prop}`);
    }
  } finally {
    await c.close();
    srv.close();
  }
});
