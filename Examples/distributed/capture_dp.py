"""A data-parallel capture: every process captures every world_size-th example, rank 0 merges.

    torchrun --standalone --nproc_per_node 2 Examples/distributed/capture_dp.py MODEL EXAMPLES OUT

MODEL is anything from_pretrained loads, EXAMPLES a JSONL file of examples (see python/README.md).
Each rank writes OUT.shards/rank{r}; rank 0 joins them into OUT (tensor files hard-linked, not
copied) and removes the shard folders. On GPUs use the "nccl" backend; the capture is the same.
"""
import argparse
import os
import shutil

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer

import qkcapture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("examples")
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args()

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device)
    shards = [f"{args.out}.shards/rank{r}" for r in range(world_size)]
    qkcapture.capture_hf(model, tokenizer, args.examples, shards[rank], shard=(rank, world_size),
                         dtype=args.dtype, batch_size=args.batch_size, overwrite=True, progress=False)
    dist.barrier()  # every shard is written
    if rank == 0:
        qkcapture.merge(shards, args.out, overwrite=True)
        shutil.rmtree(f"{args.out}.shards")  # the merged capture holds its own links to the tensors
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
