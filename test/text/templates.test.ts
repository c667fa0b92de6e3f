import { buildPrompt, cleanResponse, expandImages, withImagePrefix } from '../../lib/text/conversation.js';
import { DEFAULT_SYSTEM_MESSAGE, getTemplate, renderPrompt } from '../../lib/text/templates.js';

// Expected strings are written out by hand from the reference conversation.py
// (MPT separator style) as recorded in SPEC.md §4, not produced by our code.
const SYS = '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。';

describe('chat templates', () => {
  test('default system message is the reference one, character for character', () => {
    expect(DEFAULT_SYSTEM_MESSAGE).toBe(SYS);
    expect([...DEFAULT_SYSTEM_MESSAGE].filter((c) => c === '，')).toHaveLength(1);
    expect(DEFAULT_SYSTEM_MESSAGE).toContain('InternVL, 是');
  });

  test('Hermes-2 two-round prompt matches SPEC §4', () => {
    const t = getTemplate('Hermes-2');
    const p = renderPrompt(t, 'SYS', [{ question: '<image>\nQ1', answer: 'A1' }], 'Q2');
    expect(p).toBe(
      '<|im_start|>system\nSYS<|im_end|><|im_start|>user\n<image>\nQ1<|im_end|><|im_start|>assistant\nA1<|im_end|>' +
        '<|im_start|>user\nQ2<|im_end|><|im_start|>assistant\n',
    );
  });

  test('internlm2-chat renders like Hermes-2; phi3-chat uses its own roles', () => {
    expect(renderPrompt(getTemplate('internlm2-chat'), 'S', [], 'Q')).toBe(
      '<|im_start|>system\nS<|im_end|><|im_start|>user\nQ<|im_end|><|im_start|>assistant\n',
    );
    expect(renderPrompt(getTemplate('phi3-chat'), 'S', [], 'Q')).toBe('<|system|>\nS<|end|><|user|>\nQ<|end|><|assistant|>\n');
  });

  test('an unknown template is a config error naming it', () => {
    expect(() => getTemplate('vicuna_v1.1')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('vicuna_v1.1') }));
  });
});

describe('image placeholders', () => {
  test('auto prefix only without history, with images and without a placeholder', () => {
    expect(withImagePrefix('Q', false, true)).toBe('<image>\nQ');
    expect(withImagePrefix('Q', true, true)).toBe('Q');
    expect(withImagePrefix('Q', false, false)).toBe('Q');
    expect(withImagePrefix('look <image>', false, true)).toBe('look <image>');
  });

  test('expansion replaces the first remaining placeholder per entry, history included', () => {
    const out = expandImages('a<image>b<image>c', [1, 2], 3);
    const ctx = '<IMG_CONTEXT>';
    expect(out).toBe(`a<img>${ctx.repeat(3)}</img>b<img>${ctx.repeat(6)}</img>c`);
  });

  test('more entries than placeholders is an argument error', () => {
    expect(() => expandImages('one <image> only', [1, 1], 4)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });

  test('buildPrompt: single image, first round', () => {
    const b = buildPrompt({ template: getTemplate('Hermes-2'), systemMessage: 'S', question: 'Describe.', history: [], numPatchesList: [2], numImageToken: 1 });
    expect(b.question).toBe('<image>\nDescribe.');
    expect(b.prompt).toBe('<|im_start|>system\nS<|im_end|><|im_start|>user\n<image>\nDescribe.<|im_end|><|im_start|>assistant\n');
    expect(b.expanded).toBe(
      '<|im_start|>system\nS<|im_end|><|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nDescribe.<|im_end|><|im_start|>assistant\n',
    );
  });

  test('cleanResponse cuts at the separator and strips', () => {
    expect(cleanResponse('  hello world \n<|im_end|>junk', '<|im_end|>')).toBe('hello world');
    expect(cleanResponse('no sep ', '<|end|>')).toBe('no sep');
  });
});
