/**
 * The reference `dynamic_preprocess` tiling: which grid of S×S tiles an image is
 * cut into. Candidate grids are enumerated in the order CPython iterates the
 * reference's set comprehension (then stably sorted by tile count), because the
 * closest-aspect search breaks ties by that order.
 */
import { invalidArg } from '../errors.js';

export type Grid = readonly [cols: number, rows: number];

const M64 = (1n << 64n) - 1n;
const XXPRIME_1 = 11400714785074694791n;
const XXPRIME_2 = 14029467366897019727n;
const XXPRIME_5 = 2870177450012600261n;

/** CPython ≥ 3.8 hash of a tuple of two small non-negative ints (64-bit build). */
function tupleHash(a: number, b: number): bigint {
  let acc = XXPRIME_5;
  for (const lane of [BigInt(a), BigInt(b)]) {
    acc = (acc + lane * XXPRIME_2) & M64;
    acc = ((acc << 31n) | (acc >> 33n)) & M64;
    acc = (acc * XXPRIME_1) & M64;
  }
  acc = (acc + (2n ^ (XXPRIME_5 ^ 3527539n))) & M64;
  return acc === M64 ? 1546275796n : acc;
}

const LINEAR_PROBES = 9;
const PERTURB_SHIFT = 5n;

/** CPython's set: open addressing with linear probes then perturbation; grows at 3/5 full. */
class PySet {
  private table: Array<{ key: string; hash: bigint } | undefined> = new Array(8);
  private fill = 0;

  add(key: string, hash: bigint): void {
    const mask = BigInt(this.table.length - 1);
    let i = hash & mask;
    let perturb = hash;
    for (;;) {
      let probes = i + BigInt(LINEAR_PROBES) <= mask ? LINEAR_PROBES : 0;
      let j = Number(i);
      do {
        const e = this.table[j];
        if (e === undefined) {
          this.table[j] = { key, hash };
          this.fill++;
          if (this.fill * 5 >= Number(mask) * 3) this.resize(this.fill * 4);
          return;
        }
        if (e.hash === hash && e.key === key) return;
        j++;
      } while (probes-- > 0);
      perturb >>= PERTURB_SHIFT;
      i = (i * 5n + 1n + perturb) & mask;
    }
  }

  private resize(minUsed: number): void {
    let size = 8;
    while (size <= minUsed) size <<= 1;
    const old = this.table;
    this.table = new Array(size);
    const mask = BigInt(size - 1);
    for (const e of old) {
      if (!e) continue;
      let i = e.hash & mask;
      let perturb = e.hash;
      for (;;) {
        if (this.table[Number(i)] === undefined) break;
        let placed = false;
        if (i + BigInt(LINEAR_PROBES) <= mask) {
          for (let j = 1; j <= LINEAR_PROBES; j++) {
            if (this.table[Number(i) + j] === undefined) {
              i += BigInt(j);
              placed = true;
              break;
            }
          }
        }
        if (placed) break;
        perturb >>= PERTURB_SHIFT;
        i = (i * 5n + 1n + perturb) & mask;
      }
      this.table[Number(i)] = e;
    }
  }

  keys(): string[] {
    return this.table.filter((e) => e !== undefined).map((e) => (e as { key: string }).key);
  }
}

const gridCache = new Map<string, Grid[]>();

/** Candidate grids (cols, rows) with min ≤ cols·rows ≤ max, in the reference's order. */
export function candidateGrids(minTiles: number, maxTiles: number): Grid[] {
  const cacheKey = `${minTiles},${maxTiles}`;
  const hit = gridCache.get(cacheKey);
  if (hit) return hit;
  const set = new PySet();
  for (let n = minTiles; n <= maxTiles; n++) {
    for (let i = 1; i <= n; i++) {
      for (let j = 1; j <= n; j++) {
        if (i * j <= maxTiles && i * j >= minTiles) set.add(`${i},${j}`, tupleHash(i, j));
      }
    }
  }
  const grids = set
    .keys()
    .map((k) => k.split(',').map(Number) as unknown as Grid)
    .map((g, idx) => ({ g, idx }))
    .sort((a, b) => a.g[0] * a.g[1] - b.g[0] * b.g[1] || a.idx - b.idx)
    .map((x) => x.g);
  gridCache.set(cacheKey, grids);
  return grids;
}

/** The reference's closest-aspect choice; on an exact tie a later grid wins if the image is big enough for it. */
export function chooseGrid(width: number, height: number, tileSize: number, minTiles: number, maxTiles: number): Grid {
  const aspect = width / height;
  const area = width * height;
  let bestDiff = Number.POSITIVE_INFINITY;
  let best: Grid = [1, 1];
  for (const g of candidateGrids(minTiles, maxTiles)) {
    const diff = Math.abs(aspect - g[0] / g[1]);
    if (diff < bestDiff) {
      bestDiff = diff;
      best = g;
    } else if (diff === bestDiff && area > 0.5 * tileSize * tileSize * g[0] * g[1]) {
      best = g;
    }
  }
  return best;
}

export interface TilingOptions {
  minTiles: number;
  maxTiles: number;
  useThumbnail: boolean;
  tileSize: number;
}

export interface TilePlan {
  grid: Grid;
  /** Tiles including the thumbnail. */
  tiles: number;
  thumbnail: boolean;
}

export function planTiles(width: number, height: number, o: TilingOptions): TilePlan {
  const grid = chooseGrid(width, height, o.tileSize, o.minTiles, o.maxTiles);
  const blocks = grid[0] * grid[1];
  const thumbnail = o.useThumbnail && blocks !== 1;
  return { grid, tiles: blocks + (thumbnail ? 1 : 0), thumbnail };
}

function isInt(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** Validates tiling options sharp-style. */
export function checkTilingOptions(o: Partial<TilingOptions>, defaults: TilingOptions): TilingOptions {
  const r = { ...defaults, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as TilingOptions;
  if (!isInt(r.maxTiles, 1, 40)) throw invalidArg('maxTiles', 'integer between 1 and 40', r.maxTiles);
  if (!isInt(r.minTiles, 1, r.maxTiles)) throw invalidArg('minTiles', `integer between 1 and ${r.maxTiles} (maxTiles)`, r.minTiles);
  if (typeof r.useThumbnail !== 'boolean') throw invalidArg('useThumbnail', 'boolean', r.useThumbnail);
  if (!isInt(r.tileSize, 14, 4096)) throw invalidArg('imageSize', 'integer between 14 and 4096', r.tileSize);
  return r;
}
