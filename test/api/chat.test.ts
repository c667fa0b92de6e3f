/**
 * model.chat / batchChat / stream on the CPU backend reproduce the PyTorch goldens
 * (prompt ids and 24-token greedy continuations) for every fixture family.
 */
import { join } from 'node:path';
import { InternVL } from '../../lib/model.js';
import { type GoldenCase, type ModelGolden, fixturesDir, goldenFamilies, goldenPixels, readModelGolden } from '../helpers/goldens.js';

const families = goldenFamilies();
function pixelsFor(names: string[]): Float32Array | undefined {
  return names.length === 0 ? undefined : goldenPixels(names);
}

function chatArgs(c: GoldenCase) {
  const images = c.images ?? [];
  const pv = pixelsFor(images);
  return {
    question: c.question as string,
    history: (c.history ?? []).map(([question, answer]) => ({ question, answer })),
    ...(pv ? { pixelValues: pv, numPatchesList: c.num_patches_list } : {}),
    generation: { maxNewTokens: 24 },
  };
}

test('fixture goldens are present', () => {
  expect(families).toEqual(expect.arrayContaining(['tiny-internlm2', 'tiny-phi3', 'tiny-qwen2', 'tiny-yi']));
});

describe.each(families)('%s on the CPU backend', (family) => {
  let golden: ModelGolden;
  let model: InternVL;

  beforeAll(async () => {
    golden = readModelGolden(family);
    model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
  });
  afterAll(() => model?.dispose());

  const caseNames = ['text', 'image', 'two_images', 'two_turn'];
  test.each(caseNames)('case %s: prompt ids and greedy tokens equal the goldens', async (name) => {
    const c = golden.cases.find((x) => x.name === name) as GoldenCase;
    expect(c).toBeDefined();
    const rendered = await model.renderChat(chatArgs(c));
    expect(rendered.prompt).toBe(c.prompt);
    expect(rendered.inputIds).toEqual(c.input_ids);
    const r = await model.chat(chatArgs(c));
    expect(r.tokenIds).toEqual(c.generated_ids);
    expect(r.response).toBe(c.response);
    expect(r.usage.promptTokens).toBe(c.input_ids?.length);
    expect(r.history.at(-1)).toEqual({ question: rendered.question, answer: c.response });
  });

  test('batch: batchChat over both images equals the goldens', async () => {
    const c = golden.cases.find((x) => x.name === 'batch') as GoldenCase;
    const samples = c.samples ?? [];
    expect(samples.length).toBeGreaterThan(1);
    const r = await model.batchChat({
      questions: samples.map((s) => s.question),
      pixelValues: pixelsFor(samples.flatMap((s) => s.images)),
      numPatchesList: samples.map((s) => s.num_patches_list[0]),
      generation: { maxNewTokens: 24 },
    });
    expect(r.results.map((x) => x.tokenIds)).toEqual(samples.map((s) => s.generated_ids));
    expect(r.responses).toEqual(samples.map((s) => s.response));
  });

  test('stream: chunks concatenate to the response; tokens as chat', async () => {
    const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
    const it = model.stream(chatArgs(c));
    let text = '';
    for await (const chunk of it) text += chunk;
    const r = await it.result;
    expect(text).toBe(r.response);
    expect(r.tokenIds).toEqual(c.generated_ids);
  });
});
