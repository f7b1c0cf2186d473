#!/usr/bin/env python3
"""Independent reference for Tandem's tokenizer: the Hugging Face `tokenizers` package.

  tokenizer_reference.py train --style gpt2|llama3|qwen2|lowercase --out DIR
      trains a byte-level BPE tokenizer in the given style on the test corpus and writes DIR/tokenizer.json
      (the layout each family's published tokenizer.json has: pre-tokenizer, decoder, post-processor,
      normalizer and added tokens);
  tokenizer_reference.py encode --tokenizer FILE [--corpus FILE]
      prints, as JSON, for each corpus text: ids with and without special tokens, and the decoded text with
      and without skipping special tokens.
"""
import argparse
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "tokenizer_corpus.json")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def training_texts(corpus):
    # The corpus, plus repeated English so that merges form real words and subwords.
    english = ("the model is split across ranks and every rank holds a slice of each weight; "
               "tokens flow through the layers and the logits are gathered where sampling happens. ")
    return corpus + [english] * 50


def train(style, out):
    corpus = json.load(open(CORPUS))
    tokenizer = Tokenizer(models.BPE())
    if style == "gpt2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        specials = ["<|endoftext|>"]
    elif style == "llama3":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    elif style == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        specials = ["<|endoftext|>"]
    elif style == "lowercase":
        # Not a published family: exercises a normalizer sequence and a normalized added token.
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        specials = ["<|endoftext|>"]
    else:
        sys.exit(f"unknown style {style}")
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(training_texts(corpus), trainer=trainer)
    if style == "llama3":
        bos = tokenizer.token_to_id("<|begin_of_text|>")
        tokenizer.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
        # Chat markers that swallow the whitespace beside them.
        tokenizer.add_special_tokens([AddedToken("<|im_start|>", lstrip=True, normalized=False),
                                      AddedToken("<|im_end|>", rstrip=True, normalized=False)])
    if style == "lowercase":
        tokenizer.add_tokens([AddedToken("TandemRuntime", normalized=True)])
    if style == "qwen2":
        tokenizer.add_special_tokens(["<|im_start|>", "<|im_end|>"])
        # A non-special added token, matched in normalized text.
        tokenizer.add_tokens([AddedToken("façade", normalized=True)])
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tokenizer.save(path)
    if style == "llama3":
        # Llama 3 emits a word that is in the vocabulary as one token without merging.
        data = json.load(open(path))
        data["model"]["ignore_merges"] = True
        json.dump(data, open(path, "w"), ensure_ascii=False)


def encode(tokenizer_path, corpus_path):
    tokenizer = Tokenizer.from_file(tokenizer_path)
    results = []
    for text in json.load(open(corpus_path)):
        with_specials = tokenizer.encode(text, add_special_tokens=True).ids
        results.append({
            "text": text,
            "ids": with_specials,
            "ids_plain": tokenizer.encode(text, add_special_tokens=False).ids,
            "decoded": tokenizer.decode(with_specials, skip_special_tokens=True),
            "decoded_with_specials": tokenizer.decode(with_specials, skip_special_tokens=False),
        })
    json.dump(results, sys.stdout, ensure_ascii=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train")
    train_parser.add_argument("--style", required=True)
    train_parser.add_argument("--out", required=True)
    encode_parser = sub.add_parser("encode")
    encode_parser.add_argument("--tokenizer", required=True)
    encode_parser.add_argument("--corpus", default=CORPUS)
    args = parser.parse_args()
    if args.command == "train":
        train(args.style, args.out)
    else:
        encode(args.tokenizer, args.corpus)


if __name__ == "__main__":
    main()
