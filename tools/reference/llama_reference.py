#!/usr/bin/env python3
"""Independent reference for Tandem's Llama forward pass: numpy, float64, written from the Hugging Face
transformers definition of LlamaForCausalLM (RMSNorm, rotary embeddings in the rotate-half layout with the
default, linear or llama3 frequencies, grouped-query causal attention, SiLU-gated MLP, untied or tied head) and
of MixtralForCausalLM's sparse mixture-of-experts block (MixtralSparseMoeBlock: softmax over the router's
logits, the top num_experts_per_tok experts renormalised to sum to 1, each expert w2(silu(w1 x) * w3 x)).
It shares no code with Tandem: safetensors is parsed here from the format's description.

  llama_reference.py --model DIR --tokens 1,2,3 [--quantization q8_0|q4_0|q4_k|q6_k]
      prints {"logits": [[...] per position]} as JSON. With --quantization, every linear layer (attention, MLP,
      experts, an untied LM head; not the embedding, the router or a tied head) multiplies as llama.cpp does with
      quantized weights: its weight quantized to the format (by the `gguf` package, llama.cpp's Python library;
      the k-quants by quant_reference.py's numpy port of ggml's quantizers) and its input rows to Q8_0 (Q8_K for
      the k-quants), both dequantized and multiplied in float64.
  llama_reference.py --model DIR --gguf FILE --tokens 1,2,3
      the same model (DIR's config.json) with the weights of a GGUF file, read by the `gguf` package's
      GGUFReader and dequantized by gguf.quants: llama.cpp's tensor names mapped back to transformers', the
      query and key rows of the `llama` architecture put back in rotate-half order, Mixtral's merged expert
      tensors cut per expert. A linear layer (tied head included) whose GGUF tensor is Q8_0 or Q4_0 has its
      input rows quantized to Q8_0 too, as llama.cpp multiplies it; Q4_K or Q6_K, to Q8_K.
  ... --q8-0-for NAME,NAME
      the weights whose names contain one of NAME (e.g. self_attn.o_proj) are stored as Q8_0 instead of the
      format asked for or the GGUF file's blocks (quantized from their float, or dequantized, values), their input
      rows quantized to Q8_0: what a tensor-parallel split that cuts a k-quant's 256-value super-blocks leaves.
  ... --perturb EPS
      with quantized inputs (either mode above), each input value is first multiplied by 1 ± EPS (random signs,
      seeded): how far an fp32-size change of the inputs moves the logits through the quantization steps — the
      sensitivity a comparison with another implementation has to allow.
"""
import argparse
import json
import math
import os
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
QUANTIZATION = None  # the weights' format name (q8_0, q4_0, q4_k, q6_k), set by --quantization
_quantized_weights = {}
GGUF_FILE = None  # set by --gguf
PERTURB = None  # set by --perturb
_perturbation = np.random.default_rng(0)
Q8_0_FOR = []  # weight name parts stored as Q8_0 instead (--q8-0-for)
GGUF_BLOCKS = {}  # transformers name → "q8_0" or "q8_k": linear weights stored as blocks in GGUF_FILE, and their input format


def quantized_inputs(h, kind="q8_0"):
    """`h`'s rows quantized as llama.cpp quantizes a layer's input (Q8_0, or Q8_K for k-quant weights) and back."""
    from gguf import GGMLQuantizationType, quants
    if PERTURB:
        h = h * (1 + PERTURB * _perturbation.choice([-1.0, 1.0], size=h.shape))
    inputs = h.astype(np.float32)
    if kind == "q8_k":
        from quant_reference import q8_K
        return q8_K(inputs.reshape(-1, inputs.shape[-1]))[1].reshape(inputs.shape)
    q8 = GGMLQuantizationType.Q8_0
    return quants.dequantize(quants.quantize(inputs, q8), q8).reshape(inputs.shape).astype(np.float64)


