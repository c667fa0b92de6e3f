#!/usr/bin/env python3
"""Where the decode GEMVs' ends go, from a block trace (run_trace.sh's PREFIX-m1-blocks.csv[.gz]).

For each position in the layer (8 launches a layer), over the middle layers:
  - per SM, the idle time between its last block's end and the kernel's end (mean over SMs,
    SMs without a block count the whole kernel);
  - on SMs holding two blocks, how often the older block (earlier start) ends first, and by how
    much the younger one ends later;
  - block ends (from the kernel's first PDL wait return) by blocks per SM.
Run: python3 trace_tails.py PREFIX-m1-blocks.csv.gz [--sms 132] [--per-layer 8]
"""
import argparse
import collections
import csv
import gzip
import statistics


def rows(path):
    with (gzip.open(path, 'rt') if path.endswith('.gz') else open(path)) as f:
        yield from csv.DictReader(f)


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float('nan')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('blocks')
    ap.add_argument('--sms', type=int, default=132)
    ap.add_argument('--per-layer', type=int, default=8)
    a = ap.parse_args()
    launches = collections.defaultdict(list)
    for r in rows(a.blocks):
        launches[int(r['launch'])].append(r)
    layers = (max(launches) + 1) // a.per_layer
    middle = range(layers // 6, layers - layers // 6)
    print(f'{layers} layers, middle {middle.start}..{middle.stop - 1}')
    print('pos blocks | kernel end | SM idle tail | pairs: older ends first, younger later by (p50) '
          '| ends p50 by blocks/SM')
    for pos in range(a.per_layer):
        ends, idle, older_first, lag = [], [], [], []
        by_load = collections.defaultdict(list)
        for layer in middle:
            bl = launches.get(layer * a.per_layer + pos, [])
            if not bl:
                continue
            go = min(float(b['go_us']) for b in bl)
            per_sm = collections.defaultdict(list)
            for b in bl:
                per_sm[b['sm']].append((float(b['start_us']), float(b['end_us']) - go))
            end = max(e for v in per_sm.values() for _, e in v)
            ends.append(end)
            idle.append((sum(end - max(e for _, e in v) for v in per_sm.values()) +
                         (a.sms - len(per_sm)) * end) / a.sms)
            for v in per_sm.values():
                for _, e in v:
                    by_load[len(v)].append(e)
                if len(v) == 2:
                    (_, e_old), (_, e_young) = sorted(v)
                    older_first.append(e_old <= e_young)
                    lag.append(e_young - e_old)
        if not ends:
            continue
        pairs = f'{100 * sum(older_first) / len(older_first):5.1f} %, {quantile(lag, 0.5):5.2f}' if lag else '     -'
        loads = ' '.join(f'{k}: {quantile(v, 0.5):.2f}' for k, v in sorted(by_load.items()))
        print(f'{pos:3d} {len(bl):6d} | {statistics.mean(ends):10.2f} | {statistics.mean(idle):12.2f} | '
              f'{pairs:>40} | {loads}')


if __name__ == '__main__':
    main()
