/**
 * How the reference `chat()` / `batch_chat()` turn a question, history and images
 * into a prompt string: the automatic `<image>\n` prefix and the expansion of each
 * `<image>` placeholder into `<img>` + `<IMG_CONTEXT>`×(tokens·tiles) + `</img>`.
 */
import { InternVLError } from '../errors.js';
import { type ChatTemplate, type Turn, renderPrompt } from './templates.js';

export const IMAGE_PLACEHOLDER = '<image>';
export const IMG_START = '<img>';
export const IMG_END = '</img>';
export const IMG_CONTEXT = '<IMG_CONTEXT>';

export interface PromptRequest {
  template: ChatTemplate;
  systemMessage: string;
  question: string;
  history: readonly Turn[];
  /** Tiles per image, in placeholder order; sums to the tiles given. Empty for text-only. */
  numPatchesList: readonly number[];
  /** Image tokens per tile (256 for 448px InternVL2 checkpoints). */
  numImageToken: number;
}

export interface BuiltPrompt {
  /** The rendered prompt before `<image>` expansion (what the reference logs). */
  prompt: string;
  /** The prompt with every placeholder expanded, ready to tokenize. */
  expanded: string;
  /** The question as stored in history (with the automatic prefix when added). */
  question: string;
}

/** Mirrors `chat()`: prefix `<image>\n` when there is no history, some image and no placeholder. */
export function withImagePrefix(question: string, hasHistory: boolean, hasImages: boolean): string {
  if (!hasHistory && hasImages && !question.includes(IMAGE_PLACEHOLDER)) return `${IMAGE_PLACEHOLDER}\n${question}`;
  return question;
}

export function imageTokens(tiles: number, numImageToken: number): string {
  return IMG_START + IMG_CONTEXT.repeat(numImageToken * tiles) + IMG_END;
}

/** Replaces the first remaining `<image>` by each entry in turn (history included, as the reference). */
export function expandImages(prompt: string, numPatchesList: readonly number[], numImageToken: number): string {
  let out = prompt;
  let from = 0;
  for (const [i, tiles] of numPatchesList.entries()) {
    const at = out.indexOf(IMAGE_PLACEHOLDER, from);
    if (at < 0) {
      throw new InternVLError(
        'ERR_INVALID_ARG',
        `numPatchesList has ${numPatchesList.length} entries but the prompt has only ${i} <image> placeholder(s)`,
      );
    }
    const tokens = imageTokens(tiles, numImageToken);
    out = out.slice(0, at) + tokens + out.slice(at + IMAGE_PLACEHOLDER.length);
    from = at + tokens.length;
  }
  return out;
}

export function buildPrompt(req: PromptRequest): BuiltPrompt {
  const hasImages = req.numPatchesList.length > 0;
  const question = withImagePrefix(req.question, req.history.length > 0, hasImages);
  const prompt = renderPrompt(req.template, req.systemMessage, req.history, question);
  return { prompt, expanded: expandImages(prompt, req.numPatchesList, req.numImageToken), question };
}

/** The reference's post-processing: cut at the first sep, strip whitespace. */
export function cleanResponse(text: string, sep: string): string {
  const at = text.indexOf(sep);
  return (at >= 0 ? text.slice(0, at) : text).trim();
}
