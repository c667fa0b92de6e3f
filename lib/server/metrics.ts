/**
 * GET /metrics: the engine's live numbers and the server's request counts in the Prometheus
 * text format (version 0.0.4), so a service embedding the model can be scraped like vLLM or
 * TGI. Everything comes from model.stats() at scrape time plus counters the server keeps;
 * nothing here is sampled or averaged. Queue wait and time to first token are summaries
 * without quantiles (_sum / _count): a scraper derives means over any window from them.
 */
import type { NativeModelStats } from '../nativeTypes.js';

/** What the server counts itself (responses by route and status, tokens it returned). */
export class ServerCounters {
  /** `${route} ${status}` → responses */
  readonly responses = new Map<string, number>();
  promptTokens = 0;
  completionTokens = 0;

  response(route: string, status: number): void {
    const key = `${route} ${status}`;
    this.responses.set(key, (this.responses.get(key) ?? 0) + 1);
  }
}

type Kind = 'counter' | 'gauge' | 'summary';

/** Label values in the exposition format: backslash, quote and newline escaped. */
const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

class Exposition {
  private readonly lines: string[] = [];

  metric(name: string, kind: Kind, help: string, samples: Array<[Record<string, string>, number]> | number): void {
    this.lines.push(`# HELP internvl_${name} ${help}`, `# TYPE internvl_${name} ${kind}`);
    const rows: Array<[Record<string, string>, number]> = typeof samples === 'number' ? [[{}, samples]] : samples;
    for (const [labels, value] of rows) {
      const ls = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`);
      this.lines.push(`internvl_${name}${ls.length ? `{${ls.join(',')}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    }
  }

  /** A summary without quantiles: name_sum and name_count under one TYPE line. */
  summary(name: string, help: string, sum: number, count: number): void {
    this.lines.push(`# HELP internvl_${name} ${help}`, `# TYPE internvl_${name} summary`);
    this.lines.push(`internvl_${name}_sum ${sum}`, `internvl_${name}_count ${count}`);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** The exposition for one scrape. `inflight`: requests the server holds now. */
export function renderMetrics(st: NativeModelStats, server: ServerCounters, inflight: number): string {
  const e = new Exposition();
  e.metric('requests_inflight', 'gauge', 'Chat completion requests the server holds (running or waiting).', inflight);
  e.metric(
    'http_responses_total',
    'counter',
    'HTTP responses by route and status.',
    [...server.responses].map(([key, n]) => {
      const [route, status] = key.split(' ');
      return [{ route, status }, n];
    }),
  );
  e.metric('prompt_tokens_total', 'counter', 'Prompt tokens of completed chat completions.', server.promptTokens);
  e.metric('generation_tokens_total', 'counter', 'Tokens returned by completed chat completions.', server.completionTokens);
  e.metric('engine_requests_queued', 'gauge', 'Requests waiting for admission (KV blocks).', st.queuedRequests);
  e.metric('engine_requests_running', 'gauge', 'Admitted requests not finished.', st.runningRequests);
  e.metric('engine_sequences_running', 'gauge', 'Unfinished sequences of the running requests.', st.runningSequences);
  e.metric('engine_requests_completed_total', 'counter', 'Requests the engine has finished (any outcome).', st.completedRequests);
  e.metric('kv_blocks', 'gauge', 'KV cache blocks in all.', st.kvBlocks);
  e.metric('kv_blocks_free', 'gauge', 'KV cache blocks free, prefix-cache pages included (admission evicts them).', st.kvFreeBlocks);
  e.metric('kv_blocks_prefix_cached', 'gauge', 'KV cache blocks kept by finished sequences for prefix reuse.', st.cachedBlocks);
  e.metric('prefix_hit_tokens_total', 'counter', 'Prompt tokens taken from cached prefixes instead of prefilled.', st.prefixHitTokens);
  e.metric('vit_tiles_total', 'counter', 'Image tiles run through the vision encoder.', st.vitTiles);
  e.metric('decode_steps_total', 'counter', 'Decode steps (one token for every running sequence).', st.decodeSteps);
  e.metric('prefill_steps_total', 'counter', 'Forwards over prompt chunks.', st.prefillSteps);
  e.metric('mixed_steps_total', 'counter', 'Prefill steps that also carried the decode step (mixedSteps).', st.mixedSteps);
  e.metric('vision_ahead_tiles_total', 'counter', 'Image tiles the vision thread encoded ahead of their prefill (visionAhead).', st.visionAheadTiles);
  e.metric('max_batch_sequences', 'gauge', 'The most sequences one decode step has carried since load.', st.maxBatchSequences);
  e.metric('decode_forward_seconds_total', 'counter', 'Host wall time in decode steps\' forward.', st.decodeForwardMs / 1000);
  e.summary('queue_wait_seconds', 'From submission to the engine until admission, per admitted request.', st.queueWaitMs / 1000, st.admittedRequests);
  e.summary('time_to_first_token_seconds', 'From submission to the engine until the first token, per sequence.', st.firstTokenWaitMs / 1000, st.firstTokens);
  const dev = (pick: (d: NativeModelStats['deviceMemory'][number]) => number): Array<[Record<string, string>, number]> =>
    st.deviceMemory.map((d, i) => [{ device: String(i) }, pick(d)]);
  if (st.deviceMemory.length > 0) {
    e.metric('device_weight_bytes', 'gauge', 'Weights on each GPU.', dev((d) => d.weightBytes));
    e.metric('device_in_use_bytes', 'gauge', 'Live tensors and scratch on each GPU (weights and KV cache included).', dev((d) => d.inUseBytes));
    e.metric('device_peak_bytes', 'gauge', 'The most in use on each GPU since load began.', dev((d) => d.peakBytes));
    e.metric('device_cached_bytes', 'gauge', 'Freed blocks the allocator keeps for reuse on each GPU.', dev((d) => d.cachedBytes));
  }
  return e.text();
}
