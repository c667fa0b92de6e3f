/** Parsers for numeric CLI flags that reject junk instead of passing NaN along. */
import { InvalidArgumentError } from 'commander';
import type { DeviceMapSpec } from '../deviceMap.js';

export function intOption(name: string, lo: number, hi: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < lo || n > hi) {
      throw new InvalidArgumentError(`${name} must be an integer between ${lo} and ${hi}`);
    }
    return n;
  };
}

export function floatOption(name: string, lo: number, hi: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) {
      throw new InvalidArgumentError(`${name} must be a number between ${lo} and ${hi}`);
    }
    return n;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** --device-map: 'auto', 'card', a comma list of devices per layer ("0,0,1,1") or JSON. */
export function deviceMapOption(value: string): DeviceMapSpec {
  const v = value.trim();
  if (v === 'auto' || v === 'card') return v;
  if (/^\d+(,\d+)*$/.test(v)) return v.split(',').map(Number);
  try {
    return JSON.parse(v) as DeviceMapSpec;
  } catch {
    throw new InvalidArgumentError(`--device-map must be auto, card, a comma list of devices per layer or JSON (got ${JSON.stringify(value)})`);
  }
}
