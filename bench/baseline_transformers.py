#!/usr/bin/env python3
"""Baseline for bench/: the same workloads as our engine, run by PyTorch +
transformers (bf16, SDPA) on the same GPU, at real InternVL2 shapes with random
weights (no checkpoint files). Writes one JSON document.

  python3 bench/baseline_transformers.py --configs bench/configs/InternVL2-8B.json bench/configs/InternVL2-40B.json --out results.json

InternLM2 LLMs run as transformers' Llama (identical math and shapes); the ViT
and projector are transformers' native InternVL port (no final vision norm).
"""
import argparse
import json
import statistics
import time

import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration

TEXT_TYPES = {"LlamaForCausalLM": "llama", "InternLM2ForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
              "Phi3ForCausalLM": "phi3"}


def hf_config(cfg):
    v, l = cfg["vision_config"], cfg["llm_config"]
    text = {k: l[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                              "intermediate_size", "vocab_size", "rope_theta", "rms_norm_eps",
                              "max_position_embeddings") if k in l}
    text["model_type"] = TEXT_TYPES[l["architectures"][0]]
    text["tie_word_embeddings"] = bool(l.get("tie_word_embeddings", False))
    if text["model_type"] == "phi3" and "rope_scaling" in l:
        rs = l["rope_scaling"]
        text["rope_scaling"] = {"rope_type": "longrope", "short_factor": rs["short_factor"],
                                "long_factor": rs["long_factor"]}
        text["original_max_position_embeddings"] = l.get("original_max_position_embeddings", 4096)
    image_tokens = int((cfg["force_image_size"] // v["patch_size"]) ** 2 * cfg["downsample_ratio"] ** 2)
    return InternVLConfig(
        vision_config=dict(hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                           num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
                           attention_bias=v["qkv_bias"], use_qk_norm=v["qk_normalization"],
                           norm_type=v["norm_type"], layer_norm_eps=v["layer_norm_eps"],
                           image_size=cfg["force_image_size"], patch_size=v["patch_size"], use_mean_pooling=True),
        text_config=text, image_token_id=text["vocab_size"] - 1, image_seq_length=image_tokens,
        downsample_ratio=cfg["downsample_ratio"], tie_word_embeddings=text["tie_word_embeddings"],
    ), image_tokens


def sync_time(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return {"median_s": statistics.median(out), "min_s": min(out), "max_s": max(out), "reps": reps}


def copy_bandwidth():
    n = 2 * 1024 ** 3
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = sync_time(lambda: b.copy_(a), 10, warmup=3)
    del a, b
    return 2 * n / t["median_s"]  # bytes read + written per second


def vit_flops_per_tile(cfg):
    v = cfg["vision_config"]
    c, n, f = v["hidden_size"], (cfg["force_image_size"] // v["patch_size"]) ** 2 + 1, v["intermediate_size"]
    per_layer = 2 * n * (3 * c * c + c * c + 2 * c * f) + 4 * n * n * c
    h = cfg["llm_config"]["hidden_size"]
    proj = 2 * (n - 1) // 4 * (4 * c * h + h * h)
    return v["num_hidden_layers"] * per_layer + 2 * (n - 1) * 3 * v["patch_size"] ** 2 * c + proj


def llm_weight_bytes(model):
    lm = model.model.language_model
    total = sum(p.numel() * p.element_size() for p in lm.parameters())
    emb = lm.get_input_embeddings().weight
    return total - emb.numel() * emb.element_size() + model.lm_head.weight.numel() * model.lm_head.weight.element_size()


def bench_model(path, args):
    cfg = json.load(open(path))
    config, image_tokens = hf_config(cfg)
    config._attn_implementation = "sdpa"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = InternVLForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    model.eval()
    torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    s = cfg["force_image_size"]
    vocab = config.text_config.vocab_size
    gen = torch.Generator(device="cuda").manual_seed(0)
    res = {"config": path, "load_random_init_s": load_s}

    def prompt(tiles, text_tokens, batch=1):
        ids = torch.randint(0, vocab - 2, (batch, text_tokens + tiles * image_tokens), device="cuda", generator=gen)
        if tiles:
            ids[:, 5:5 + tiles * image_tokens] = config.image_token_id
        px = torch.randn(batch * tiles, 3, s, s, device="cuda", dtype=torch.bfloat16, generator=gen) if tiles else None
        return ids, px

    def generate(ids, px, new):
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                  do_sample=False, eos_token_id=None, pad_token_id=0)
        if px is not None:
            kw["pixel_values"] = px
        return model.generate(**kw)

    with torch.inference_mode():
        px13 = torch.randn(13, 3, s, s, device="cuda", dtype=torch.bfloat16, generator=gen)
        vit = sync_time(lambda: model.model.get_image_features(pixel_values=px13, vision_feature_layer=-1,
                                                                vision_feature_select_strategy="default"), args.reps)
        fl = 13 * vit_flops_per_tile(cfg)
        res["vit_13_tiles"] = {**vit, "tiles_per_s": 13 / vit["median_s"], "tflops": fl / vit["median_s"] / 1e12}
        for n_tok in (1850,):
            ids, _ = prompt(0, n_tok)
            pre = sync_time(lambda: model(input_ids=ids, logits_to_keep=1), args.reps)
            res[f"prefill_{n_tok}"] = {**pre, "tokens_per_s": n_tok / pre["median_s"]}
        for tiles in (1, 13):
            ids, px = prompt(tiles, 30)
            res[f"ttft_{tiles}_tiles"] = sync_time(lambda: generate(ids, px, 1), args.reps)
        wbytes = llm_weight_bytes(model)
        ids, px = prompt(1, 30)
        t1 = sync_time(lambda: generate(ids, px, 1), args.reps)["median_s"]
        tn = sync_time(lambda: generate(ids, px, 1 + args.decode_tokens), max(1, args.reps // 2))["median_s"]
        tok_s = args.decode_tokens / (tn - t1)
        kv_per_tok = 2 * config.text_config.num_hidden_layers * config.text_config.num_key_value_heads * \
            (config.text_config.hidden_size // config.text_config.num_attention_heads) * 2
        ctx = ids.shape[1] + args.decode_tokens / 2
        res["decode_batch1"] = {"tokens_per_s": tok_s, "llm_weight_bytes": wbytes,
                                "bytes_per_token": wbytes + kv_per_tok * ctx}
        for batch in args.batches:
            ids, px = prompt(1, 30, batch)
            try:
                t1 = sync_time(lambda: generate(ids, px, 1), 1, warmup=0)["median_s"]
                tn = sync_time(lambda: generate(ids, px, 1 + args.decode_tokens), 1, warmup=0)["median_s"]
                # static batching as a server would: everyone's first token at t1, all done at tn
                res[f"decode_batch{batch}"] = {"tokens_per_s": batch * args.decode_tokens / (tn - t1),
                                               "prompt_tokens": ids.shape[1], "ttft_s": t1, "total_s": tn,
                                               "end_to_end_tokens_per_s": batch * (1 + args.decode_tokens) / tn}
            except torch.OutOfMemoryError as e:
                res[f"decode_batch{batch}"] = {"error": f"OOM: {e}"[:200]}
                torch.cuda.empty_cache()
    res["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    del model
    torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="*", default=[8, 32, 128])
    args = ap.parse_args()
    import transformers
    doc = {"engine": "transformers", "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                                  "cuda": torch.version.cuda},
           "gpu": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d"),
           "copy_bandwidth_Bps": copy_bandwidth(), "models": {}}
    for path in args.configs:
        print(f"== {path}", flush=True)
        try:
            doc["models"][path.split("/")[-1].removesuffix(".json")] = bench_model(path, args)
        except Exception as e:  # record and go on: one model's failure must not lose the others
            doc["models"][path.split("/")[-1].removesuffix(".json")] = {"error": repr(e)[:500]}
        print(json.dumps(doc["models"], indent=1)[-3000:], flush=True)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
