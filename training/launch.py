"""The target of a job's forked child. It lives apart from ``training.runner`` because the child unpickles it:
this module must import nothing heavy or Django-bound; ``training.trainer`` is already loaded in the fork
server, so the import below costs nothing."""


def child(spec_path: str) -> None:
    from training.trainer import child_main

    child_main(spec_path)


def probe(path: str) -> None:
    """Write what this machine offers for training (torch's view of the hardware) to ``path`` as JSON."""
    import json

    from training.environment import hardware, has_bitsandbytes, has_flash_attention, library_versions

    facts = {
        "hardware": hardware(),
        "versions": library_versions(),
        "bitsandbytes": has_bitsandbytes(),
        "flash_attention": has_flash_attention(),
    }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(facts, stream)


def merge(spec_path: str) -> None:
    from training.merge_child import merge_main

    merge_main(spec_path)
