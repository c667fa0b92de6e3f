import { GENERATION_DEFAULTS, resolveGeneration } from '../../lib/generation.js';
import { TextStreamFilter } from '../../lib/text/textStream.js';

describe('generation options', () => {
  test('defaults follow the reference (greedy, T=1, top-k 50, top-p 1)', () => {
    expect(resolveGeneration(undefined)).toEqual(GENERATION_DEFAULTS);
    expect(GENERATION_DEFAULTS).toMatchObject({ doSample: false, temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1 });
  });

  test.each([
    [{ maxNewTokens: 0 }, 'Expected integer between 1 and 1048576 for generation.maxNewTokens but received 0 of type number'],
    [{ maxNewTokens: 1.5 }, 'Expected integer between 1 and 1048576 for generation.maxNewTokens but received 1.5 of type number'],
    [{ temperature: 0 }, 'Expected number greater than 0 and at most 100 for generation.temperature but received 0 of type number'],
    [{ topP: 1.2 }, 'Expected number greater than 0 and at most 1 for generation.topP but received 1.2 of type number'],
    [{ doSample: 'yes' }, 'Expected boolean for generation.doSample but received "yes" of type string'],
    [{ stop: [''] }, 'Expected array of non-empty strings for generation.stop but received an array of type array'],
    [{ tempurature: 1 }, 'for generation.tempurature but received "tempurature" of type string'],
  ])('rejects %j with a message naming option, range and value', (opts, message) => {
    expect(() => resolveGeneration(opts as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining(message) }));
  });
});

describe('stream text filter', () => {
  function run(chunks: string[], stops: string[]) {
    const f = new TextStreamFilter(stops);
    const out = chunks.map((c) => f.push(c)).join('') + f.flush();
    return out;
  }

  test('concatenated output equals the stripped text', () => {
    expect(run(['  ', ' Hel', 'lo ', ' ', 'world', '  \n'], [])).toBe('Hello  world');
  });

  test('stops at a stop string split across chunks and holds back its prefix', () => {
    const f = new TextStreamFilter(['STOP']);
    expect(f.push('abc ST')).toBe('abc');
    expect(f.push('O')).toBe('');
    expect(f.push('P tail')).toBe('');
    expect(f.hitStop).toBe(true);
    expect(f.flush()).toBe('');
  });

  test('a held prefix that never completes is released', () => {
    expect(run(['abc ST', 'ART'], ['STOP'])).toBe('abc START');
  });
});
