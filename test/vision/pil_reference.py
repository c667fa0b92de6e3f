#!/usr/bin/env python3
"""Reference for test/vision: what the InternVL2 model card's preprocessing gives,
computed by Pillow itself (Debian's python3-pil in CI; /usr/bin/python3 here).

  pil_reference.py OUTDIR

Writes into OUTDIR synthetic test images (deterministic), and for each one the
tiles the card's `load_image` makes before normalization, as raw uint8
[T, S, S, 3] files, plus reference.json (grids, tile counts, tiling orders for
max_num 1..40, video frame indices). The card's transform is
T.Resize((S, S), BICUBIC) on S×S tiles, which PIL returns unchanged, so the tiles
are exactly the crops of image.resize((S·cols, S·rows)) and image.resize((S, S)).
"""
import io
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageOps

S = 448


# ---- the model card's code (verbatim logic) -----------------------------------------
def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float('inf')
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def target_ratios_for(min_num, max_num):
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height
    target_ratios = target_ratios_for(min_num, max_num)
    target_aspect_ratio = find_closest_aspect_ratio(aspect_ratio, target_ratios, orig_width, orig_height, image_size)
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = ((i % (target_width // image_size)) * image_size, (i // (target_width // image_size)) * image_size,
               ((i % (target_width // image_size)) + 1) * image_size, ((i // (target_width // image_size)) + 1) * image_size)
        processed_images.append(resized_img.crop(box))
    if use_thumbnail and len(processed_images) != 1:
        processed_images.append(image.resize((image_size, image_size)))
    return processed_images, list(target_aspect_ratio)


def get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
    if bound:
        start, end = bound[0], bound[1]
    else:
        start, end = -100000, 100000
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return np.array([int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]).tolist()


# ---- synthetic images -----------------------------------------------------------------
def synthetic(w, h, seed, mode='RGB'):
    """Gradients, hard edges, a checkerboard and noise: every resampling error shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (255 * x / max(w - 1, 1)).astype(np.float64)
    g = (255 * y / max(h - 1, 1)).astype(np.float64)
    b = 127.5 + 127.5 * np.sin(x / 7.0 + y / 11.0)
    img = np.stack([r, g, b], -1)
    checker = ((x // 5 + y // 5) % 2 == 0) & (x < w // 3)
    img[checker] = [250, 20, 20]
    img += rng.normal(0, 12, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), 'RGB')
    d = ImageDraw.Draw(im)
    d.rectangle([w // 2, h // 4, w // 2 + max(w // 6, 2), h // 4 + max(h // 5, 2)], fill=(10, 200, 40))
    d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=max(1, w // 100))
    if mode == 'RGBA':
        alpha = (255 * (x / max(w - 1, 1))).astype(np.uint8)
        im = im.convert('RGBA')
        im.putalpha(Image.fromarray(alpha, 'L'))
    return im


def with_exif_orientation(im, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, 'JPEG', quality=92, exif=exif.tobytes())
    return buf.getvalue()


CASES = [
    # name, size, file format, max_num, extra
    ('landscape', (1000, 700), 'jpg', 12, {}),
    ('portrait', (300, 900), 'png', 12, {}),
    ('square', (640, 640), 'png', 6, {}),
    ('tiny', (20, 20), 'png', 12, {}),
    ('very_wide', (4000, 300), 'jpg', 12, {}),
    ('alpha', (500, 333), 'png', 12, {'mode': 'RGBA'}),
    ('exif_rotated', (480, 320), 'jpg', 12, {'orientation': 6}),
    ('webp', (333, 500), 'webp', 6, {}),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    ref = {'pil_version': Image.__version__, 'tile_size': S, 'images': {}}
    for k, (name, (w, h), fmt, max_num, extra) in enumerate(CASES):
        im = synthetic(w, h, seed=k, mode=extra.get('mode', 'RGB'))
        path = os.path.join(out, f'{name}.{fmt}')
        if 'orientation' in extra:
            with open(path, 'wb') as f:
                f.write(with_exif_orientation(im, extra['orientation']))
        elif fmt == 'jpg':
            im.save(path, 'JPEG', quality=92)
        else:
            im.save(path)
        loaded = Image.open(path)
        if 'orientation' in extra:
            loaded = ImageOps.exif_transpose(loaded)  # our default (autoOrient); the card skips this
        rgb = loaded.convert('RGB')
        tiles, grid = dynamic_preprocess(rgb, max_num=max_num, image_size=S, use_thumbnail=True)
        arr = np.stack([np.asarray(t, dtype=np.uint8) for t in tiles])  # [T, S, S, 3]
        arr.tofile(os.path.join(out, f'{name}.tiles.u8'))
        ref['images'][name] = {'file': os.path.basename(path), 'max_num': max_num, 'grid': grid,
                               'tiles': len(tiles), 'decoded_size': list(rgb.size),
                               'auto_orient': 'orientation' in extra}
    ref['target_ratios'] = {str(m): target_ratios_for(1, m) for m in range(1, 41)}
    ref['target_ratios_min'] = {f'{lo},{hi}': target_ratios_for(lo, hi) for lo, hi in [(2, 6), (3, 12), (4, 40)]}
    ref['video_indices'] = [
        {'bound': b, 'fps': fps, 'max_frame': mf, 'num_segments': n, 'indices': get_index(b, fps, mf, 0, n)}
        for b, fps, mf, n in [(None, 30.0, 299, 8), (None, 25.0, 1000, 32), ((2.0, 7.5), 30.0, 600, 8),
                              (None, 29.97, 17, 8), ((0.0, 1.0), 24.0, 500, 16), (None, 10.0, 5, 8)]]
    with open(os.path.join(out, 'reference.json'), 'w') as f:
        json.dump(ref, f)


if __name__ == '__main__':
    main(sys.argv[1])
