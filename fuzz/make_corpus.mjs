#!/usr/bin/env node
// Writes the seed corpus of the native fuzz targets (fuzz/corpus/<target>/) from the
// tiny checkpoints in test/fixtures/models (their safetensors headers, index and
// config files: header bytes only, no weights) plus hand-made edge cases. Run it
// again after the fixtures change; the output is deterministic.
//
//   node fuzz/make_corpus.mjs
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const models = join(root, 'test', 'fixtures', 'models');
const out = join(root, 'fuzz', 'corpus');

const seeds = { json: new Map(), safetensors_header: new Map(), checkpoint_index: new Map() };
const add = (target, name, bytes) => seeds[target].set(name, Buffer.from(bytes));

/** [u32 zero-data bytes][u64 header length][header] as fuzz/safetensors_header.cpp reads it. */
function stSeed(header, dataBytes) {
  const h = Buffer.from(header);
  const b = Buffer.alloc(12 + h.length);
  b.writeUInt32LE(dataBytes, 0);
  b.writeBigUInt64LE(BigInt(h.length), 4);
  h.copy(b, 12);
  return b;
}

for (const model of readdirSync(models).sort()) {
  const dir = join(models, model);
  for (const file of readdirSync(dir).sort()) {
    const path = join(dir, file);
    if (file.endsWith('.safetensors')) {
      const bytes = readFileSync(path);
      const n = Number(bytes.readBigUInt64LE(0));
      const header = bytes.subarray(8, 8 + n);
      const dataBytes = statSync(path).size - 8 - n;
      add('safetensors_header', `${model}-${file}`, stSeed(header, dataBytes));
      add('json', `${model}-${file}.header.json`, header);
    } else if (file.endsWith('.json')) {
      add('json', `${model}-${file}`, readFileSync(path));
    }
  }
}

// Hand-made safetensors headers: the shapes of every rule the reader checks.
const t = (dtype, shape, begin, end) => ({ dtype, shape, data_offsets: [begin, end] });
const stCases = {
  'empty-object': [{}, 0],
  'metadata-only': [{ __metadata__: { format: 'pt' } }, 0],
  'one-bf16': [{ w: t('BF16', [2, 3], 0, 12) }, 12],
  'empty-tensor': [{ e: t('F32', [0, 4], 0, 0), w: t('F32', [1], 0, 4) }, 4],
  'scalar': [{ s: t('F64', [], 0, 8) }, 8],
  'all-dtypes': [
    Object.fromEntries(
      ['BOOL', 'U8', 'I8', 'F8_E4M3', 'F8_E5M2', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'].map((d, i) => [
        `t${i}`,
        t(d, [1], i * 8, i * 8 + ({ I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8 }[d] ?? 1)),
      ]),
    ),
    120,
  ],
  'overlap': [{ a: t('F32', [2], 0, 8), b: t('F32', [2], 4, 12) }, 12],
  'out-of-range': [{ a: t('F32', [4], 0, 16) }, 8],
  'huge-shape': [{ a: t('U8', [4611686018427387904, 2, 0], 0, 0) }, 0],
};
for (const [name, [header, data]] of Object.entries(stCases)) {
  add('safetensors_header', `hand-${name}`, stSeed(JSON.stringify(header), data));
}
// Padded with spaces (as writers align the data), and a length larger than the file.
add('safetensors_header', 'hand-space-padded', stSeed(`${JSON.stringify({ w: t('F16', [2], 0, 4) })}        `, 4));
{
  const b = stSeed('{}', 0);
  b.writeBigUInt64LE(0xffffffffffffffffn, 4);
  add('safetensors_header', 'hand-length-too-large', b);
}

// Hand-made JSON: the grammar's corners.
const jsonCases = {
  'escapes': '["\\"\\\\\\/\\b\\f\\n\\r\\t", "\\u00e9\\ud83d\\ude00", "\\u0000"]',
  'numbers': '[0, -0, 1.5e3, -2E-7, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1e308, 123456789012345678901234567890]',
  'nested': `${'['.repeat(100)}${']'.repeat(100)}`,
  'literals': '{"a": true, "b": false, "c": null, "d": {}, "e": []}',
  'utf8': '{"clé": "värde ✓ 漢字 \u{1F600}"}',
  'whitespace': ' \t\r\n{ "k" : [ 1 , 2 ] } \n',
};
for (const [name, text] of Object.entries(jsonCases)) add('json', `hand-${name}`, text);

// Index files for fuzz/checkpoint_index.cpp's tree: a.safetensors {x, y}, b.safetensors {z},
// d.safetensors/ (a directory), link.safetensors -> ../evil.safetensors.
const index = (map) => JSON.stringify({ metadata: { total_size: 60 }, weight_map: map });
const idxCases = {
  'valid': index({ x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' }),
  'valid-link': index({ x: 'link.safetensors', y: 'a.safetensors' }),
  'traversal': index({ x: '../evil.safetensors' }),
  'absolute': index({ x: '/etc/passwd' }),
  'directory': index({ x: 'd.safetensors' }),
  'missing-file': index({ x: 'nope.safetensors' }),
  'missing-tensor': index({ w: 'a.safetensors' }),
  'wrong-type': index({ x: 7 }),
  'no-weight-map': JSON.stringify({ metadata: {} }),
  'dot': index({ x: '.', y: '..' }),
};
for (const [name, text] of Object.entries(idxCases)) add('checkpoint_index', `hand-${name}`, text);
add('checkpoint_index', 'tiny-yi-index', readFileSync(join(models, 'tiny-yi', 'model.safetensors.index.json')));

rmSync(out, { recursive: true, force: true });
let total = 0;
for (const [target, files] of Object.entries(seeds)) {
  mkdirSync(join(out, target), { recursive: true });
  for (const [name, bytes] of files) {
    writeFileSync(join(out, target, name), bytes);
    total += bytes.length;
  }
  console.log(`${target}: ${files.size} seeds`);
}
console.log(`corpus: ${(total / 1024).toFixed(1)} KiB in ${out}`);
