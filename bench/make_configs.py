#!/usr/bin/env python3
"""Writes bench/configs/InternVL2-*.json: config.json files with the real released
shapes (SPEC.md §3, from the OpenGVLab releases) for --dummy-weights benchmarks.
Numbers that do not change speed (rope factor values, token ids) are illustrative;
shapes, head counts, vocab sizes and norms are the release's."""
import json
import os

VIT_300M = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                norm_type="layer_norm", qkv_bias=True, qk_normalization=False)
VIT_6B = dict(hidden_size=3200, intermediate_size=12800, num_attention_heads=25, num_hidden_layers=45,
              norm_type="rms_norm", qkv_bias=False, qk_normalization=True)

LLMS = {
    "1B": ("Qwen2ForCausalLM", "qwen2", VIT_300M, "Hermes-2",
           dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                intermediate_size=4864, vocab_size=151655, rope_theta=1e6, rms_norm_eps=1e-6,
                tie_word_embeddings=True, max_position_embeddings=32768)),
    "2B": ("InternLM2ForCausalLM", "internlm2", VIT_300M, "internlm2-chat",
           dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
                intermediate_size=8192, vocab_size=92553, rope_theta=1e6, rms_norm_eps=1e-5,
                rope_scaling={"type": "dynamic", "factor": 2.0}, max_position_embeddings=32768, bias=False)),
    "4B": ("Phi3ForCausalLM", "phi3", VIT_300M, "phi3-chat",
           dict(hidden_size=3072, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                intermediate_size=8192, vocab_size=32020, rope_theta=1e4, rms_norm_eps=1e-5,
                max_position_embeddings=131072, original_max_position_embeddings=4096,
                rope_scaling={"type": "su", "short_factor": [1.0] * 48, "long_factor": [1.5] * 48})),
    "8B": ("InternLM2ForCausalLM", "internlm2", VIT_300M, "internlm2-chat",
           dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14336, vocab_size=92553, rope_theta=1e6, rms_norm_eps=1e-5,
                rope_scaling={"type": "dynamic", "factor": 2.0}, max_position_embeddings=32768, bias=False)),
    "26B": ("InternLM2ForCausalLM", "internlm2", VIT_6B, "internlm2-chat",
            dict(hidden_size=6144, num_hidden_layers=48, num_attention_heads=48, num_key_value_heads=8,
                 intermediate_size=16384, vocab_size=92553, rope_theta=1e6, rms_norm_eps=1e-5,
                 rope_scaling={"type": "dynamic", "factor": 3.0}, max_position_embeddings=32768, bias=False)),
    "40B": ("LlamaForCausalLM", "llama", VIT_6B, "Hermes-2",
            dict(hidden_size=7168, num_hidden_layers=60, num_attention_heads=56, num_key_value_heads=8,
                 intermediate_size=20480, vocab_size=64007, rope_theta=5e6, rms_norm_eps=1e-5,
                 max_position_embeddings=4096)),
    "76B": ("LlamaForCausalLM", "llama", VIT_6B, "internlm2-chat",
            dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                 intermediate_size=28672, vocab_size=128265, rope_theta=5e5, rms_norm_eps=1e-5,
                 max_position_embeddings=8192)),
}


def config_for(arch, model_type, vit, template, llm):
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "template": template,
        "downsample_ratio": 0.5,
        "force_image_size": 448,
        "dynamic_image_size": True,
        "use_thumbnail": True,
        "ps_version": "v2",
        "select_layer": -1,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
        "torch_dtype": "bfloat16",
        "vision_config": {
            "architectures": ["InternVisionModel"], "model_type": "intern_vit_6b",
            "image_size": 448, "patch_size": 14, "num_channels": 3, "layer_norm_eps": 1e-6,
            "hidden_act": "gelu", "use_flash_attn": True, "drop_path_rate": 0.0, **vit,
        },
        "llm_config": {"architectures": [arch], "model_type": model_type, "hidden_act": "silu",
                       "torch_dtype": "bfloat16", **llm},
    }


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
    os.makedirs(out, exist_ok=True)
    for size, spec in LLMS.items():
        with open(os.path.join(out, f"InternVL2-{size}.json"), "w") as f:
            json.dump(config_for(*spec), f, indent=2)
            f.write("\n")
