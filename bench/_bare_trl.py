"""The bare TRL script that ``training_jobs.py`` measures the job path against: the same model, data and
config, trained by TRL's trainer directly in one process, with none of Enclave (no fork server, no event
stream, no supervisor, no database). Prints one JSON line: steps and seconds of ``trainer.train()``.

    python bench/_bare_trl.py KIND MODEL_DIR TRAIN_JSONL CONFIG_JSON
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer


def main() -> None:
    kind, model_dir, train_path, config_json = sys.argv[1:5]
    config = json.loads(config_json)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if kind == "reward":  # a one-output score head on the base model
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=1, local_files_only=True, dtype=torch.float32
        )
        model.config.pad_token_id = tokenizer.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    keys = ("messages",) if kind == "sft" else ("prompt", "chosen", "rejected")
    with open(train_path, encoding="utf-8") as stream:
        rows = [{key: json.loads(line)[key] for key in keys} for line in stream if line.strip()]
    lora = LoraConfig(
        r=config["lora_r"], lora_alpha=config["lora_alpha"], lora_dropout=config["lora_dropout"],
        target_modules="all-linear", task_type="SEQ_CLS" if kind == "reward" else "CAUSAL_LM",
    )  # fmt: skip
    args = {
        "output_dir": os.path.join(os.path.dirname(train_path), "bare-checkpoints"),
        "learning_rate": config["learning_rate"], "max_steps": config["max_steps"],
        "per_device_train_batch_size": config["batch_size"], "lr_scheduler_type": config["lr_scheduler"],
        "logging_steps": config["logging_steps"], "save_strategy": "no", "report_to": [], "seed": config["seed"],
        "data_seed": config["seed"], "full_determinism": True, "disable_tqdm": True,
        "max_length": config["max_length"], "bf16": False, "use_cpu": True, "dataloader_num_workers": 0,
    }  # fmt: skip
    trainer: SFTTrainer | DPOTrainer | RewardTrainer
    if kind == "reward":
        trainer = RewardTrainer(model=model, args=RewardConfig(**args), train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, peft_config=lora)  # fmt: skip
    elif kind == "sft":
        trainer = SFTTrainer(model=model, args=SFTConfig(**args), train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, peft_config=lora)  # fmt: skip
    else:
        trainer = DPOTrainer(
            model=model, args=DPOConfig(**args, beta=config["beta"], loss_type=config["loss_type"]),
            train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora,
        )  # fmt: skip
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    sys.stdout.write(json.dumps({"steps": trainer.state.global_step, "seconds": seconds}) + "\n")


if __name__ == "__main__":
    main()
