from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from training.tiny_model import make_tiny_model


class Command(BaseCommand):
    help = "Write a tiny random Llama-style model with a locally trained tokenizer and chat template to DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, directory: Path, seed: int, **options: Any) -> None:
        make_tiny_model(directory, seed=seed)
        self.stdout.write(f"Tiny model written to {directory}")
