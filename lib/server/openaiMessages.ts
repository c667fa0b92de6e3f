/**
 * Maps an OpenAI chat.completions request onto an InternVL chat call: the system
 * message, (user, assistant) pairs as history, the last user message as the
 * question, and every image part (data: URL, or a local file when allowed) in
 * order, as the reference re-encodes a conversation's images each turn.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChatRequest, HistoryTurn } from '../chatTypes.js';
import type { GenerationOptions } from '../generation.js';
import { HttpError } from './httpErrors.js';

export interface ServerImagePolicy {
  /** Directory local image paths must resolve inside; undefined refuses local paths. */
  localFilesRoot?: string;
  /** Largest decoded data: URL, bytes. */
  maxImageBytes: number;
}

type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } | string };

interface Message {
  role: string;
  content: string | ContentPart[] | null;
}

function bad(message: string, param: string): HttpError {
  return new HttpError(400, message, 'invalid_request_error', param);
}

async function loadImageUrl(url: string, policy: ServerImagePolicy, param: string): Promise<Buffer> {
  const m = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(url);
  if (m) {
    if (!m[2]) throw bad('image data: URLs must be base64-encoded', param);
    const data = Buffer.from(m[3], 'base64');
    if (data.length === 0) throw bad('image data: URL is empty', param);
    if (data.length > policy.maxImageBytes) throw bad(`image is larger than ${policy.maxImageBytes} bytes`, param);
    return data;
  }
  if (/^https?:/i.test(url)) throw bad('remote image URLs are not fetched by this server; send a data: URL', param);
  if (policy.localFilesRoot === undefined) {
    throw bad('local image paths are refused (start the server with --allow-local-files DIR)', param);
  }
  const path = url.startsWith('file:') ? fileURLToPath(url) : url;
  const root = await realpath(policy.localFilesRoot);
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  const wanted = isAbsolute(path) ? resolve(path) : resolve(root, path);
  // Checked before and after resolving links: '..' and symlinks out both stay refused.
  if (!inside(wanted)) throw bad('image path is outside the allowed directory', param);
  let real: string;
  try {
    real = await realpath(wanted);
  } catch {
    throw bad('image file not found', param);
  }
  if (!inside(real)) throw bad('image path is outside the allowed directory', param);
  // A directory, a FIFO or a huge file inside the root is the client's mistake (400), not
  // a server error, and is never read whole.
  let info;
  try {
    info = await stat(real);
  } catch {
    throw bad('image file not found', param);
  }
  if (!info.isFile()) throw bad('image path is not a regular file', param);
  if (info.size > policy.maxImageBytes) throw bad(`image is larger than ${policy.maxImageBytes} bytes`, param);
  try {
    return await readFile(real);
  } catch {
    throw bad('image file cannot be read', param);
  }
}

async function flatten(m: Message, i: number, policy: ServerImagePolicy, images: Buffer[]): Promise<string> {
  if (typeof m.content === 'string') return m.content;
  if (m.content === null || m.content === undefined) return '';
  if (!Array.isArray(m.content)) throw bad('content must be a string or an array of parts', `messages[${i}].content`);
  let text = '';
  let imagesHere = 0;
  for (const [j, part] of m.content.entries()) {
    const param = `messages[${i}].content[${j}]`;
    if (part?.type === 'text' && typeof part.text === 'string') text += part.text;
    else if (part?.type === 'image_url') {
      const url = typeof part.image_url === 'string' ? part.image_url : part.image_url?.url;
      if (typeof url !== 'string') throw bad('image_url.url must be a string', param);
      images.push(await loadImageUrl(url, policy, param));
      imagesHere++;
      text += '<image>';
    } else throw bad("content parts must be {type:'text'} or {type:'image_url'}", param);
  }
  // A lone leading image reads as the card's "<image>\nquestion".
  if (imagesHere === 1 && text.startsWith('<image>') && !text.startsWith('<image>\n')) text = `<image>\n${text.slice(7)}`;
  return text;
}

/** The most choices one request may ask for (`n`): each is a sequence in the engine. */
export const MAX_CHOICES = 16;

export interface MappedRequest {
  chat: ChatRequest;
  /** Choices to generate (`n`); choice i samples with seed + i (the request's seed, default 0). */
  n: number;
  stream: boolean;
  includeUsage: boolean;
}

export async function mapChatCompletion(body: unknown, policy: ServerImagePolicy): Promise<MappedRequest> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('request body must be a JSON object', '');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad('messages must be a non-empty array', 'messages');
  const images: Buffer[] = [];
  let system: string | undefined;
  const turns: Array<{ role: 'user' | 'assistant'; text: string }> = [];
  for (const [i, raw] of (b.messages as Message[]).entries()) {
    if (typeof raw !== 'object' || raw === null) throw bad('each message must be an object', `messages[${i}]`);
    const text = await flatten(raw, i, policy, images);
    if (raw.role === 'system' || raw.role === 'developer') {
      if (turns.length > 0) throw bad('the system message must come first', `messages[${i}]`);
      system = (system ?? '') + text;
    } else if (raw.role === 'user' || raw.role === 'assistant') {
      const expected = turns.length % 2 === 0 ? 'user' : 'assistant';
      if (raw.role !== expected) throw bad(`expected a ${expected} message (roles must alternate user/assistant)`, `messages[${i}].role`);
      turns.push({ role: raw.role, text });
    } else throw bad(`unsupported role ${JSON.stringify(raw.role)}`, `messages[${i}].role`);
  }
  if (turns.length === 0 || turns[turns.length - 1].role !== 'user') throw bad('the last message must be from the user', 'messages');
  const history: HistoryTurn[] = [];
  for (let k = 0; k + 1 < turns.length; k += 2) history.push({ question: turns[k].text, answer: turns[k + 1].text });
  const generation: GenerationOptions = {};
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null) generation.maxNewTokens = maxTokens as number;
  if (b.temperature !== undefined && b.temperature !== null) {
    if (b.temperature === 0) generation.doSample = false;
    else {
      generation.doSample = true;
      generation.temperature = b.temperature as number;
    }
  }
  if (b.top_p !== undefined && b.top_p !== null) {
    generation.topP = b.top_p as number;
    generation.doSample = generation.doSample ?? true;
  }
  if (b.seed !== undefined && b.seed !== null) generation.seed = b.seed as number;
  if (b.stop !== undefined && b.stop !== null) generation.stop = typeof b.stop === 'string' ? [b.stop] : (b.stop as string[]);
  let n = 1;
  if (b.n !== undefined && b.n !== null) {
    if (typeof b.n !== 'number' || !Number.isInteger(b.n) || b.n < 1 || b.n > MAX_CHOICES) {
      throw bad(`n must be an integer from 1 to ${MAX_CHOICES}`, 'n');
    }
    n = b.n;
  }
  const question = turns[turns.length - 1].text;
  const chat: ChatRequest = {
    question,
    history,
    generation,
    ...(images.length > 0 ? { images, combineImages: false } : {}),
    ...(system !== undefined ? { systemMessage: system } : {}),
  };
  const streamOptions = b.stream_options as { include_usage?: boolean } | undefined;
  return { chat, n, stream: b.stream === true, includeUsage: streamOptions?.include_usage === true };
}
