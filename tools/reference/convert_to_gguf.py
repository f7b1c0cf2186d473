#!/usr/bin/env python3
"""Writes a GGUF file from a Hugging Face checkpoint directory as llama.cpp's convert_hf_to_gguf.py does, with
llama.cpp's own Python library (the `gguf` package) — an independent writer for Tandem's GGUF loader tests.

  convert_to_gguf.py --model DIR --out FILE.gguf --type f32|f16|bf16|q8_0|q4_0|q4_k|q6_k|q4_k_m [--pre NAME]
      model_type llama, mistral and mixtral become architecture `llama` (query and key rows permuted for
      llama.cpp's interleaved rotary pairs, Mixtral's experts merged into ffn_{gate,up,down}_exps), qwen2 becomes
      `qwen2` (no permutation). Every 2-D weight but the router is written in --type (quantized by
      gguf.quants), vectors and the router in F32 (as the converter keeps them). The tokenizer (tokenizer.json's
      vocabulary, merges and added tokens; added special tokens CONTROL, other added tokens USER_DEFINED) goes in
      tokenizer.ggml.* with pre-tokenizer name --pre (default llama-bpe), add_bos_token as the tokenizer's
      post-processor adds it, and tokenizer_config.json's chat template. The k-quant types (gguf has no quantizer
      for them) are quantized by quant_reference.py's numpy port of ggml's reference quantizers: q4_k and q6_k
      every such weight, q4_k_m mixing them as a simplified Q4_K_M (attn_v, ffn_down and the output in Q6_K,
      the rest in Q4_K).

  convert_to_gguf.py --tokenizer FILE.json --out FILE.gguf --pre NAME
      writes only the tokenizer keys (architecture llama, no tensors): for tokenizer tests.
"""
import argparse
import json
import os

import numpy as np
import gguf

from llama_reference import load_weights  # the checkpoint's tensors (float64, exact for F32/F16/BF16)
from quant_reference import quantize_q4_K, quantize_q6_K  # ggml's reference k-quantizers, in numpy

TYPES = {
    "f32": None,
    "f16": None,
    "bf16": gguf.GGMLQuantizationType.BF16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
}
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32, "q4_k": 15, "q6_k": 18, "q4_k_m": 15}
K_TYPES = {"q4_k": gguf.GGMLQuantizationType.Q4_K, "q6_k": gguf.GGMLQuantizationType.Q6_K}


def k_type(kind, name):
    """The k-quant type a 2-D weight `name` gets in a --type k-quant file."""
    if kind == "q4_k_m":
        return "q6_k" if any(part in name for part in ("attn_v", "ffn_down", "output.weight")) else "q4_k"
    return kind


def permute(weights, heads):
    # convert_hf_to_gguf's LlamaModel.permute: each head's two rotate-half halves interleaved.
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def add_tokenizer(writer, tokenizer_path, config_path, pre):
    tokenizer = json.load(open(tokenizer_path))
    vocabulary = dict(tokenizer["model"]["vocab"])
    added = {token["id"]: token for token in tokenizer.get("added_tokens", [])}
    for token in added.values():
        vocabulary[token["content"]] = token["id"]
    size = max(vocabulary.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, id in vocabulary.items():
        tokens[id] = text
        types[id] = gguf.TokenType.NORMAL
    for id, token in added.items():
        types[id] = gguf.TokenType.CONTROL if token.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    config = json.load(open(config_path)) if config_path and os.path.exists(config_path) else {}
    # The post-processor's leading special token, as gguf's SpecialVocab reads a TemplateProcessing.
    bos = None
    post = tokenizer.get("post_processor") or {}
    for processor in post.get("processors", [post]):
        if processor.get("type") == "TemplateProcessing":
            first = processor["single"][0]
            if "SpecialToken" in first:
                bos = vocabulary[first["SpecialToken"]["id"]]
    for name, setter in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id)):
        value = config.get(name)
        value = value.get("content") if isinstance(value, dict) else value
        if value in vocabulary:
            setter(vocabulary[value])
        elif name == "bos_token" and bos is not None:
            setter(bos)
    specials = [t for t in added.values() if t.get("special")]
    if "eos_token" not in config and specials:
        writer.add_eos_token_id(specials[-1]["id"])
    writer.add_add_bos_token(bos is not None)
    if "chat_template" in config:
        writer.add_chat_template(config["chat_template"])


