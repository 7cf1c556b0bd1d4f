"""The data-parallel capture of capture_dp.py, launched by Hugging Face Accelerate.

    accelerate launch --num_processes 2 Examples/distributed/capture_accelerate.py MODEL EXAMPLES OUT
"""
import shutil
import sys

import torch
from accelerate import PartialState
from transformers import AutoModelForCausalLM, AutoTokenizer

import qkcapture

model_name, examples, out = sys.argv[1:4]
state = PartialState(cpu=not torch.cuda.is_available())  # rank and world size from the launcher
tokenizer = AutoTokenizer.from_pretrained(model_name)
model = AutoModelForCausalLM.from_pretrained(model_name, dtype=torch.float32).to(state.device)
shards = [f"{out}.shards/rank{r}" for r in range(state.num_processes)]
qkcapture.capture_hf(model, tokenizer, examples, shards[state.process_index],
                     shard=(state.process_index, state.num_processes), overwrite=True, progress=False)
state.wait_for_everyone()
if state.is_main_process:
    qkcapture.merge(shards, out, overwrite=True)
    shutil.rmtree(f"{out}.shards")
state.wait_for_everyone()
