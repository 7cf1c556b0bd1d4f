#!/usr/bin/env python3
"""Benchmark of qkcapture.capture_hf against the bare forward passes of the same batches.

    python Benchmarks/hf_capture_bench.py [--prompts 64,256] [--repeats 3] [--batch-size 8]

A Llama-shaped model with random weights, built from a config (no download): 8 layers, hidden
512, 8 query heads and 2 key/value heads (grouped-query), d_head 64, SwiGLU 1408, vocabulary of
4096 words through a word-level fast tokenizer; prompts of 96 words (97 tokens with BOS), the
query at the last word and 12 keys by character span; every layer captured, BF16, batches of 8.

Each measurement runs in a fresh child process:
- `forward`: the base model's forward passes over the same padded batches (tokenized before the
  clock starts), as `model.base_model(input_ids, attention_mask)` does with no capture at all;
- `forward_to_last`: the same, stopped where a capture of every layer stops (at the last layer's
  attention), i.e. the model's share of the capture's work;
- `capture`: the whole `capture_hf` call (checking and tokenizing the examples from a JSONL file,
  the forward passes, gathering q and k, converting and writing the capture).
Children alternate the three so that the load of a shared machine hits all alike. Throughput:
prompts/s and capture MB/s; overheads are capture time / forward time − 1. Peak RSS
is the child's ru_maxrss; its baseline is the RSS after building the model and the tokenizer.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N_WORDS, PROMPT_WORDS, N_KEYS = 4096, 96, 12
CONFIG = dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
              num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def build():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(N_WORDS)]
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), **CONFIG)).eval()
    return model, tokenizer, words


def write_examples(path: str, count: int, words) -> None:
    rng = random.Random(0)
    with open(path, "w") as f:
        for index in range(count):
            chosen = [rng.choice(words) for _ in range(PROMPT_WORDS)]
            starts, cursor = [], 0
            for word in chosen:
                starts.append(cursor)
                cursor += len(word) + 1
            text = " ".join(chosen)
            keys = [{"char_span": [starts[i], starts[i] + len(chosen[i])], "labels": {"order": str(j)}}
                    for j, i in enumerate(sorted(rng.sample(range(PROMPT_WORDS - 1), N_KEYS)))]
            query = {"char_span": [starts[-1], len(text)], "labels": {"order": str(rng.randrange(N_KEYS))}}
            f.write(json.dumps({"id": f"p{index}", "text": text, "query": query, "keys": keys}) + "\n")


def child(mode: str, n_prompts: int, batch_size: int, directory: str) -> dict:
    import torch

    import qkcapture
    from qkcapture.capture import Batch, iter_examples, tokenize_example

    model, tokenizer, words = build()
    examples = os.path.join(directory, f"examples-{n_prompts}.jsonl")
    if not os.path.exists(examples):
        write_examples(examples, n_prompts, words)
    baseline = rss_kib()
    if mode in ("forward", "forward_to_last"):
        prompts = [tokenize_example(tokenizer, e) for e in iter_examples(examples)]
        batches = [Batch(prompts[i:i + batch_size], 0) for i in range(0, len(prompts), batch_size)]
        if mode == "forward_to_last":
            # The work a capture of every layer needs: it stops inside the last layer's attention.
            def stop(*_):
                raise StopIteration

            model.base_model.layers[-1].self_attn.register_forward_pre_hook(stop)
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                try:
                    model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                except StopIteration:
                    pass
        seconds = time.perf_counter() - start
        size = 0
    else:
        target = os.path.join(directory, "capture")
        start = time.perf_counter()
        qkcapture.capture_hf(model, tokenizer, examples, target, model_name="bench/llama-shaped", dtype="bf16",
                             batch_size=batch_size, overwrite=True, progress=False)
        seconds = time.perf_counter() - start
        size = sum(os.path.getsize(os.path.join(target, n)) for n in os.listdir(target) if n.endswith(".safetensors"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step": f"hf_capture_{mode}", "prompts": n_prompts, "seconds": seconds, "bytes": size,
            "peak_rss_kib": peak, "baseline_rss_kib": baseline, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="64,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PROMPTS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, prompts, directory = args.child
        print(json.dumps(child(mode, int(prompts), args.batch_size, directory)))
        return

    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {os.cpu_count()} cores; "
          f"Llama-shaped: 8 layers, hidden 512, 8 heads / 2 kv heads, d_head 64; {PROMPT_WORDS + 1} tokens a prompt, "
          f"{N_KEYS} keys, batch {args.batch_size}, BF16, median of {args.repeats}")
    print("| prompts | forward | forward to last attention | capture_hf | vs forward | vs same work | prompts/s "
          "| MB/s | capture MB | peak − baseline, forward | peak − baseline, capture |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "out") if os.path.isdir(os.path.join(HERE, "out")) else None) as directory:
        for n in [int(x) for x in args.prompts.split(",")]:
            runs = {"forward": [], "forward_to_last": [], "capture": []}
            for _ in range(args.repeats):
                for mode in runs:
                    done = subprocess.run([sys.executable, __file__, "--batch-size", str(args.batch_size), "--child",
                                           mode, str(n), directory], capture_output=True, text=True, check=True)
                    record = json.loads(done.stdout.strip().splitlines()[-1])
                    runs[mode].append(record)
                    with open(os.path.join(HERE, "out", "results.jsonl"), "a") if os.path.isdir(os.path.join(HERE, "out")) else open(os.devnull, "w") as log:
                        log.write(json.dumps(record) + "\n")
            forward = statistics.median(r["seconds"] for r in runs["forward"])
            same_work = statistics.median(r["seconds"] for r in runs["forward_to_last"])
            capture = statistics.median(r["seconds"] for r in runs["capture"])
            size = runs["capture"][0]["bytes"] / 1e6
            growth = statistics.median((r["peak_rss_kib"] - r["baseline_rss_kib"]) / 1024 for r in runs["capture"])
            forward_growth = statistics.median((r["peak_rss_kib"] - r["baseline_rss_kib"]) / 1024 for r in runs["forward"])
            print(f"| {n} | {forward:.2f} s | {same_work:.2f} s | {capture:.2f} s | {100 * (capture / forward - 1):+.1f}% | "
                  f"{100 * (capture / same_work - 1):+.1f}% | {n / capture:.1f} | {size / capture:.3f} | {size:.1f} | "
                  f"{forward_growth:.0f} MB | {growth:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