def convert(model, out, kind, pre):
    config = json.load(open(os.path.join(model, "config.json")))
    family = config["model_type"]
    arch = "qwen2" if family == "qwen2" else "llama"
    weights = load_weights(model)
    writer = gguf.GGUFWriter(out, arch)
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    writer.add_name(os.path.basename(os.path.normpath(model)))
    writer.add_context_length(config.get("max_position_embeddings", 4096))
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(config["vocab_size"])
    if family == "mixtral":
        writer.add_expert_count(config["num_local_experts"])
        writer.add_expert_used_count(config["num_experts_per_tok"])
    writer.add_file_type(FILE_TYPES[kind])
    add_tokenizer(writer, os.path.join(model, "tokenizer.json"), os.path.join(model, "tokenizer_config.json"), pre)

    def add(name, values, quantize=True):
        values = np.ascontiguousarray(values.astype(np.float32))
        if values.ndim == 1 or not quantize or kind == "f32":
            writer.add_tensor(name, values)
        elif kind in ("q4_k", "q6_k", "q4_k_m"):
            chosen = k_type(kind, name)
            rows = values.reshape(-1, values.shape[-1])
            data = (quantize_q4_K if chosen == "q4_k" else quantize_q6_K)(rows).reshape(*values.shape[:-1], -1)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=K_TYPES[chosen])
        elif kind == "f16":
            writer.add_tensor(name, values.astype(np.float16))
        else:
            qtype = TYPES[kind]
            data = gguf.quants.quantize(values, qtype)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)

    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    add("token_embd.weight", weights["model.embed_tokens.weight"])
    add("output_norm.weight", weights["model.norm.weight"])
    if "lm_head.weight" in weights and not config.get("tie_word_embeddings", False):
        add("output.weight", weights["lm_head.weight"])
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        add(f"blk.{layer}.attn_norm.weight", weights[f"{p}.input_layernorm.weight"])
        add(f"blk.{layer}.ffn_norm.weight", weights[f"{p}.post_attention_layernorm.weight"])
        for key, name in names.items():
            block = "self_attn" if key in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            for suffix in ("weight", "bias"):
                full = f"{p}.{block}.{key}.{suffix}"
                if full not in weights:
                    continue
                values = weights[full]
                if arch == "llama" and key in ("q_proj", "k_proj"):
                    values = permute(values, heads if key == "q_proj" else kv_heads)
                add(f"blk.{layer}.{name}.{suffix}", values)
        if family == "mixtral":
            moe = f"{p}.block_sparse_moe"
            add(f"blk.{layer}.ffn_gate_inp.weight", weights[f"{moe}.gate.weight"], quantize=False)
            experts = config["num_local_experts"]
            if f"{moe}.experts.gate_up_proj" in weights:
                fused = weights[f"{moe}.experts.gate_up_proj"]
                half = fused.shape[1] // 2
                stacks = {"w1": fused[:, :half], "w3": fused[:, half:], "w2": weights[f"{moe}.experts.down_proj"]}
            else:
                stacks = {w: np.stack([weights[f"{moe}.experts.{e}.{w}.weight"] for e in range(experts)]) for w in ("w1", "w2", "w3")}
            for w, name in (("w1", "ffn_gate_exps"), ("w3", "ffn_up_exps"), ("w2", "ffn_down_exps")):
                values = stacks[w]
                if kind in ("q4_k", "q6_k", "q4_k_m"):
                    add(f"blk.{layer}.{name}.weight", values)
                elif kind in ("q8_0", "q4_0", "bf16"):
                    qtype = TYPES[kind]
                    data = np.stack([gguf.quants.quantize(np.ascontiguousarray(m.astype(np.float32)), qtype) for m in values])
                    writer.add_tensor(f"blk.{layer}.{name}.weight", data, raw_shape=data.shape, raw_dtype=qtype)
                else:
                    add(f"blk.{layer}.{name}.weight", values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--tokenizer")
    parser.add_argument("--out", required=True)
    parser.add_argument("--type", choices=sorted(FILE_TYPES), default="f32")
    parser.add_argument("--pre", default="llama-bpe")
    args = parser.parse_args()
    if args.tokenizer:
        writer = gguf.GGUFWriter(args.out, "llama")
        add_tokenizer(writer, args.tokenizer, None, args.pre)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    else:
        convert(args.model, args.out, args.type, args.pre)


if __name__ == "__main__":
    main()
