"""Held-out evaluation of a DPO adapter in the training child: the summed log-probability of each completion
given its prompt, and the preference accuracy of the implicit reward, policy (adapter on) against reference
(adapter off; for a continued adapter, the frozen copy of its starting weights that TRL keeps as ``ref``)."""

from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl.trainer.utils import use_adapter

TIE_EPSILON = 1e-9


def _completion_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: list[dict[str, str]], completion: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """Token ids of the templated prompt and of the completion after it, as TRL's DPO trainer splits them."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    assert isinstance(prompt_text, str)
    assert isinstance(full_text, str)
    completion_text = full_text[len(prompt_text) :] if full_text.startswith(prompt_text) else full_text
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion_text, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(completion_ids)


@torch.no_grad()
def completion_logps(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[dict[str, str]]],
    completions: list[list[dict[str, str]]],
    *,
    max_length: int,
    batch_size: int = 8,
) -> list[float]:
    """Summed log-probability of each completion's tokens given its prompt (left-truncated to max_length)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sequences = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids, completion_ids = _completion_ids(tokenizer, prompt, completion)
        ids = (prompt_ids + completion_ids)[-max_length:]
        n_completion = min(len(completion_ids), len(ids) - 1)
        sequences.append((ids, n_completion))
    out: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = input_ids[:, 1:].to(device)
        token_logps = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, (ids, n_completion) in enumerate(batch):
            end = len(ids) - 1
            out.append(float(token_logps[row, end - n_completion : end].sum()))
    return out


def preference_accuracy(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, Any]], *, beta: float, max_length: int
) -> dict[str, float]:
    """Held-out preference accuracy of the DPO implicit reward: the policy (adapter on) against the
    reference (adapter off). A pair counts 1 when chosen's reward exceeds rejected's, 0.5 on a tie, else 0.
    Before training the adapter is the identity (a continued adapter equals its reference copy), so every pair
    ties and the accuracy is 0.5 by definition."""
    if not pairs:
        return {}
    prompts = [pair["prompt"] for pair in pairs]
    chosen = [pair["chosen"] for pair in pairs]
    rejected = [pair["rejected"] for pair in pairs]
    model.eval()
    policy_c = completion_logps(model, tokenizer, prompts, chosen, max_length=max_length)
    policy_r = completion_logps(model, tokenizer, prompts, rejected, max_length=max_length)
    with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
        ref_c = completion_logps(model, tokenizer, prompts, chosen, max_length=max_length)
        ref_r = completion_logps(model, tokenizer, prompts, rejected, max_length=max_length)
    margins = [beta * ((pc - rc) - (pr - rr)) for pc, rc, pr, rr in zip(policy_c, ref_c, policy_r, ref_r, strict=True)]
    score = sum(1.0 if m > TIE_EPSILON else 0.5 if abs(m) <= TIE_EPSILON else 0.0 for m in margins)
    return {
        "preference_accuracy": score / len(margins),
        "mean_margin": sum(margins) / len(margins),
        "pairs": float(len(margins)),
    }
