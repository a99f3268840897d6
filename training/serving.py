"""Where an adapter loads: for each serving target the README names, whether this adapter loads there, with which
flag, or why not.

The verdicts are derived from the rules each project documents or enforces in its source, kept below in one table
with the address and the version read. Nothing here runs a server: a target's newer release may accept more (or
less), and the page says so. The inputs are the adapter's own ``adapter_config.json`` (rank, alpha, target modules,
DoRA, ``modules_to_save``) and the base model's architecture, read from its ``config.json`` when it was checked."""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from core.storage import artifact_storage
from training.config import ALL_LINEAR
from training.models import Adapter

logger = logging.getLogger(__name__)

LOADS = "loads"
LOADS_WITH_FLAG = "loads_with_flag"
DOES_NOT_LOAD = "does_not_load"
VERDICT_LABELS = {LOADS: "Loads", LOADS_WITH_FLAG: "Loads with a flag", DOES_NOT_LOAD: "Does not load"}

DERIVED_NOTE = (
    "Derived from the rules each project documents (sources and versions below), not from running the server."
)


@dataclass(frozen=True)
class Source:
    url: str
    version: str
    says: str


@dataclass(frozen=True)
class Target:
    """One serving target's rules. ``rank_steps``: the ranks its flag accepts (empty: no documented limit);
    ``architectures``: the documented list (the Hugging Face ``architectures`` names of config.json)."""

    key: str
    name: str
    how: str  # how it takes an adapter
    default_max_rank: int | None
    rank_steps: tuple[int, ...]
    rank_flag: str
    architectures: frozenset[str]
    dora: bool
    modules_to_save: bool
    # Per architecture, the target modules it applies; others are ignored (a warning), not refused.
    modules_by_architecture: dict[str, frozenset[str]] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()


_LLAMA_LIKE = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"})

VLLM = Target(
    key="vllm",
    name="vLLM",
    how="--enable-lora --lora-modules NAME=ADAPTER_DIR (PEFT directory as saved)",
    default_max_rank=16,
    rank_steps=(1, 8, 16, 32, 64, 128, 256, 320, 512),
    rank_flag="--max-lora-rank",
    # The causal LMs of vLLM's supported-models table whose LoRA column is ticked, among those Enclave meets.
    architectures=frozenset({
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
        "GemmaForCausalLM", "Gemma2ForCausalLM", "Phi3ForCausalLM", "PhiForCausalLM", "GraniteForCausalLM",
    }),
    dora=False,
    modules_to_save=False,
    sources=(
        Source("https://github.com/vllm-project/vllm/blob/main/vllm/config/lora.py", "commit 01230b4 (v0.11)",
               "max_lora_rank defaults to 16 and is one of 1, 8, 16, 32, 64, 128, 256, 320, 512"),
        Source("https://github.com/vllm-project/vllm/blob/main/vllm/lora/peft_helper.py",
               "commits 0214369 and later (main, read 2026-12)",
               "refuses DoRA ('vLLM does not yet support DoRA') and modules_to_save: none at all in older releases, "
               "only classifier or score of classification models in newer ones, so never for a causal LM"),
        Source("https://docs.vllm.ai/en/latest/models/supported_models.html", "read 2026-12",
               "LoRA is offered for the architectures whose LoRA column is ticked"),
    ),
)  # fmt: skip

