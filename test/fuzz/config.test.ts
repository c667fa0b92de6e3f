/**
 * Property-based fuzzing of config.json (lib/config.ts), from the fixtures' and the
 * release configs (bench/configs): mutated JSON values and mutated bytes give a
 * ModelConfig or InternVLError ERR_CONFIG, nothing else; configs that parse then load
 * against a fixture checkpoint with ERR_CHECKPOINT / ERR_CONFIG / ERR_INVALID_ARG or
 * succeed, quickly (the engine sizes loops and tensors from these numbers).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ModelConfig, parseModelConfig, readModelConfigSync } from '../../lib/config.js';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { fixturesDir } from '../helpers/goldens.js';
import { type Json, expectTyped, fuzzLoop, fuzzSeed, iterations, jsonKeys, mutateBytes, mutateJson } from './mutate.js';

const benchConfigs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'configs');
const FIXTURES = ['tiny-internlm2', 'tiny-phi3', 'tiny-qwen2', 'tiny-yi'];
const seeds: Array<{ name: string; json: Json }> = [
  ...FIXTURES.map((m) => ({ name: m, json: JSON.parse(readFileSync(join(fixturesDir, 'models', m, 'config.json'), 'utf8')) as Json })),
  ...readdirSync(benchConfigs)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ name: f, json: JSON.parse(readFileSync(join(benchConfigs, f), 'utf8')) as Json })),
];
const keys = [...new Set(seeds.flatMap((s) => jsonKeys(s.json)))];

function parseOrTyped(json: Json): ModelConfig | undefined {
  try {
    return parseModelConfig(json);
  } catch (e) {
    expectTyped(e, ['ERR_CONFIG']);
    return undefined;
  }
}

test('mutated config values: a ModelConfig or ERR_CONFIG', async () => {
  let parsed = 0;
  const n = iterations(4000);
  await fuzzLoop('config-values', fuzzSeed(21), n, (rng, _i, record) => {
    const json = mutateJson(rng, rng.pick(seeds).json, keys);
    record(json);
    const c = parseOrTyped(json);
    if (!c) return;
    parsed++;
    // what a parsed config promises the engine
    const { vision, llm } = c.spec;
    for (const v of [vision.hiddenSize, vision.numLayers, llm.hiddenSize, llm.numLayers, llm.headDim, c.numImageToken, c.contextLength]) {
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`parsed config has size ${v}`);
    }
    if (vision.numLayers > 1024 || llm.numLayers > 1024) throw new Error('layer count beyond the bound');
    if (c.selectLayer >= 0 || c.selectLayer < -vision.numLayers) throw new Error(`select_layer ${c.selectLayer} passed`);
  });
  expect(parsed).toBeGreaterThan(n / 10);
});

test('mutated config.json bytes: a ModelConfig or ERR_CONFIG', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-config-'));
  try {
    const texts = seeds.map((s) => Buffer.from(JSON.stringify(s.json, null, 1)));
    await fuzzLoop('config-bytes', fuzzSeed(22), iterations(1500), (rng, _i, record) => {
      const bytes = mutateBytes(rng, rng.pick(texts), texts);
      record(bytes);
      writeFileSync(join(dir, 'config.json'), bytes);
      try {
        readModelConfigSync(dir);
      } catch (e) {
        expectTyped(e, ['ERR_CONFIG']);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config asking for absurd sizes is refused before the engine sees it', () => {
  type Config = Record<string, Record<string, unknown> | number>;
  type Sub = Record<string, unknown>;
  const base = seeds[0].json as Config;
  const cases: Array<[string, (c: Config) => void, string]> = [
    ['llm layers', (c) => ((c.llm_config as Sub).num_hidden_layers = 1e9), 'llm_config.num_hidden_layers must be at most 1024'],
    ['vision layers', (c) => ((c.vision_config as Sub).num_hidden_layers = 2 ** 40), 'vision_config.num_hidden_layers must be at most 1024'],
    ['hidden size', (c) => ((c.llm_config as Sub).hidden_size = 2 ** 52), 'llm_config.hidden_size must be at most 16777216'],
    ['image size', (c) => (c.force_image_size = 14 * 2 ** 20), 'force_image_size must be at most 16384'],
  ];
  for (const [, edit, message] of cases) {
    const c = structuredClone(base);
    edit(c);
    expect(() => parseModelConfig(c as Json)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining(message) }));
  }
});

test('configs that parse load against a fixture checkpoint with a typed error or succeed, quickly', async () => {
  const loads = { ok: 0, refused: 0 };
  await fuzzLoop('config-load', fuzzSeed(23), iterations(120), async (rng, _i, record) => {
    const k = rng.below(FIXTURES.length);
    let config: ModelConfig | undefined;
    let json: Json = null;
    for (let tries = 0; tries < 20 && !config; tries++) {
      json = mutateJson(rng, seeds[k].json, keys); // the fixture's own config, mutated
      if (rng.chance(0.6) && json !== null && typeof json === 'object' && !Array.isArray(json)) {
        // and one of its sizes nudged: a config that still parses but disagrees with the weights
        const sub = json[rng.pick(['vision_config', 'llm_config'])];
        if (sub && typeof sub === 'object' && !Array.isArray(sub)) {
          const numeric = Object.keys(sub).filter((key) => typeof sub[key] === 'number');
          if (numeric.length) {
            const key = rng.pick(numeric);
            sub[key] = rng.pick([(sub[key] as number) * 2, (sub[key] as number) + 1, (sub[key] as number) - 1, 1, 2, 1024, 4096]);
          }
        }
      }
      config = parseOrTyped(json);
    }
    if (!config) return;
    record(json);
    const t0 = Date.now();
    try {
      const m = await EngineModel.load(join(fixturesDir, 'models', FIXTURES[k]), { imageContextTokenId: 7, threads: 1, kvCacheTokens: 256, config });
      m.dispose();
      loads.ok++;
    } catch (e) {
      expectTyped(e, ['ERR_CHECKPOINT', 'ERR_CONFIG', 'ERR_INVALID_ARG', 'ERR_OOM']);
      loads.refused++;
    }
    const ms = Date.now() - t0;
    if (ms > 5000) throw new Error(`loading took ${ms} ms`);
  });
  expect(loads.ok + loads.refused).toBeGreaterThan(60);
  expect(loads.refused).toBeGreaterThan(10);
});
