#!/usr/bin/env python3
"""Extra PyTorch goldens for engine paths the fixture goldens do not reach.

  python3 test/engine/goldens/make_engine_goldens.py OUT_DIR

Uses the fixture checkpoints in test/fixtures/models with config overrides (recorded in
the JSON; the test applies them to a copy of the model directory) and the original-math
reference of test/fixtures/make_fixtures.py, cross-checked with transformers where it
implements the same thing:

  vit_resize   force_image_size 84 and 168 on tiny-yi / tiny-internlm2 (checkpoint grid 8x8):
               the position embedding resized as InternVisionEmbeddings._get_pos_embed does
               (F.interpolate bicubic, align_corners=False on the fp32 grid); tiles cut from the fixture pixels.
  phi3_cross   tiny-phi3 text prompt of 51 tokens + 24 greedy tokens: the su-RoPE factor set
               switches from short to long in the middle of decoding (original_max 64).
  ntk_dynamic  tiny-internlm2 with max_position_embeddings 40: dynamic NTK from the first
               decode steps on (text, 37 tokens) and from the prompt on (image prompt).

Writes OUT_DIR/engine-goldens.json and OUT_DIR/engine-goldens.safetensors (F32).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
FIX = os.path.join(ROOT, 'test', 'fixtures')
sys.path.insert(0, FIX)
import make_fixtures as mf  # noqa: E402


def load(family, overrides=None):
    d = os.path.join(FIX, 'models', family)
    with open(os.path.join(d, 'config.json')) as f:
        cfg = json.load(f)
    for path, value in (overrides or {}).items():
        node = cfg
        keys = path.split('.')
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return cfg, mf.read_checkpoint(d)


def resized_weights(W, cfg, tile):
    """The release's _get_pos_embed: bicubic resize of the position-embedding grid to tile/patch."""
    import torch
    import torch.nn.functional as Fn
    v = cfg['vision_config']
    C, p = v['hidden_size'], v['patch_size']
    g0, g = v['image_size'] // p, tile // p
    pe = W['vision_model.embeddings.position_embedding']  # [1, 1+g0², C]
    grid = pe[:, 1:, :].float().reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
    grid = Fn.interpolate(grid, size=(g, g), mode='bicubic', align_corners=False)
    grid = grid.reshape(1, -1, g * g).permute(0, 2, 1)
    W2 = dict(W)
    W2['vision_model.embeddings.position_embedding'] = torch.cat([pe[:, :1, :], grid], 1)
    return W2


PIXELS_RULE = ('2 tiles cut from goldens/pixels.safetensors "wide" [4,3,112,112] (w): tile size 84: tile j = '
               'w[j, :, :84, :84]; tile size 168: tile j is 2x2 blocks of 84, block (r, c) = w[(j + 2r + c) % 4, :, :84, :84]')


def resize_pixels(tile):
    """Deterministic tiles of size 84 or 168 from the fixture pixels (see PIXELS_RULE)."""
    w = mf.read_safetensors(os.path.join(FIX, 'goldens', 'pixels.safetensors'))['wide']
    out = np.zeros((2, 3, tile, tile), dtype=np.float32)
    for j in range(2):
        if tile == 84:
            out[j] = w[j, :, :84, :84]
        else:
            for r in range(2):
                for c in range(2):
                    out[j, :, 84 * r:84 * r + 84, 84 * c:84 * c + 84] = w[(j + 2 * r + c) % 4, :, :84, :84]
    return out


