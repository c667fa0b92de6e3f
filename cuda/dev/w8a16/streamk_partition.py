#!/usr/bin/env python3
"""CPU model of decodeStreamKernel's work partition (gemm_w8a16.cu), no GPU needed.

The kernel gives block b rounds [b R / P, (b + 1) R / P) of the flattened (column block, round)
sequence; in round r, warp (tw, kw) of slot d takes tile (r / rpc) tb + tw and unit
(r % rpc) kwCount DEPTH + d kwCount + kw. Where a block's range leaves a column block it writes
that segment (partial slot b + c); the column block's expected segment count is
blockOf(last round) - blockOf(first round) + 1, blockOf(x) = ((x + 1) P - 1) / R.
Checks, over shapes and grid sizes: every (tile, unit) exactly once, every block a round
(P <= R), slots unique and below P + C, and the expected counts equal the segments written.
Run: python3 streamk_partition.py   (prints OK or raises)
"""


def check(tiles_n, groups, tb, depth, resident):
    kw_count = 8 // tb
    rpc = (groups + kw_count * depth - 1) // (kw_count * depth)
    cols = (tiles_n + tb - 1) // tb
    rounds = cols * rpc
    blocks = min(rounds, resident)

    def block_of(x):
        return ((x + 1) * blocks - 1) // rounds

    covered, slots, segments = set(), set(), {}
    for b in range(blocks):
        r0, r1 = rounds * b // blocks, rounds * (b + 1) // blocks
        assert r1 > r0, "a block without a round"
        for r in range(r0, r1):
            c = r // rpc
            for d in range(depth):
                for warp in range(8):
                    tw, kw = warp % tb, warp // tb
                    tile, g = c * tb + tw, (r % rpc) * kw_count * depth + d * kw_count + kw
                    if tile < tiles_n and g < groups:
                        assert (tile, g) not in covered, (tile, g)
                        covered.add((tile, g))
            if r + 1 < r1 and (r + 1) // rpc == c:
                continue
            first, last = block_of(c * rpc), block_of(min(rounds, (c + 1) * rpc) - 1)
            assert first <= b <= last
            assert b + c not in slots and b + c < blocks + cols
            slots.add(b + c)
            segments[c] = segments.get(c, 0) + 1
    assert len(covered) == tiles_n * groups
    for c in range(cols):
        first, last = block_of(c * rpc), block_of(min(rounds, (c + 1) * rpc) - 1)
        assert segments[c] == last - first + 1, (c, segments[c], first, last)


cases = 0
for tiles_n in (1, 2, 3, 5, 16, 77, 448, 576, 2560):  # 448 / 576: 40B o and qkv, 2560: gate/up
    for groups in (1, 2, 7, 56, 160):                  # 56: K = 7168, 160: K = 20480 (down)
        for tb in (2, 4, 8):
            for depth in (2, 4):
                for resident in (1, 3, 264, 396, 1056):  # 2 or 3 blocks on 132 SMs, and more
                    check(tiles_n, groups, tb, depth, resident)
                    cases += 1
print(f"OK: {cases} shape x grid cases")
