"""A tiny random Llama-style causal LM with a locally trained byte-level BPE tokenizer and a chat template,
for the demo and the tests. Nothing is downloaded: the tokenizer is trained on text generated here and the
weights are random. Load it like any base model: ``from_pretrained(directory, local_files_only=True)``."""

import random
from collections.abc import Iterator
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

WORDS = (  # noqa: SIM905 - a word list reads best as text
    "the a an customer account payment card claim policy patient dose record please thank you sorry we "
    "can cannot will would should transfer refund fee balance loan rate risk report review approve reject "
    "check hello goodbye help question answer because therefore however kindly rude polite yes no maybe "
    "today tomorrow number date name address bank clinic court contract clause law data model adapter "
    "release"
).split()


def _corpus(lines: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)  # noqa: S311 - filler text, not a secret
    for _ in range(lines):
        yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))) + rng.choice([".", "?", "!", ","])


def make_tiny_model(directory: Path, *, seed: int = 0, vocab_size: int = 512, hidden_size: int = 32) -> Path:
    """Write config, safetensors weights, tokenizer and chat template to ``directory``; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(2000, seed), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",  # noqa: S106 - special tokens, not passwords
        bos_token="<|bos|>",  # noqa: S106
        eos_token="<|end|>",  # noqa: S106
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    model.generation_config.save_pretrained(directory)
    return directory