def main(out):
    import torch
    torch.set_grad_enabled(False)
    os.makedirs(out, exist_ok=True)
    tensors, cases = {}, []

    # ---- vit_resize ------------------------------------------------------------------------------
    for family in ['tiny-yi', 'tiny-internlm2']:
        for tile in [84, 168]:
            cfg, Wnp = load(family, {'force_image_size': tile})
            W = {k: torch.from_numpy(a) for k, a in Wnp.items()}
            W2 = resized_weights(W, cfg, tile)
            pix = torch.from_numpy(resize_pixels(tile))
            vit, emb = mf.om_vision(W2, cfg, pix)
            name = f'vit_resize.{family}.{tile}'
            tensors[name + '.vit'] = vit
            tensors[name + '.vision'] = emb
            cases.append(dict(kind='vit_resize', name=name, family=family, overrides={'force_image_size': tile},
                              tiles=2, pixels=PIXELS_RULE, vit=name + '.vit', vision=name + '.vision'))
            print(name, tuple(vit.shape), tuple(emb.shape))

    # ---- decoder cases ---------------------------------------------------------------------------
    def decode_case(kind, family, overrides, input_ids, images, note):
        cfg, Wnp = load(family, overrides)
        W = {k: torch.from_numpy(a) for k, a in Wnp.items()}
        with open(os.path.join(FIX, 'goldens', f'{family}.json')) as f:
            g = json.load(f)
        eos, ctx = g['eos_token_id'], g['image_context_token_id']
        dec = mf.OMDecoder(W, cfg['llm_config'])
        ids = torch.tensor([input_ids])
        emb = dec.embed[ids].clone()
        pv = None
        if images:
            pix = mf.read_safetensors(os.path.join(FIX, 'goldens', 'pixels.safetensors'))
            pv = torch.cat([torch.from_numpy(pix[k]) for k in images])
            _, feats = mf.om_vision(W, cfg, pv)
            sel = ids == ctx
            emb[sel] = feats.reshape(-1, emb.shape[-1])
        mask = torch.ones_like(ids)
        logits, gen = dec.generate(emb, mask, eos, 24)
        hf_note = 'transformers not run'
        try:
            hf = mf.hf_model(cfg, Wnp, ctx)
            hl = hf(input_ids=ids, pixel_values=pv, attention_mask=mask).logits
            go = hf.generate(input_ids=ids, pixel_values=pv, attention_mask=mask, max_new_tokens=24, do_sample=False,
                             eos_token_id=eos, pad_token_id=g['pad_token_id'], num_beams=1, temperature=None,
                             top_p=None, top_k=None)
            hg = go[0, ids.shape[1]:].tolist()
            if eos in hg:
                hg = hg[:hg.index(eos) + 1]
            rd = float((hl[0, -1] - logits[0, -1]).abs().max() / logits[0, -1].abs().max())
            hf_note = f'transformers: logits max rel diff {rd:.2e}, greedy ids equal {hg == gen[0]}'
            if hg != gen[0]:
                hf_note += f' (transformers {hg})'
        except Exception as e:  # noqa: BLE001 - recorded, the original math is the golden
            hf_note = f'transformers failed: {type(e).__name__}: {e}'
        name = f'{kind}.{family}.{len(cases)}'
        tensors[name + '.logits'] = logits[0, -1]
        cases.append(dict(kind=kind, name=name, family=family, overrides=overrides, input_ids=list(input_ids),
                          images=images, num_patches_list=[int(pix_tiles(k)) for k in images], eos_token_id=eos,
                          image_context_token_id=ctx, generated_ids=gen[0], logits=name + '.logits',
                          note=note, cross_check=hf_note))
        print(name, len(input_ids), gen[0], hf_note)

    pixel_file = mf.read_safetensors(os.path.join(FIX, 'goldens', 'pixels.safetensors'))

    def pix_tiles(k):
        return pixel_file[k].shape[0]

    with open(os.path.join(FIX, 'goldens', 'tiny-phi3.json')) as f:
        phi3 = json.load(f)
    text = next(c for c in phi3['cases'] if c['name'] == 'text')['input_ids']
    ids = (text + text[1:27])[:52]
    decode_case('phi3_cross', 'tiny-phi3', {}, ids, [],
                f'prompt {len(ids)} tokens: short factors for the prompt and the decode calls at positions '
                f'{len(ids)}..63, long from position 64 on (original_max 64)')

    with open(os.path.join(FIX, 'goldens', 'tiny-internlm2.json')) as f:
        il = json.load(f)
    text = next(c for c in il['cases'] if c['name'] == 'text')['input_ids']
    image = next(c for c in il['cases'] if c['name'] == 'image')
    over = {'llm_config.max_position_embeddings': 40}
    decode_case('ntk_dynamic', 'tiny-internlm2', over, text, [],
                f'prompt {len(text)} tokens, max_position_embeddings 40: plain RoPE, then dynamic NTK from seq_len 41')
    decode_case('ntk_dynamic', 'tiny-internlm2', over, image['input_ids'], image['images'],
                'image prompt longer than max_position_embeddings 40: dynamic NTK on every call')

    mf.write_safetensors(os.path.join(out, 'engine-goldens.safetensors'),
                         {k: v.detach().float().contiguous().numpy() for k, v in tensors.items()}, 'F32')
    mf.dump_json(os.path.join(out, 'engine-goldens.json'),
                 dict(producer='test/engine/goldens/make_engine_goldens.py', versions=mf.versions(), cases=cases))


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else HERE)
