#!/usr/bin/env python3
"""Writes a GGUF file of a `tandem make-model` checkpoint with llama.cpp's own converter.

    .peers/vllm/bin/python benchmarks/convert_to_gguf.py LLAMA_CPP_SOURCE MODEL_DIR OUT.gguf

The converter identifies a tokenizer's pre-tokenizer by hashing how it splits a test text and does not know a
locally trained one; make-model's tokenizer splits with Llama 3's pattern, which llama.cpp calls `llama-bpe`,
so that name is given instead of the hash lookup. Needs torch and transformers (the vLLM environment has both).
"""
import sys

source, model, out = sys.argv[1:4]
sys.path[:0] = [source, f"{source}/gguf-py"]
import convert_hf_to_gguf as converter  # noqa: E402
from conversion.base import TextModel  # noqa: E402

TextModel.get_vocab_base_pre = lambda self, tokenizer: "llama-bpe"
sys.argv = ["convert_hf_to_gguf.py", model, "--outfile", out, "--outtype", "bf16"]
converter.main()
