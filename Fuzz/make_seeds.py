#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed inputs into Fuzz/corpus/<harness>/seed-*.

The seeds are valid messages and files written from the formats' descriptions (the `///` comments of
WireHeader, StoreWire, PeerHello, QueueFrame, LivenessMessage, StepPlan; safetensors' and GGUF's published layouts), not
by Tandem's encoders, plus the config.json and tokenizer.json of a `tandem make-model --preset tiny`
checkpoint when one is given: make_seeds.py [CHECKPOINT_DIR].
"""
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    directory = os.path.join(ROOT, harness)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name), "wb") as file:
        file.write(data)


def lstr(data):
    data = data.encode() if isinstance(data, str) else data
    return struct.pack("<I", len(data)) + data


# Data-plane header: magic u16 0x4D54, op u8, dtype u8, tag i32, sequence u64, count u64, bytes u64, group u32, 0.
for op, dtype, seq, count in [(1, 1, 7, 1024), (9, 0, 1, 16), (12, 3, 2**40, 0), (99, 250, 2**64 - 1, 2**63)]:
    write("fuzz-wire-header", f"op{op}", struct.pack("<HBBiQQQII", 0x4D54, op, dtype, -1 if op == 9 else 0, seq, count, count * 4 % 2**64, 0xDEADBEEF, 0))

# Store requests (first byte even) and answers (first byte odd).
requests = {
    "hello": bytes([1]) + lstr(b"0123456789abcdef0123"),
    "set": bytes([2]) + lstr("addr/1") + lstr(b"40123 127.0.0.1"),
    "get": bytes([3]) + lstr("addr/0") + struct.pack("<Q", 30000),
    "wait": bytes([4]) + struct.pack("<I", 2) + lstr("a") + lstr("b") + struct.pack("<Q", 5),
    "add": bytes([5]) + lstr("counter") + struct.pack("<q", -3),
    "cas": bytes([6]) + lstr("k") + lstr(b"") + lstr(b"v"),
    "delete": bytes([7]) + lstr("k"),
    "numkeys": bytes([8]),
}
for name, body in requests.items():
    write("fuzz-store-protocol", "request-" + name, b"\x00" + body)
answers = {
    "ok-empty": bytes([0]),
    "ok-value": bytes([0]) + lstr(b"value"),
    "timeout": bytes([1]) + struct.pack("<I", 1) + lstr("addr/3"),
    "refused": bytes([2]),
    "bad": bytes([3]) + lstr("malformed request"),
}
for name, body in answers.items():
    write("fuzz-store-protocol", "answer-" + name, b"\x01" + body)

# Peer hellos: u32 length, then magic u64 "TNDMHELO", token, group, rank u32, world u32, channel u8.
for rank, world, channel, group in [(1, 2, 1, "world"), (3, 4, 2, "world/tp0"), (7, 8, 1, "queue")]:
    body = struct.pack("<Q", 0x4F4C_4548_4D44_4E54) + lstr(b"job-token-of-24-bytes!!!") + lstr(group) + struct.pack("<IIB", rank, world, channel)
    write("fuzz-peer-hello", f"rank{rank}", struct.pack("<I", len(body)) + body)

# Queue: prefixes (first byte even) and chunk headers (odd; the first byte also sets the inline capacity).
for name, length in [("small", 100), ("closed", 2**64 - 1), ("limit", 1 << 30)]:
    write("fuzz-queue-frame", "prefix-" + name, b"\x00" + struct.pack("<Q", length))
for name, length, overflow in [("inline", 100, 0), ("overflow", 1 << 20, 1), ("empty", 0, 0)]:
    write("fuzz-queue-frame", "chunk-" + name, b"\x0f" + struct.pack("<QQ", length, overflow))

# Liveness streams: goodbye (1); abort (2, lost rank i32, u32 length + text).
abort = lambda lost, text: bytes([2]) + struct.pack("<i", lost) + lstr(text)
write("fuzz-liveness", "goodbye", b"\x03" + bytes([1]))
write("fuzz-liveness", "abort-lost", b"\x05" + abort(2, "rank 2 failed: its connection closed"))
write("fuzz-liveness", "abort-other", b"\x00" + abort(-1, "timeout in allReduce #4") + bytes([1]))

# Step plans: i32 words: magic "TDSP", kind (0 shutdown, 1 step), count, per sequence (tokens, cached,
# wants logits, blocks, block ids…), then the tokens.
magic = 0x5444_5350
write("fuzz-step-plan", "shutdown", struct.pack("<ii", magic, 0))
words = [magic, 1, 2, 3, 0, 1, 1, 5, 1, 16, 1, 2, 6, 7, 101, 102, 103, 104]
write("fuzz-step-plan", "two-sequences", struct.pack(f"<{len(words)}i", *words))


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, size) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + size]}
        data += bytes(range(256)) * (size // 256) + bytes(size % 256)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


write("fuzz-safetensors", "two", safetensors({"a.weight": ("F32", [2, 3], 24), "b": ("BF16", [4], 8)}, {"format": "pt"}))
write("fuzz-safetensors", "empty-shape", safetensors({"scalar": ("F16", [], 2), "none": ("I64", [0, 5], 0)}))
write("fuzz-safetensors", "ints", safetensors({"x": ("I8", [3, 3], 9), "y": ("I32", [1], 4), "z": ("U8", [2], 2)}))



def gguf(metadata, tensors, alignment=32):
    """GGUF v3 from its published layout: magic, version, counts, key-value pairs, tensor infos (dimensions in
    ggml order), padding to the alignment, data."""
    gstr = lambda text: struct.pack("<Q", len(text.encode())) + text.encode()
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, payload in metadata:
        out += gstr(key) + struct.pack("<I", kind) + payload
    offset, data = 0, b""
    for name, dims, kind, size in tensors:
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", kind, offset)
        data += bytes(range(256)) * (size // 256) + bytes(size % 256)
        data += bytes(-len(data) % alignment)
        offset = len(data)
    return out + bytes(-len(out) % alignment) + data


write("fuzz-gguf", "tensors", gguf(
    [("general.architecture", 8, struct.pack("<Q", 5) + b"llama"), ("general.alignment", 4, struct.pack("<I", 32)),
     ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + struct.pack("<Q", 1) + b"a" + struct.pack("<Q", 2) + b"bc"),
     ("flag", 7, b"\x01"), ("ratio", 6, struct.pack("<f", 0.5))],
    [("q8", [64, 2], 8, 136), ("f32", [4], 0, 16), ("q4k", [256], 12, 144)]))
write("fuzz-gguf", "empty", gguf([], []))

write("fuzz-checkpoint-index", "two-files", json.dumps({"metadata": {"total_size": 128}, "weight_map": {
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}}).encode())

configs = {
    "llama": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 512, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 256,
              "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": [2, 3],
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 128}},
    "qwen2": {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 1, "vocab_size": 300, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 512,
              "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 4096},
    "mistral": {"model_type": "mistral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 100, "sliding_window": 64, "rope_scaling": None},
}
for name, config in configs.items():
    write("fuzz-model-config", name, json.dumps(config).encode())

tokenizer = {
    "version": "1.0", "added_tokens": [{"id": 260, "content": "<|bos|>", "single_word": False, "lstrip": False, "rstrip": False,
                                        "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [260], "tokens": ["<|bos|>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
              "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": {}, "merges": []},
}
# The GPT-2 byte-to-unicode table (the byte-level alphabet), then four merges.
printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
alphabet, extra = {}, 0
for byte in range(256):
    if byte in printable:
        alphabet[byte] = chr(byte)
    else:
        alphabet[byte] = chr(256 + extra)
        extra += 1
vocab = {alphabet[byte]: byte for byte in range(256)}
merges = [["t", "h"], ["th", "e"], ["Ġ", "the"], ["a", "n"]]
for index, (left, right) in enumerate(merges):
    vocab[left + right] = 256 + index
tokenizer["model"]["vocab"] = vocab
tokenizer["model"]["merges"] = merges
write("fuzz-tokenizer", "byte-level", json.dumps(tokenizer, ensure_ascii=False).encode() + b"\x00the cat and the <|bos|> \xc3\xa9t\xc3\xa9 123")

if len(sys.argv) > 1:
    with open(os.path.join(sys.argv[1], "config.json"), "rb") as file:
        write("fuzz-model-config", "make-model", file.read())
    with open(os.path.join(sys.argv[1], "tokenizer.json"), "rb") as file:
        write("fuzz-tokenizer", "make-model", file.read() + b"\x00Tandem splits a model across\n\n two machines.")
