"""A reward model read back and asked for scores: what a reward job's held-out check, a scoring run's child and
the benchmark share, so an answer gets the same score wherever it is scored. It imports torch, so only a
training or scoring child (forked from the fork server, which imported it already) imports this module.

A reward model is a PEFT adapter of task ``SEQ_CLS`` over the base model's sequence-classification form with
one output (the score head is saved with the adapter, ``modules_to_save``). An answer is scored as TRL's
``RewardTrainer`` trained on it: the conversation up to the answer plus the answer, through the tokenizer's
chat template; the score is the head's output at the last token that is not padding."""

from typing import Any

from training.environment import apply_offline_env

apply_offline_env()

import torch  # noqa: E402 - the offline and thread environment is set first
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase  # noqa: E402

Messages = list[dict[str, str]]


def reward_tokenizer(model_dir: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_reward_model(model_dir: str, adapter_dir: str | None) -> tuple[Any, PreTrainedTokenizerBase, str]:
    """The base model as a one-output sequence classifier with the reward adapter (``None``: its untrained
    head alone, what a reward job starts from), in eval mode on the best device, and its tokenizer."""
    tokenizer = reward_tokenizer(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32
    if device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, local_files_only=True, dtype=dtype
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    scorer: Any = model
    if adapter_dir:
        scorer = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    scorer.to(device)
    scorer.eval()
    return scorer, tokenizer, device


def conversation_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages, max_length: int) -> list[int]:
    """Token ids of a whole conversation (prompt and answer) as the reward trainer reads it; a conversation
    longer than ``max_length`` keeps its end, where the answer is."""
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    ids = list(encoded["input_ids"])  # type: ignore[index,call-overload]  # a BatchEncoding with return_dict=True
    return ids[-max_length:]


def reward_scores(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    device: str,
    conversations: list[Messages],
    *,
    batch_size: int = 8,
    max_length: int = 1024,
) -> list[float]:
    """The reward of each conversation (its last message is the answer scored), in batches padded on the right."""
    pad = int(tokenizer.pad_token_id)
    scores: list[float] = []
    for start in range(0, len(conversations), batch_size):
        batch = [
            conversation_ids(tokenizer, messages, max_length) for messages in conversations[start : start + batch_size]
        ]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention[row, : len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        scores.extend(float(value) for value in logits[:, 0].float().cpu().tolist())
    return scores


def pair_accuracy(
    model: Any, tokenizer: PreTrainedTokenizerBase, device: str, rows: list[dict[str, Any]], *, max_length: int
) -> dict[str, float]:
    """Held-out pairwise accuracy (a tie counts ½) and the mean margin (chosen minus rejected) of preference rows
    ``{prompt, chosen, rejected}`` (conversational, as the release's TRL preference files hold them)."""
    if not rows:
        return {}
    chosen = reward_scores(
        model, tokenizer, device, [row["prompt"] + row["chosen"] for row in rows], max_length=max_length
    )
    rejected = reward_scores(
        model, tokenizer, device, [row["prompt"] + row["rejected"] for row in rows], max_length=max_length
    )
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    wins = sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins)
    return {
        "pair_accuracy": wins / len(rows),
        "mean_margin": sum(margins) / len(rows),
        "pairs": float(len(rows)),
    }
