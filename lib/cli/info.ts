/** `internvl info`: what this build can run on and, with -m, what a checkpoint is and needs. */
import { Command, Option } from 'commander';
import { type DeviceMapSpec, formatDevicePlan, planDeviceMap } from '../deviceMap.js';
import { InternVLError } from '../errors.js';
import { type ModelConfig, readModelConfig } from '../config.js';
import { runtimeInfo } from '../native.js';
import type { NativeInfo } from '../nativeTypes.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { resolveModel } from '../hub/pull.js';
import { isHubModelRef } from '../hub/repoId.js';
import { reportError } from './errors.js';
import { deviceMapOption, intOption } from './options.js';
import { type ModelSummary, formatCount, summarizeModel } from './modelSummary.js';
import { colorEnabled, formatBytes, palette } from './progress.js';

const GiB = 1024 ** 3;
/** The engine's default KV cache (EngineOptions::kDefaultKvCacheTokens). */
const DEFAULT_KV_TOKENS = 8192;

interface ModelReport {
  dir: string;
  config: ModelConfig;
  tokenizer: { kind: string; vocabSize: number };
  summary: ModelSummary;
}

function describeModel(r: ModelReport, info: NativeInfo, bold: (s: string) => string): string {
  const { config: c, summary: s } = r;
  const v = c.spec.vision;
  const l = c.spec.llm;
  const vitStyle = v.qkNorm ? 'InternViT-6B style' : 'InternViT-300M style';
  const lines = [
    `${bold('model')}      ${r.dir}`,
    `  family     ${l.family} (${c.llmArchitecture}) + ${vitStyle}; template ${c.template}; tokenizer ${r.tokenizer.kind} (${r.tokenizer.vocabSize} tokens)`,
    `  vision     ${v.numLayers} layers, hidden ${v.hiddenSize}, ${v.numHeads} heads, MLP ${v.intermediateSize}, ${v.normType === 'layer_norm' ? 'LayerNorm' : 'RMSNorm'}`,
    `  language   ${l.numLayers} layers, hidden ${l.hiddenSize}, ${l.numHeads} heads / ${l.numKvHeads} KV heads × ${l.headDim}, MLP ${l.intermediateSize}, vocab ${s.vocabRows}, context ${c.contextLength}`,
    `  tiles      ${c.forceImageSize} px, ${c.minDynamicPatch}–${c.maxDynamicPatch} per image${c.useThumbnail ? ' + thumbnail' : ''}, ${c.numImageToken} tokens per tile`,
    `  parameters ${formatCount(s.total.params)} (vision ${formatCount(s.vision.params)}, projector ${formatCount(s.projector.params)}, language ${formatCount(s.language.params)})` +
      (s.source === 'config' ? ' — computed from config.json (no safetensors found)' : ''),
    `  weights    bf16 ${formatBytes(s.total.bf16Bytes)}; int8 ${formatBytes(s.total.int8Bytes)} (--dtype int8: decoder linears, per-channel scales)`,
    `  KV cache   ${formatBytes(s.kvPer1kTokens.bf16)} per 1k tokens on CUDA (bf16), ${formatBytes(s.kvPer1kTokens.f32)} on the CPU (f32); default ${DEFAULT_KV_TOKENS} tokens`,
  ];
  const need = (weights: number) => weights + (s.kvPer1kTokens.bf16 * DEFAULT_KV_TOKENS) / 1000;
  for (const d of info.cuda.devices) {
    const fits = (bytes: number) => (bytes <= d.freeMemory ? 'fits' : 'does not fit');
    lines.push(
      `  GPU ${d.index}      bf16 + ${DEFAULT_KV_TOKENS}-token cache ${formatBytes(need(s.total.bf16Bytes))} ${fits(need(s.total.bf16Bytes))}, ` +
        `int8 ${formatBytes(need(s.total.int8Bytes))} ${fits(need(s.total.int8Bytes))} in ${formatBytes(d.freeMemory)} free`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function infoCommand(): Command {
  return new Command('info')
    .description("show the addon build, backends and GPUs (and a checkpoint's sizes and memory needs with -m)")
    .option('-m, --model <dir>', 'checkpoint directory or Hub id to describe (only config, tokenizer and safetensors headers are read; a Hub id fetches config and tokenizer only)')
    .option('--device-map <map>', 'with -m: print how auto, card or an explicit map splits the model over the GPUs, with memory per device', deviceMapOption)
    .addOption(new Option('--dtype <type>', 'with --device-map: plan for these weights').choices(['bf16', 'int8']).default('bf16'))
    .option('--kv-cache-tokens <n>', 'with --device-map: KV cache capacity to plan for', intOption('--kv-cache-tokens', 16, 2 ** 30), DEFAULT_KV_TOKENS)
    .option('--json', 'print JSON')
    .option('--verbose', 'print stacks on errors')
    .action(async (flags: { model?: string; deviceMap?: DeviceMapSpec; dtype: 'bf16' | 'int8'; kvCacheTokens: number; json?: boolean; verbose?: boolean }) => {
      try {
        const info = runtimeInfo();
        let model: ModelReport | undefined;
        if (flags.model) {
          // a Hub id: only config and tokenizer files are fetched; sizes then come from config.json
          const dir = isHubModelRef(flags.model) ? await resolveModel(flags.model, { files: 'tokenizer' }) : flags.model;
          const config = await readModelConfig(dir);
          const tok = await loadTokenizer(dir);
          model = { dir: flags.model, config, tokenizer: { kind: tok.kind, vocabSize: tok.vocabSize }, summary: await summarizeModel(dir, config) };
        }
        if (flags.deviceMap !== undefined && !model) throw new InternVLError('ERR_INVALID_ARG', '--device-map needs -m <dir>');
        // The plan, before anything loads: GPUs as found (none: CPU devices, no memory check).
        const plan =
          model && flags.deviceMap !== undefined
            ? planDeviceMap(model.config.spec, flags.deviceMap, {
                gpuFreeBytes: info.cuda.devices.map((d) => d.freeMemory),
                dtype: flags.dtype,
                kvCacheTokens: flags.kvCacheTokens,
              })
            : undefined;
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ runtime: info, model, ...(plan ? { devicePlan: plan } : {}) }, null, 2)}\n`);
          return;
        }
        const c = palette(colorEnabled(process.stdout));
        process.stdout.write(`${c.bold('internvl-node')} addon ${info.version}; backends: ${info.backends.join(', ')}; ${info.hardwareConcurrency} CPU threads\n`);
        if (info.cuda.devices.length === 0) process.stdout.write(`CUDA: ${info.cuda.problem ?? 'none'}\n`);
        for (const d of info.cuda.devices) {
          process.stdout.write(
            `GPU ${d.index}: ${d.name} (sm_${d.computeCapability.replace('.', '')}, ${d.multiprocessors} SMs), ` +
              `${(d.freeMemory / GiB).toFixed(1)} GiB free of ${(d.totalMemory / GiB).toFixed(1)} GiB\n`,
          );
        }
        if (model) process.stdout.write(describeModel(model, info, c.bold));
        if (plan) process.stdout.write(`${c.bold('device map')} (${flags.dtype}, ${flags.kvCacheTokens}-token KV cache)\n${formatDevicePlan(plan)}\n`);
      } catch (e) {
        reportError(e, flags.verbose ?? false);
      }
    });
}