def load_gguf(path, config):
    """The GGUF file's tensors under transformers' names, as float64."""
    from gguf import GGMLQuantizationType, GGUFReader, quants
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    permuted = GGUFReader(path).fields["general.architecture"].contents() == "llama"
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
             "ffn_gate_inp": "block_sparse_moe.gate"}
    experts = {"ffn_gate_exps": "w1", "ffn_up_exps": "w3", "ffn_down_exps": "w2"}
    weights = {}
    for tensor in GGUFReader(path).tensors:
        kind = GGMLQuantizationType(tensor.tensor_type)
        shape = [int(d) for d in reversed(tensor.shape.tolist())]
        values = quants.dequantize(tensor.data, kind).reshape(shape).astype(np.float64)
        blocks = {GGMLQuantizationType.Q8_0: "q8_0", GGMLQuantizationType.Q4_0: "q8_0",
                  GGMLQuantizationType.Q4_K: "q8_k", GGMLQuantizationType.Q6_K: "q8_k"}.get(kind)
        top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
        if tensor.name in top:
            names_out = [(top[tensor.name], values)]
        else:
            _, layer, rest = tensor.name.split(".", 2)
            base, suffix = rest.rsplit(".", 1)
            p = f"model.layers.{layer}."
            if base in experts:
                names_out = [(f"{p}block_sparse_moe.experts.{e}.{experts[base]}.{suffix}", values[e]) for e in range(values.shape[0])]
            else:
                if permuted and base in ("attn_q", "attn_k"):
                    n = heads if base == "attn_q" else kv_heads
                    # Undo convert_hf_to_gguf's interleaving: per head, (pair, half) back to (half, pair).
                    values = values.reshape(n, values.shape[0] // n // 2, 2, *values.shape[1:]).swapaxes(1, 2).reshape(values.shape)
                names_out = [(p + names[base] + "." + suffix, values)]
        for name, value in names_out:
            weights[name] = value
            if blocks:
                GGUF_BLOCKS[name] = blocks
    return weights


def linear(h, w, key, expert=None, rows=None):
    """h @ W.T for weight `key` (one expert's slice of a fused tensor with `expert`, `rows` of it), quantized
    as llama.cpp multiplies when --quantization is given."""
    weight = w[key] if expert is None else w[key][expert]
    if rows is not None:
        weight = weight[rows]
    if key not in GGUF_BLOCKS and QUANTIZATION is None:
        return h @ weight.T
    stored = "q8_0" if any(part in key for part in Q8_0_FOR) else None
    if key in GGUF_BLOCKS and stored is None:
        return quantized_inputs(h, GGUF_BLOCKS[key]) @ weight.T
    stored = stored or QUANTIZATION
    from gguf import GGMLQuantizationType, quants
    from quant_reference import quantize_q4_K, quantize_q6_K
    kind = GGMLQuantizationType[stored.upper()]
    cache_key = (key, expert, None if rows is None else (rows.start, rows.stop))
    if cache_key not in _quantized_weights:
        values = weight.astype(np.float32)
        quantize = {"q4_k": quantize_q4_K, "q6_k": quantize_q6_K}.get(stored, lambda v: quants.quantize(v, kind))
        with np.errstate(all="ignore"):
            blocks = quantize(values)
        _quantized_weights[cache_key] = quants.dequantize(blocks, kind).reshape(values.shape).astype(np.float64)
    return quantized_inputs(h, "q8_k" if stored in ("q4_k", "q6_k") else "q8_0") @ _quantized_weights[cache_key].T


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    data = raw[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        chunk = data[start:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(chunk, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(chunk, dtype=DTYPES[info["dtype"]])
        tensors[name] = array.astype(np.float64).reshape(info["shape"])
    return tensors


def load_weights(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(load_safetensors(os.path.join(directory, name)))
    return weights


def inverse_frequencies(config, head_dim):
    theta = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        low_wavelength, high_wavelength = original / low, original / high
        result = []
        for f in inv:
            wavelength = 2 * math.pi / f
            if wavelength < high_wavelength:
                result.append(f)
            elif wavelength > low_wavelength:
                result.append(f / factor)
            else:
                smooth = (original / wavelength - low) / (high - low)
                result.append((1 - smooth) * f / factor + smooth * f)
        inv = np.array(result)
    return inv


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def sparse_moe(h, w, p, config):
    """MixtralSparseMoeBlock for every row of h."""
    experts, top_k = config.get("num_local_experts", 8), config.get("num_experts_per_tok", 2)
    logits = h @ w[p + "gate.weight"].T
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = probabilities / probabilities.sum(axis=-1, keepdims=True)
    out = np.zeros_like(h)
    for row in range(h.shape[0]):
        # The k most probable experts, ties to the lower index (a stable sort of the negated probabilities).
        chosen = np.argsort(-probabilities[row], kind="stable")[:top_k]
        weights = probabilities[row][chosen] / probabilities[row][chosen].sum()
        for expert, weight in zip(chosen, weights):
            if p + "experts.gate_up_proj" in w:
                # transformers 5's fused layout: [E, 2I, H] with the gate's rows first, and [E, H, I].
                gate_up = linear(h[row], w, p + "experts.gate_up_proj", expert=expert)
                gate, up = np.split(gate_up, 2)
                out[row] += weight * linear(gate / (1 + np.exp(-gate)) * up, w, p + "experts.down_proj", expert=expert)
            else:
                e = f"{p}experts.{expert}."
                gate = linear(h[row], w, e + "w1.weight")
                up = linear(h[row], w, e + "w3.weight")
                out[row] += weight * linear(gate / (1 + np.exp(-gate)) * up, w, e + "w2.weight")
    assert experts == w[p + "gate.weight"].shape[0]
    return out


def forward(directory, tokens):
    config = json.load(open(os.path.join(directory, "config.json")))
    w = load_gguf(GGUF_FILE, config) if GGUF_FILE else load_weights(directory)
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    eps = config.get("rms_norm_eps", 1e-6)
    qkv_bias = config["model_type"] == "qwen2" or config.get("attention_bias", False)
    o_bias = config.get("attention_bias", False) and config["model_type"] != "qwen2"

    positions = np.arange(len(tokens), dtype=np.float64)
    angles = np.outer(positions, inverse_frequencies(config, head_dim))
    cos = np.cos(np.concatenate([angles, angles], axis=-1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], axis=-1))[:, None, :]
    mask = np.triu(np.full((len(tokens), len(tokens)), -np.inf), k=1)
    # Mistral's sliding window (transformers' MistralAttention): query q sees key k only when q - k < window.
    window = config.get("sliding_window")
    if window is not None and (config["model_type"] == "mistral" or config.get("use_sliding_window", False)):
        mask = mask + np.tril(np.full((len(tokens), len(tokens)), -np.inf), k=-window)

    x = w["model.embed_tokens.weight"][np.array(tokens)]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, w, p + "self_attn.q_proj.weight")
        k = linear(h, w, p + "self_attn.k_proj.weight")
        v = linear(h, w, p + "self_attn.v_proj.weight")
        if qkv_bias:
            q, k, v = q + w[p + "self_attn.q_proj.bias"], k + w[p + "self_attn.k_proj.bias"], v + w[p + "self_attn.v_proj.bias"]
        q = q.reshape(len(tokens), heads, head_dim)
        k = k.reshape(len(tokens), kv_heads, head_dim)
        v = v.reshape(len(tokens), kv_heads, head_dim)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        repeat = heads // kv_heads
        k = np.repeat(k, repeat, axis=1)
        v = np.repeat(v, repeat, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores = scores / scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(len(tokens), heads * head_dim)
        out = linear(attended, w, p + "self_attn.o_proj.weight")
        if o_bias:
            out = out + w[p + "self_attn.o_proj.bias"]
        x = x + out
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if config["model_type"] == "mixtral":
            # transformers 4 names the block block_sparse_moe, transformers 5 mlp.
            block = "block_sparse_moe." if p + "block_sparse_moe.gate.weight" in w else "mlp."
            x = x + sparse_moe(h, w, p + block, config)
            continue
        gate = linear(h, w, p + "mlp.gate_proj.weight")
        up = linear(h, w, p + "mlp.up_proj.weight")
        x = x + linear(gate / (1 + np.exp(-gate)) * up, w, p + "mlp.down_proj.weight")
    x = rms_norm(x, w["model.norm.weight"], eps)
    if config.get("tie_word_embeddings", False):
        return linear(x, w, "model.embed_tokens.weight") if GGUF_FILE else x @ w["model.embed_tokens.weight"].T
    return linear(x, w, "lm_head.weight")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", required=True, help="comma-separated token ids")
    parser.add_argument("--quantization", choices=["q8_0", "q4_0", "q4_k", "q6_k"])
    parser.add_argument("--gguf")
    parser.add_argument("--q8-0-for", default="")
    parser.add_argument("--perturb", type=float)
    args = parser.parse_args()
    global GGUF_FILE, PERTURB, QUANTIZATION
    GGUF_FILE, PERTURB, QUANTIZATION = args.gguf, args.perturb, args.quantization
    Q8_0_FOR.extend(part for part in args.q8_0_for.split(",") if part)
    tokens = [int(t) for t in args.tokens.split(",")]
    print(json.dumps({"logits": forward(args.model, tokens).tolist()}))


if __name__ == "__main__":
    main()
