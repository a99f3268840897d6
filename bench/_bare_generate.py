"""The bare script that ``generation.py`` measures the run path against: the same model, prompts, batch and
decoding settings, answered by ``model.generate`` directly in one process, with none of Enclave (no fork
server, no supervisor, no scrubber, no database). Prints one JSON line: tokens and seconds of the loop.

    python bench/_bare_generate.py MODEL_DIR PROMPTS_JSON DECODING_JSON
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    model_dir, prompts_path, decoding_json = sys.argv[1:4]
    decoding = json.loads(decoding_json)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    with open(prompts_path, encoding="utf-8") as stream:
        prompts = json.load(stream)
    size, tokens, generate_seconds = decoding["batch_size"], 0, 0.0
    sampling = decoding["temperature"] > 0
    extra = {"temperature": decoding["temperature"], "top_p": decoding["top_p"]} if sampling else {}
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(prompts), size)):
        texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 for m in prompts[start : start + size]]  # fmt: skip
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(decoding["seed"] + number)
        begun = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **encoded, max_new_tokens=decoding["max_new_tokens"], num_return_sequences=decoding["candidates"],
                do_sample=sampling, pad_token_id=tokenizer.pad_token_id, **extra,
            )  # fmt: skip
        generate_seconds += time.perf_counter() - begun
        for row in out[:, encoded["input_ids"].shape[1] :].tolist():
            end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
            tokens += end
            tokenizer.decode(row[:end], skip_special_tokens=True)
    loop = time.perf_counter() - started
    print(json.dumps({"tokens": tokens, "loop_seconds": loop, "generate_seconds": generate_seconds}))


if __name__ == "__main__":
    main()
