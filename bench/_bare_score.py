"""The bare script that ``reward_scoring.py`` measures the scoring run path against: the same reward model (the
base model as a one-output sequence classifier with its PEFT adapter and score head) scores the same
conversations in the same batches, with plain transformers and PEFT in one process and none of Enclave (no fork
server, no supervisor, no database). Prints one JSON line: answers, seconds of the loop (tokenising, padding,
forward) and of the forward passes alone.

    python bench/_bare_score.py MODEL_DIR ADAPTER_DIR CONVERSATIONS_JSON BATCH_SIZE
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> None:
    model_dir, adapter_dir, conversations_path, batch = sys.argv[1:5]
    size = int(batch)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="right")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, local_files_only=True, dtype=torch.float32
    )
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, adapter_dir, local_files_only=True).eval()
    with open(conversations_path, encoding="utf-8") as stream:
        conversations = json.load(stream)
    forward_seconds, scores = 0.0, []
    started = time.perf_counter()
    for start in range(0, len(conversations), size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[start : start + size]]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        before = time.perf_counter()
        with torch.inference_mode():
            logits = model(**inputs).logits
        forward_seconds += time.perf_counter() - before
        scores.extend(logits[:, 0].tolist())
    loop_seconds = time.perf_counter() - started
    result = {"answers": len(scores), "loop_seconds": loop_seconds, "forward_seconds": forward_seconds}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