LORAX = Target(
    key="lorax",
    name="TGI / LoRAX",
    how="LoRAX: adapter_id=ADAPTER_DIR with adapter_source=local, per request",
    default_max_rank=None,
    rank_steps=(),
    rank_flag="",
    architectures=frozenset({
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "GemmaForCausalLM", "Phi3ForCausalLM",
        "PhiForCausalLM", "Qwen2ForCausalLM", "QWenLMHeadModel", "CohereForCausalLM", "DbrxForCausalLM",
        "GPT2LMHeadModel", "BloomForCausalLM",
    }),
    dora=False,
    modules_to_save=False,
    modules_by_architecture={
        "LlamaForCausalLM": _LLAMA_LIKE, "MistralForCausalLM": _LLAMA_LIKE, "Qwen2ForCausalLM": _LLAMA_LIKE,
        "CohereForCausalLM": _LLAMA_LIKE,
        "MixtralForCausalLM": frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "lm_head"}),
        "GemmaForCausalLM": _LLAMA_LIKE - {"lm_head"},
        "Phi3ForCausalLM": frozenset({"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"}),
        "PhiForCausalLM": frozenset({"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head"}),
        "QWenLMHeadModel": frozenset({"c_attn", "c_proj", "w1", "w2", "lm_head"}),
        "DbrxForCausalLM": frozenset({"Wqkv", "out_proj", "lm_head"}),
        "GPT2LMHeadModel": frozenset({"c_attn", "c_proj", "c_fc"}),
        "BloomForCausalLM": frozenset({"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head"}),
    },
    sources=(
        Source("https://github.com/predibase/lorax/blob/main/docs/models/adapters/lora.md", "main, read 2026-12",
               "the target modules per architecture; modules it does not support are ignored with a warning"),
        Source("https://github.com/predibase/lorax/blob/main/server/lorax_server/adapters/lora.py",
               "commit 03679f3",
               "reads only r, lora_alpha, target_modules, fan_in_fan_out and use_rslora, and loads lora_A/lora_B "
               "only: DoRA magnitudes and modules_to_save weights would be dropped; ranks are padded for its kernels"),
    ),
)  # fmt: skip

LLAMA_CPP = Target(
    key="llama_cpp",
    name="llama.cpp",
    how="convert_lora_to_gguf.py --base BASE_DIR ADAPTER_DIR, then llama-server --lora ADAPTER.gguf",
    default_max_rank=None,
    rank_steps=(),
    rank_flag="",
    # Among the architectures convert_hf_to_gguf.py registers, those Enclave meets.
    architectures=frozenset({
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
        "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM", "PhiForCausalLM",
        "GPT2LMHeadModel", "BloomForCausalLM", "GraniteForCausalLM", "CohereForCausalLM",
    }),
    dora=False,
    modules_to_save=False,
    sources=(
        Source("https://github.com/ggml-org/llama.cpp/blob/master/convert_lora_to_gguf.py", "commit 0b03ada",
               "only lora_A/lora_B tensors (and norms) convert: any other tensor, such as DoRA's magnitude vector or "
               "a modules_to_save copy of embed_tokens or lm_head, stops it ('Not a lora_A or lora_B tensor'); an "
               "architecture convert_hf_to_gguf.py does not register is 'not supported'; no rank limit"),
    ),
)  # fmt: skip

OLLAMA = Target(
    key="ollama",
    name="Ollama",
    how="Modelfile: FROM the same base model, ADAPTER ADAPTER_DIR (safetensors), then ollama create",
    default_max_rank=None,
    rank_steps=(),
    rank_flag="",
    architectures=frozenset({
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM",
    }),
    dora=False,
    modules_to_save=False,
    sources=(
        Source("https://github.com/ollama/ollama/blob/main/docs/import.md", "commit eabad80",
               "imports safetensors adapters of Llama (2, 3, 3.1, 3.2), Mistral (1, 2, Mixtral) and Gemma (1, 2)"),
        Source("https://github.com/ggml-org/llama.cpp/blob/master/convert_lora_to_gguf.py", "commit 0b03ada",
               "Ollama converts adapters to GGUF as llama.cpp does: lora_A/lora_B tensors only"),
    ),
)  # fmt: skip

TARGETS: tuple[Target, ...] = (VLLM, LORAX, LLAMA_CPP, OLLAMA)


@dataclass(frozen=True)
class AdapterShape:
    """What the rules look at, from adapter_config.json and the base model's config.json."""

    r: int
    lora_alpha: float
    target_modules: tuple[str, ...]
    use_dora: bool
    modules_to_save: tuple[str, ...]
    architecture: str


