#!/usr/bin/env python3
"""CPU emulation of the W8A16 kernels' data paths, at the level of registers and MMA fragments.

Checks, without a GPU, that the packed layout (quantize_int8.h: w8a16PackedOffset), the int8 ->
bf16 byte_perm trick (gemm_w8a16.cu: dequant4), the activation loads and the mma.sync m16n8k16
fragment layouts of the PTX ISA fit together, for both kernels:
  decode : weights as the A operand (16 rows), activations as B (n = 8 activation rows)
  prefill: activations as A (x tile in shared memory, XOR-swizzled chunks), weights as B
Run: python3 emulate_layout.py   (prints OK or raises)
"""
import struct

import numpy as np

rng = np.random.default_rng(7)


def packed_offset(row, col, groups):  # mirror of w8a16PackedOffset
    tile, r = row >> 4, row & 15
    g, j, c = col >> 7, (col >> 5) & 3, col & 31
    gi, hi = r & 7, r >> 3
    ti, w = c >> 3, (c & 7) >> 1
    b = ((c & 1) << 1) | hi
    lane = gi * 4 + ti
    return ((tile * groups + g) * 4 + j) * 512 + lane * 16 + w * 4 + b


def byte_perm(x, y, s):
    src = x.to_bytes(4, "little") + y.to_bytes(4, "little")
    out = bytes(src[(s >> (4 * i)) & 7] for i in range(4))
    return int.from_bytes(out, "little")


