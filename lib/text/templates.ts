/**
 * The chat templates InternVL2 checkpoints name in config.json `template`
 * (the reference conversation.py, MPT separator style): system block + sep, then
 * `role + message + sep` per turn, then the open assistant role. No newline follows sep.
 */
import { InternVLError } from '../errors.js';

/** A conversation template (InternVL's `conv_template`): roles, separators and the system message. */
export interface ChatTemplate {
  readonly name: string;
  readonly systemTemplate: string; // contains {system_message}
  readonly userRole: string;
  readonly assistantRole: string;
  /** Separator after each message; also the generation stop token. */
  readonly sep: string;
}

/** The system message the reference inserts unless config.json sets `system_message`. */
export const DEFAULT_SYSTEM_MESSAGE =
  '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。';

const IM_TEMPLATE = {
  systemTemplate: '<|im_start|>system\n{system_message}',
  userRole: '<|im_start|>user\n',
  assistantRole: '<|im_start|>assistant\n',
  sep: '<|im_end|>',
} as const;

const TEMPLATES: Record<string, ChatTemplate> = {
  'Hermes-2': { name: 'Hermes-2', ...IM_TEMPLATE },
  'internlm2-chat': { name: 'internlm2-chat', ...IM_TEMPLATE },
  'phi3-chat': {
    name: 'phi3-chat',
    systemTemplate: '<|system|>\n{system_message}',
    userRole: '<|user|>\n',
    assistantRole: '<|assistant|>\n',
    sep: '<|end|>',
  },
};

/** The names of the chat templates this runtime knows. */
export function templateNames(): string[] {
  return Object.keys(TEMPLATES);
}

/** The chat template of that name (config.json `template`); ERR_CONFIG for an unknown one. */
export function getTemplate(name: string): ChatTemplate {
  const t = TEMPLATES[name];
  if (!t) {
    throw new InternVLError(
      'ERR_CONFIG',
      `Unknown chat template "${name}" in config.json; supported: ${templateNames().join(', ')}`,
    );
  }
  return t;
}

export interface Turn {
  question: string;
  answer: string;
}

/**
 * Renders a prompt: system block, every history turn, the new question and the
 * open assistant role — before any `<image>` expansion.
 */
export function renderPrompt(template: ChatTemplate, systemMessage: string, history: readonly Turn[], question: string): string {
  let out = template.systemTemplate.replace('{system_message}', systemMessage) + template.sep;
  for (const turn of history) {
    out += template.userRole + turn.question + template.sep;
    out += template.assistantRole + turn.answer + template.sep;
  }
  out += template.userRole + question + template.sep;
  out += template.assistantRole;
  return out;
}
