"""The targets of a generation or scoring run's forked child. Apart from ``evaluation.runner`` because the child
unpickles them: this module imports nothing heavy or Django-bound, so neither the worker nor the web ever
imports torch for it; in the fork server torch, transformers and peft are already loaded."""


def child(spec_path: str) -> None:
    from evaluation.generate import child_main

    child_main(spec_path)


def scoring_child(spec_path: str) -> None:
    from evaluation.score import child_main

    child_main(spec_path)
