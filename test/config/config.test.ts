/**
 * config.json -> ModelConfig: the real release configs (bench/configs, copies of the
 * official files' fields) and clear ERR_CONFIG messages naming the field.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModelConfig, readModelConfig, readModelConfigSync } from '../../lib/config.js';
import { InternVLError } from '../../lib/errors.js';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'configs');
const release = (name: string) => JSON.parse(readFileSync(join(benchDir, `InternVL2-${name}.json`), 'utf8'));

describe('release configs', () => {
  test.each([
    ['1B', 'qwen2', 'Hermes-2', 896, 14, 2, 64, 'layer_norm'],
    ['2B', 'internlm2', 'internlm2-chat', 2048, 16, 8, 128, 'layer_norm'],
    ['4B', 'phi3', 'phi3-chat', 3072, 32, 32, 96, 'layer_norm'],
    ['8B', 'internlm2', 'internlm2-chat', 4096, 32, 8, 128, 'layer_norm'],
    ['26B', 'internlm2', 'internlm2-chat', 6144, 48, 8, 128, 'rms_norm'],
    ['40B', 'llama', 'Hermes-2', 7168, 56, 8, 128, 'rms_norm'],
    ['76B', 'llama', 'internlm2-chat', 8192, 64, 8, 128, 'rms_norm'],
  ])('InternVL2-%s', (name, family, template, hidden, heads, kv, headDim, norm) => {
    const c = parseModelConfig(release(name));
    expect(c.family).toBe(family);
    expect(c.template).toBe(template);
    expect(c.forceImageSize).toBe(448);
    expect(c.numImageToken).toBe(256);
    expect(c.maxDynamicPatch).toBe(12);
    expect(c.minDynamicPatch).toBe(1);
    expect(c.useThumbnail).toBe(true);
    expect(c.dynamicImageSize).toBe(true);
    expect(c.spec.llm).toMatchObject({ hiddenSize: hidden, numHeads: heads, numKvHeads: kv, headDim });
    expect(c.spec.vision.normType).toBe(norm);
    expect(c.spec.vision.qkNorm).toBe(norm === 'rms_norm');
    expect(c.spec.vision.qkvBias).toBe(norm === 'layer_norm');
    expect(c.spec).toMatchObject({ tileSize: 448, downsampleRatio: 0.5, selectLayer: -1, numImageToken: 256 });
  });

  test('per-family details: biases, tie flag, rope scaling', () => {
    const q = parseModelConfig(release('1B')).spec.llm;
    expect(q).toMatchObject({ qkvBias: true, oBias: false, tieWordEmbeddings: true, ropeScaling: { type: 'none' }, rmsEps: 1e-6 });
    const i = parseModelConfig(release('26B')).spec.llm;
    expect(i).toMatchObject({ qkvBias: false, oBias: false, ropeScaling: { type: 'dynamic', factor: 3 } });
    const p = parseModelConfig(release('4B'));
    expect(p.llmArchitecture).toBe('Phi3ForCausalLM');
    const rs = p.spec.llm.ropeScaling;
    expect(rs.type).toBe('su');
    if (rs.type !== 'su') throw new Error('unreachable');
    expect(rs.originalMaxPositionEmbeddings).toBe(4096);
    expect(rs.shortFactor).toHaveLength(48);
    expect(rs.attentionFactor).toBeCloseTo(1.190238, 6); // √(1 + ln 32 / ln 4096)
    expect(parseModelConfig(release('40B')).spec.llm).toMatchObject({ ropeTheta: 5e6, qkvBias: false, ropeScaling: { type: 'none' } });
  });

  test('readModelConfig reads a directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ivl-config-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify(release('2B')));
      expect((await readModelConfig(dir)).family).toBe('internlm2');
      expect(readModelConfigSync(dir).llmArchitecture).toBe('InternLM2ForCausalLM');
      writeFileSync(join(dir, 'config.json'), '{"template": ');
      await expect(readModelConfig(dir)).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/config\.json is not valid JSON/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await expect(readModelConfig(join(dir, 'nope'))).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      message: `${join(dir, 'nope', 'config.json')} does not exist`,
    });
  });
});

describe('invalid configs name the field', () => {
  // Each case edits a copy of the 2B config.
  const cases: Array<[string, (c: any) => void, string]> = [
    ['missing llm_config', (c) => delete c.llm_config, 'config.json: llm_config is missing'],
    ['vision_config not an object', (c) => (c.vision_config = 3), 'config.json: vision_config must be an object (got 3)'],
    [
      'unknown architecture',
      (c) => (c.llm_config.architectures = ['MistralForCausalLM']),
      'config.json: llm_config.architectures names an unknown architecture; supported: LlamaForCausalLM, InternLM2ForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM (got "MistralForCausalLM")',
    ],
    ['no architectures', (c) => delete c.llm_config.architectures, 'config.json: llm_config.architectures must be a non-empty array naming the LLM class'],
    ['unknown template', (c) => (c.template = 'vicuna_v1.1'), 'config.json: template is not a known chat template; supported: Hermes-2, internlm2-chat, phi3-chat (got "vicuna_v1.1")'],
    ['missing template', (c) => delete c.template, 'config.json: template is missing'],
    ['string size', (c) => (c.llm_config.hidden_size = '2048'), 'config.json: llm_config.hidden_size must be a positive integer (got "2048")'],
    ['missing size', (c) => delete c.vision_config.num_hidden_layers, 'config.json: vision_config.num_hidden_layers is missing'],
    ['heads vs kv heads', (c) => (c.llm_config.num_key_value_heads = 3), 'config.json: llm_config.num_attention_heads must be a multiple of num_key_value_heads (3) (got 16)'],
    ['bad eps', (c) => (c.llm_config.rms_norm_eps = -1), 'config.json: llm_config.rms_norm_eps must be a positive number (got -1)'],
    ['unsupported rope', (c) => (c.llm_config.rope_scaling = { type: 'yarn', factor: 4 }), `config.json: llm_config.rope_scaling.type "yarn" is not supported for internlm2 (supported: 'dynamic')`],
    ['ps_version v1', (c) => (c.ps_version = 'v1'), `config.json: ps_version must be 'v2' (InternVL2's pixel shuffle) (got "v1")`],
    ['tile size', (c) => (c.force_image_size = 450), 'config.json: force_image_size must be a multiple of vision_config.patch_size (14) (got 450)'],
    ['select_layer', (c) => (c.select_layer = 0), 'config.json: select_layer must be between -24 and -1 (got 0)'],
    ['norm type', (c) => (c.vision_config.norm_type = 'batch_norm'), `config.json: vision_config.norm_type must be 'layer_norm' or 'rms_norm' (got "batch_norm")`],
    ['activation', (c) => (c.llm_config.hidden_act = 'gelu'), `config.json: llm_config.hidden_act must be 'silu' (got "gelu")`],
    ['top level', (c) => Object.keys(c).forEach((k) => delete c[k]), 'config.json: template is missing'],
  ];
  test.each(cases)('%s', (_name, edit, message) => {
    const c = release('2B');
    edit(c);
    let err: unknown;
    try {
      parseModelConfig(c);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InternVLError);
    expect(err).toMatchObject({ code: 'ERR_CONFIG', message });
  });

  test('phi3 su factors must match head_dim / 2', () => {
    const c = release('4B');
    c.llm_config.rope_scaling.long_factor = [1, 2];
    expect(() => parseModelConfig(c)).toThrow('config.json: llm_config.rope_scaling.long_factor must have 48 entries (head_dim / 2) (got "2 entries")');
  });

  test('not an object', () => {
    expect(() => parseModelConfig([1])).toThrow('config.json: the top level must be a JSON object (got an array)');
  });
});
