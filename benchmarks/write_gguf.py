#!/usr/bin/env python3
"""Writes a GGUF file (bf16 matrices, f32 norms) of a `tandem make-model` Llama checkpoint with the `gguf` package
(PyPI), for running the same weights in llama.cpp without its converter (which needs torch).

    python3 benchmarks/write_gguf.py MODEL_DIR OUT.gguf

What it writes is llama.cpp's layout for the `llama` architecture, as its converter writes it: hyperparameters
under `llama.*`, the byte-level BPE vocabulary as `gpt2` with Llama 3's pre-tokenizer (`llama-bpe`), tensors
renamed (`blk.N.attn_q.weight`, …) and the query and key rows reordered from Hugging Face's rotate-half layout
to the interleaved pairs llama.cpp's rope expects.
"""
import json
import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "reference"))
from llama_reference import load_safetensors  # noqa: E402


def read_bf16(path):
    """The checkpoint's tensors as bf16 bit patterns (read by the numpy reference's loader, which widens them)."""
    tensors = {}
    for name, array in load_safetensors(path).items():
        bits = array.astype(np.float32).view(np.uint32)
        if np.any(bits & 0xFFFF):
            sys.exit(f"{name} holds values bf16 cannot; this writer takes bf16 checkpoints")
        tensors[name] = (bits >> 16).astype(np.uint16)
    return tensors


def interleave_rope_rows(weights, heads):
    """Rows of each head from [first halves, second halves] to pairs, as llama.cpp's rope reads them."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def main():
    model, out = sys.argv[1:3]
    config = json.load(open(os.path.join(model, "config.json")))
    tokenizer = json.load(open(os.path.join(model, "tokenizer.json")))
    tensors = read_bf16(os.path.join(model, "model.safetensors"))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim", config["hidden_size"] // heads)

    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name(os.path.basename(os.path.normpath(model)))
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)

    size = config["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, index in tokenizer["model"]["vocab"].items():
        tokens[index], types[index] = text, gguf.TokenType.NORMAL
    for added in tokenizer.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_add_bos_token(False)

    def matrix(name, bits):
        writer.add_tensor(name, np.ascontiguousarray(bits), raw_dtype=gguf.GGMLQuantizationType.BF16)

    def vector(name, bits):
        writer.add_tensor(name, bf16_to_f32(bits))

    matrix("token_embd.weight", tensors["model.embed_tokens.weight"])
    for layer in range(config["num_hidden_layers"]):
        source, target = f"model.layers.{layer}.", f"blk.{layer}."
        vector(target + "attn_norm.weight", tensors[source + "input_layernorm.weight"])
        matrix(target + "attn_q.weight", interleave_rope_rows(tensors[source + "self_attn.q_proj.weight"], heads))
        matrix(target + "attn_k.weight", interleave_rope_rows(tensors[source + "self_attn.k_proj.weight"], kv_heads))
        matrix(target + "attn_v.weight", tensors[source + "self_attn.v_proj.weight"])
        matrix(target + "attn_output.weight", tensors[source + "self_attn.o_proj.weight"])
        vector(target + "ffn_norm.weight", tensors[source + "post_attention_layernorm.weight"])
        matrix(target + "ffn_gate.weight", tensors[source + "mlp.gate_proj.weight"])
        matrix(target + "ffn_up.weight", tensors[source + "mlp.up_proj.weight"])
        matrix(target + "ffn_down.weight", tensors[source + "mlp.down_proj.weight"])
    vector("output_norm.weight", tensors["model.norm.weight"])
    matrix("output.weight", tensors["lm_head.weight"] if "lm_head.weight" in tensors else tensors["model.embed_tokens.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