def verdict(target: Target, shape: AdapterShape) -> dict[str, Any]:
    """One target's verdict: ``loads``, ``loads_with_flag`` (the flags named) or ``does_not_load`` (the reasons)."""
    refusals: list[str] = []
    flags: list[str] = []
    notes: list[str] = []
    if shape.architecture not in target.architectures:
        refusals.append(f"the base model's architecture {shape.architecture or '(unknown)'} is not among those "
                        f"{target.name} documents")  # fmt: skip
    if shape.use_dora and not target.dora:
        refusals.append(f"DoRA adapters: {target.name} does not support DoRA")
    if shape.modules_to_save and not target.modules_to_save:
        refusals.append(f"modules_to_save ({', '.join(shape.modules_to_save)}): {target.name} takes LoRA weights only")
    if target.rank_steps:
        if shape.r > target.rank_steps[-1]:
            refusals.append(f"rank {shape.r} is above {target.name}'s limit of {target.rank_steps[-1]}")
        elif target.default_max_rank is not None and shape.r > target.default_max_rank:
            needed = min(step for step in target.rank_steps if step >= shape.r)
            flags.append(f"{target.rank_flag} {needed}")
    allowed = target.modules_by_architecture.get(shape.architecture)
    if allowed is not None and not refusals:
        # PEFT matches a target module by its last name ("model.layers.0.self_attn.q_proj" is a "q_proj").
        names = {module.rsplit(".", 1)[-1] for module in shape.target_modules} - {ALL_LINEAR}
        ignored = sorted(names - allowed)
        if names and not names & allowed:
            refusals.append(f"none of the adapter's modules ({', '.join(ignored)}) is one {target.name} applies")
        elif ignored:
            notes.append(f"{target.name} ignores the adapter's {', '.join(ignored)} (with a warning)")
    state = DOES_NOT_LOAD if refusals else LOADS_WITH_FLAG if flags else LOADS
    return {
        "target": target.key,
        "name": target.name,
        "verdict": state,
        "verdict_label": VERDICT_LABELS[state],
        "flags": flags,
        "reasons": refusals,
        "notes": notes,
        "how": target.how,
        "sources": [{"url": s.url, "version": s.version, "says": s.says} for s in target.sources],
    }


def verdicts(shape: AdapterShape) -> list[dict[str, Any]]:
    return [verdict(target, shape) for target in TARGETS]


def shape_from_config(peft_config: dict[str, Any], architecture: str) -> AdapterShape:
    """Read the fields the rules need from an adapter_config.json as PEFT writes it."""
    modules = peft_config.get("target_modules") or ()
    return AdapterShape(
        r=int(peft_config.get("r") or 8),
        lora_alpha=float(peft_config.get("lora_alpha") or 8),
        target_modules=(modules,) if isinstance(modules, str) else tuple(modules),
        use_dora=bool(peft_config.get("use_dora")),
        modules_to_save=tuple(peft_config.get("modules_to_save") or ()),
        architecture=architecture,
    )


def adapter_shape(adapter: Adapter) -> tuple[AdapterShape, str]:
    """The adapter's shape and where it was read from: its stored adapter_config.json, else (a record without it)
    the job's config, where ``all-linear`` stands for the base model's linear modules."""
    architecture = adapter.base_model.architecture
    if any(entry["path"] == "adapter_config.json" for entry in adapter.files):
        try:
            with artifact_storage().open(f"{adapter.storage_prefix}/adapter_config.json", "rb") as stream:
                return shape_from_config(json.loads(stream.read()), architecture), "adapter_config.json"
        except (OSError, ValueError) as exc:  # gone from the store (an erasure, an operator) or unreadable
            logger.warning("adapter #%s: adapter_config.json unreadable (%s); using the job's config", adapter.pk, exc)
    config = adapter.config
    modules = tuple(config.get("target_modules") or (ALL_LINEAR,))
    if modules == (ALL_LINEAR,):
        modules = tuple(adapter.base_model.linear_modules)
    shape = AdapterShape(
        r=int(config.get("lora_r", 16)),
        lora_alpha=float(config.get("lora_alpha", 32)),
        target_modules=modules,
        use_dora=bool(config.get("use_dora")),
        modules_to_save=(),
        architecture=architecture,
    )
    return shape, "the job's config"


def serving_of(adapter: Adapter) -> dict[str, Any]:
    """The page's and the API's serving record: the inputs, one verdict per target, and what it is based on."""
    shape, read_from = adapter_shape(adapter)
    return {
        "note": DERIVED_NOTE,
        "read_from": read_from,
        "inputs": {
            "r": shape.r,
            "lora_alpha": shape.lora_alpha,
            "target_modules": list(shape.target_modules),
            "use_dora": shape.use_dora,
            "modules_to_save": list(shape.modules_to_save),
            "architecture": shape.architecture,
        },
        "targets": verdicts(shape),
    }
