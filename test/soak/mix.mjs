// A seeded mix of requests against a loaded InternVL model, shared by the soak script
// (test/soak/soak.mjs, 1,000 requests, run by hand) and its short jest version
// (test/faults/soak.test.ts). Plain JS with no imports from lib/, so both the compiled
// dist/ and the TypeScript sources can drive it.
//
// Mix: text chats (greedy and sampled), one- and two-image chats, streams (some left
// early), batchChat, and invalid requests (bad options, bad image bytes, overflowing
// prompts); about a third are cancelled, at a random time or after a random token.
// Every failure must be an InternVLError with a code the request could produce.

/** mulberry32 */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, below: (n) => Math.floor(next() * n), chance: (p) => next() < p, pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

const QUESTIONS = ['Hello', 'Describe the image.', 'What colour is it?', 'Count to ten.', '你好', 'Tell me a story about a cat.'];

function isTyped(e, codes) {
  return e !== null && typeof e === 'object' && e.name === 'InternVLError' && codes.includes(e.code);
}

/**
 * Runs `n` requests, at most `concurrency` at once. `images` are encoded image buffers.
 * `onProgress(done)` is called after each request. Returns outcome counts; throws on the
 * first untyped failure (with the request kind and index).
 */
export async function runMix(model, { n, seed = 1, concurrency = 4, images, onProgress }) {
  const r = rng(seed);
  const counts = { ok: 0, aborted: 0, cancelledEarly: 0, byCode: {}, byKind: {} };
  let next = 0;
  let firstError = null;

  async function one(i) {
    const kind = r.pick(['text', 'text', 'sampled', 'image', 'twoImages', 'stream', 'batch', 'invalid']);
    counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
    const cancel = kind !== 'invalid' && r.chance(0.33);
    const ac = new AbortController();
    const cancelAfterTokens = cancel && r.chance(0.5) ? 1 + r.below(6) : 0;
    let timer;
    if (cancel && !cancelAfterTokens) timer = setTimeout(() => ac.abort(), r.below(25));
    let tokens = 0;
    const onToken = () => {
      if (cancelAfterTokens && ++tokens === cancelAfterTokens) ac.abort();
    };
    const generation = { maxNewTokens: 1 + r.below(24), ...(kind === 'sampled' ? { doSample: true, temperature: 0.5 + r.next(), seed: r.below(1000) } : {}) };
    const partialOnAbort = r.chance(0.5);
    const allowed = ['ERR_ABORTED'];
    try {
      if (kind === 'text' || kind === 'sampled') {
        const res = await model.chat({ question: r.pick(QUESTIONS), generation, signal: ac.signal, partialOnAbort, onToken });
        counts[res.finishReason === 'aborted' ? 'aborted' : 'ok']++;
      } else if (kind === 'image' || kind === 'twoImages') {
        const imgs = kind === 'image' ? [r.pick(images)] : [r.pick(images), r.pick(images)];
        const res = await model.chat({ question: r.pick(QUESTIONS), images: imgs, generation, signal: ac.signal, partialOnAbort, onToken });
        counts[res.finishReason === 'aborted' ? 'aborted' : 'ok']++;
      } else if (kind === 'stream') {
        const it = model.stream({ question: r.pick(QUESTIONS), images: r.chance(0.5) ? [r.pick(images)] : [], generation, signal: ac.signal });
        const leaveAfter = r.chance(0.3) ? 1 + r.below(3) : Infinity;
        let chunks = 0;
        for await (const _ of it) {
          onToken();
          if (++chunks >= leaveAfter) break;
        }
        if (chunks >= leaveAfter) {
          counts.cancelledEarly++;
          await it.result.catch(() => undefined); // rejects with ERR_ABORTED: the consumer left
        } else {
          const res = await it.result;
          counts[res.finishReason === 'aborted' ? 'aborted' : 'ok']++;
        }
      } else if (kind === 'batch') {
        const k = 2 + r.below(2);
        const res = await model.batchChat({
          questions: Array.from({ length: k }, () => r.pick(QUESTIONS)),
          images: Array.from({ length: k }, () => (r.chance(0.5) ? r.pick(images) : null)),
          generation,
          signal: ac.signal,
        });
        counts[res.results.some((x) => x.finishReason === 'aborted') ? 'aborted' : 'ok']++;
      } else {
        const bad = r.below(3);
        if (bad === 0) {
          allowed.push('ERR_INVALID_ARG');
          await model.chat({ question: 'x', generation: { topP: 2 } });
        } else if (bad === 1) {
          allowed.push('ERR_IMAGE');
          await model.chat({ question: 'x', images: [Buffer.from('garbage bytes, not an image')] });
        } else {
          allowed.push('ERR_CONTEXT_OVERFLOW');
          await model.chat({ question: 'word '.repeat(model.info.contextLength) });
        }
        throw new Error(`invalid request ${bad} was accepted`);
      }
    } catch (e) {
      if (!isTyped(e, allowed) && !(cancel && ac.signal.aborted && e === ac.signal.reason)) {
        firstError ??= new Error(`request ${i} (${kind}${cancel ? ', cancelled' : ''}) failed with ${e?.name}: ${e?.code ?? ''} ${e?.message}`, { cause: e });
        return;
      }
      const code = e === ac.signal.reason ? 'abort-reason' : e.code;
      counts.byCode[code] = (counts.byCode[code] ?? 0) + 1;
    } finally {
      clearTimeout(timer);
    }
  }

  async function worker() {
    while (next < n && !firstError) {
      const i = next++;
      await one(i);
      onProgress?.(i + 1);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (firstError) throw firstError;
  return counts;
}

/** Active libuv handles and requests by type (timers, sockets, FS requests, ...). */
export function handles() {
  const out = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}
