"""The merge, in a child of the gpu worker forked from the training fork server (torch, transformers and peft
already imported): load the base model and the adapter from their directories alone, offline, merge the LoRA
weights into the base (``merge_and_unload``) and save safetensors with the tokenizer. No Django here; the
supervisor (``training.merge_runner``) reads ``result.json``, or ``error.json`` with why it failed."""

import json
import os
import sys
import traceback
from pathlib import Path


def merge_main(spec_path: str) -> None:
    from core.offline import apply_offline_env

    apply_offline_env()
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out_dir"])
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        base = AutoModelForCausalLM.from_pretrained(spec["model_dir"], local_files_only=True, torch_dtype="auto")
        model = PeftModel.from_pretrained(base, spec["adapter_dir"], local_files_only=True)
        merged = model.merge_and_unload()
        merged.save_pretrained(out, safe_serialization=True, max_shard_size="1000GB")
        tokenizer_dir = spec["adapter_dir"] if (Path(spec["adapter_dir"]) / "tokenizer_config.json").exists() \
            else spec["model_dir"]  # fmt: skip
        AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True).save_pretrained(out)
        (out.parent / "result.json").write_text(json.dumps({"dtype": str(merged.dtype).removeprefix("torch.")}))
    except Exception as exc:
        (out.parent / "error.json").write_text(json.dumps({"message": f"{type(exc).__name__}: {exc}"}))
        traceback.print_exc()
        sys.exit(1)
