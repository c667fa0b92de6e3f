// Random inputs of the benchmarks at a model's shapes: pixel tiles and prompt ids with the
// image context token over `tiles` tiles' rows (from position 5), from a seeded LCG so runs
// are repeatable.
export const GREEDY = { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

/** S: tile size, T: image tokens per tile, vocab, imageToken: the <IMG_CONTEXT> id. */
export function randomInputs({ S, T, vocab, imageToken, seed = 1 }) {
  let state = seed;
  const rand = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const pixels = (tiles) => Float32Array.from({ length: tiles * 3 * S * S }, () => rand() * 4 - 2);
  const ids = (tiles, text) => {
    const a = new Int32Array(text + tiles * T);
    for (let i = 0; i < a.length; i++) a[i] = 10 + Math.floor(rand() * (vocab - 20));
    for (let i = 0; i < tiles * T; i++) a[5 + i] = imageToken;
    return a;
  };
  return { rand, pixels, ids };
}