def u2f(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def f2u(f):
    return struct.unpack("<I", struct.pack("<f", np.float32(f)))[0]


def dequant4(q):  # mirror of dequant4: returns (lo, hi) as pairs of floats (low half first)
    base = 0x4B000000
    f = [np.float32(u2f(byte_perm(q, base, s))) - np.float32(8388736.0) for s in (0x7650, 0x7652, 0x7651, 0x7653)]
    lo = byte_perm(f2u(f[0]), f2u(f[1]), 0x7632)
    hi = byte_perm(f2u(f[2]), f2u(f[3]), 0x7632)
    return bf16x2(lo), bf16x2(hi)


def bf16x2(u):
    return (u2f((u & 0xFFFF) << 16), u2f(u & 0xFFFF0000))


def mma(a_regs, b_regs):
    """a_regs[lane] = 4 pairs, b_regs[lane] = 2 pairs -> D[16][8] per the PTX fragment layouts."""
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for i in range(8):
            row = g if i in (0, 1, 4, 5) else g + 8
            col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
            A[row, col] = a_regs[lane][i // 2][i & 1]
        for i in range(4):
            k = t * 2 + (i & 1) + (8 if i >= 2 else 0)
            B[k, g] = b_regs[lane][i // 2][i & 1]
    return A @ B


def c_frag(D):
    """D[16][8] -> per lane c[0..3] (the accumulator fragment)."""
    return [[D[l >> 2, (l & 3) * 2], D[l >> 2, (l & 3) * 2 + 1], D[(l >> 2) + 8, (l & 3) * 2], D[(l >> 2) + 8, (l & 3) * 2 + 1]]
            for l in range(32)]


def main():
    N, K, M = 40, 264, 13  # N, K not multiples of 16 / 128
    groups = (K + 127) // 128
    Np = (N + 15) // 16 * 16
    q = rng.integers(-127, 128, size=(N, K))
    x = rng.integers(-8, 9, size=(M, K)).astype(np.float64) / 8  # exact in bf16
    packed = np.full(Np * groups * 128, 128, dtype=np.uint8)
    for r in range(N):
        for c in range(K):
            packed[packed_offset(r, c, groups)] = q[r, c] + 128
    ref = x @ q.T.astype(np.float64)  # [M, N]

    def xchunk(row, col0):  # the 8 activations a lane loads (16 bytes) as 4 bf16 pairs
        if row >= M or col0 >= K:
            return [(0.0, 0.0)] * 4
        return [(x[row, col0 + 2 * w], x[row, col0 + 2 * w + 1]) for w in range(4)]

    def wchunk(tile, g, j, lane):
        off = ((tile * groups + g) * 4 + j) * 512 + lane * 16
        return [int.from_bytes(bytes(packed[off + 4 * w: off + 4 * w + 4]), "little") for w in range(4)]

    # decode: C[n16 x m8] = W_tile . x^T, per tile and activation block of 8 rows
    y = np.zeros((M, Np))
    for tile in range(Np // 16):
        for mt in range((M + 7) // 8):
            acc = np.zeros((16, 8))
            for g in range(groups):
                for j in range(4):
                    a0, a1, b0, b1 = [], [], [], []
                    for lane in range(32):
                        gi, ti = lane >> 2, lane & 3
                        w = wchunk(tile, g, j, lane)
                        d = [dequant4(v) for v in w]  # (lo, hi) per word
                        a0.append([d[0][0], d[0][1], d[1][0], d[1][1]])
                        a1.append([d[2][0], d[2][1], d[3][0], d[3][1]])
                        xv = xchunk(mt * 8 + gi, g * 128 + j * 32 + ti * 8)
                        b0.append([xv[0], xv[1]])
                        b1.append([xv[2], xv[3]])
                    acc += mma(a0, b0) + mma(a1, b1)
            cf = c_frag(acc)
            for lane in range(32):
                gi, ti = lane >> 2, lane & 3
                for i, (n, m) in enumerate([(gi, 2 * ti), (gi, 2 * ti + 1), (gi + 8, 2 * ti), (gi + 8, 2 * ti + 1)]):
                    if mt * 8 + m < M:
                        y[mt * 8 + m, tile * 16 + n] = cf[lane][i]
    assert np.array_equal(y[:, :N], ref), "decode emulation mismatch"

    # prefill: C[m16 x n8] = x_tile . W^T; x rows from a swizzled shared tile, W as B fragments
    y = np.zeros(((M + 15) // 16 * 16, Np))
    for g in range(groups):
        # shared x stage [rows][16 chunks], chunk c of row r stored at c ^ 4*(r&1)
        rows = (M + 15) // 16 * 16
        sx = {}
        for r in range(rows):
            for ch in range(16):
                sx[(r, ch ^ ((r & 1) << 2))] = xchunk(r, g * 128 + ch * 8)
        for mb in range(rows // 16):
            for tile in range(Np // 16):
                for h in range(2):
                    acc = np.zeros((16, 8))
                    for j in range(4):
                        for ks in range(2):
                            a, b = [], []
                            for lane in range(32):
                                gi, ti = lane >> 2, lane & 3
                                r = mb * 16 + gi
                                ch = (j * 4 + ti) ^ ((r & 1) << 2)
                                lo, hi = sx[(r, ch)], sx[(r + 8, ch)]
                                a.append([lo[2 * ks], hi[2 * ks], lo[2 * ks + 1], hi[2 * ks + 1]])
                                w = wchunk(tile, g, j, lane)
                                d0, d1 = dequant4(w[2 * ks]), dequant4(w[2 * ks + 1])
                                b.append([d0[h], d1[h]])
                            acc += mma(a, b)
                    cf = c_frag(acc)
                    for lane in range(32):
                        gi, ti = lane >> 2, lane & 3
                        for i, (m, n) in enumerate([(gi, 2 * ti), (gi, 2 * ti + 1), (gi + 8, 2 * ti), (gi + 8, 2 * ti + 1)]):
                            y[mb * 16 + m, tile * 16 + 8 * h + n] += cf[lane][i]
    assert np.array_equal(y[:M, :N], ref), "prefill emulation mismatch"

    # bank check of the prefill x reads: each quarter-warp's 8 x 16-byte reads hit 8 distinct 16-byte bank groups
    for j in range(4):
        for quarter in range(4):
            banks = set()
            for lane in range(8 * quarter, 8 * quarter + 8):
                gi, ti = lane >> 2, lane & 3
                r = gi
                ch = (j * 4 + ti) ^ ((r & 1) << 2)
                banks.add(((r * 256 + ch * 16) % 128) // 16)
            assert len(banks) == 8, "bank conflict in x fragment reads"
    print("emulate_layout: decode and prefill fragment paths match x @ q^T exactly; x reads conflict-free: OK")


if __name__ == "__main__":
    main()
