"""How fast an evaluation's results answer: the results page, the API detail and the figures alone, for an
evaluation whose judging project holds 10,000 judgements (5,000 comparisons, two annotators each), with two
systems (head to head) and with three (plus the Bradley-Terry ranking and its bootstrap over prompts).

The rows are written directly (the judging path itself is tested in tests/evaluation/); each figure is the
median of the timed requests after one warm-up, through Django's test client with a logged-in project admin.

    .venv/bin/python bench/evaluation_results.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/evaluation_results.py
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-evaluation-"))

import django

django.setup()

from _common import print_columns, size_label, throwaway_database  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import Project, Role, User  # noqa: E402
from accounts.services import membership_add  # noqa: E402
from annotation.models import Item  # noqa: E402
from evaluation.models import Evaluation, EvaluationState, EvaluationSystem  # noqa: E402
from evaluation.results import evaluation_results  # noqa: E402
from preferences.models import Judgement  # noqa: E402
from releases.models import Release  # noqa: E402
from training.models import Adapter, BaseModel, TrainingJob  # noqa: E402


def _evaluation(admin: User, project: Project, systems: int, judgements: int, n: int) -> Evaluation:
    models = [
        BaseModel.objects.create(name=f"bench-model-{n}-{i}", path=f"/m/{n}/{i}", state="ready", registered_by=admin)
        for i in range(systems)
    ]
    release = Release.objects.create(
        project=project, kind="preference", name=f"bench-{n}", version=1, recipe={}, state="built", hash="e" * 64,
        created_by=admin,
    )  # fmt: skip
    job = TrainingJob.objects.create(
        project=project, kind="dpo", release=release, base_model=models[0], config={}, config_hash="c" * 64,
        created_by=admin, state="succeeded",
    )  # fmt: skip
    now = job.created_at
    adapter = Adapter.objects.create(
        job=job, project=project, name=f"bench-adapter-{n}", storage_prefix="x", sha256="a" * 64, size_bytes=1,
        release=release, release_hash="e" * 64, base_model=models[0], base_model_hash="b" * 64, config={},
        config_hash="c" * 64, seed=1, code_version="bench", started_at=now, finished_at=now, started_by=admin,
    )  # fmt: skip
    judging = Project.objects.create(name=f"Blind evaluation bench {n}", created_by=admin)
    evaluation = Evaluation.objects.create(
        project=project, judging_project=judging, name=f"bench {systems} systems", decoding={}, created_by=admin,
        state=EvaluationState.JUDGING, prompt_count=judgements // 2,
    )  # fmt: skip
    for position, model in enumerate(models):
        EvaluationSystem.objects.create(
            evaluation=evaluation, position=position, label=f"system {position}", base_model=model,
            adapter=adapter if position == 0 else None,
        )  # fmt: skip
    annotators = [User.objects.create(username=f"bench-judge-{n}-{a}") for a in range(2)]
    rng = random.Random(n)
    items = []
    for index in range(judgements // 2):
        order = list(range(systems))
        rng.shuffle(order)
        candidates = [
            {"content": f"Answer {index} of {s}", "provenance": {"model": f"m{s}", "extra": {"system": s}}}
            for s in order
        ]
        items.append(
            Item(
                project=judging, kind="comparison", messages=[{"role": "user", "content": f"Prompt {index}?"}],
                metadata={"topic": ("fees", "cards", "loans")[index % 3], "channel": ("chat", "mail")[index % 2]},
                candidates=candidates, content_hash=f"{n}-{index}",
            )
        )  # fmt: skip
    Item.objects.bulk_create(items, batch_size=2000)
    rows = []
    for item in Item.objects.filter(project=judging).only("id", "candidates"):
        for annotator in annotators:
            if systems == 2:
                result = {"winner": rng.choice([0, 1, 0, "tie"]), "strength": 1}
            else:
                ids = list(range(systems))
                rng.shuffle(ids)
                result = {"ranking": [[c] for c in ids]}
            rows.append(
                Judgement(
                    item=item, annotator=annotator, mode="pairwise" if systems == 2 else "ranking", seed=1,
                    displayed_order=list(range(systems)), result=result, displayed_result=result,
                    idempotency_key=f"{n}-{item.pk}-{annotator.pk}", time_spent_ms=9000,
                )
            )  # fmt: skip
    Judgement.objects.bulk_create(rows, batch_size=2000)
    return evaluation


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgements", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    opts = parser.parse_args()
    with throwaway_database() as kind:
        admin = User.objects.create(username="bench-admin")
        project = Project.objects.create(name="Bench source", created_by=admin)
        membership_add(actor=None, project=project, user=admin, role=Role.PROJECT_ADMIN)
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host
        client = Client()
        client.force_login(admin)
        header = ["measure (median ms)", *[f"{s} systems, {size_label(opts.judgements)} judgements" for s in (2, 3)]]
        columns = []
        for n, systems in enumerate((2, 3)):
            evaluation = _evaluation(admin, project, systems, opts.judgements, n)
            page = f"/projects/{project.pk}/evaluations/{evaluation.pk}/"
            api = f"/api/v1/projects/{project.pk}/evaluations/{evaluation.pk}/"

            def get(url: str) -> None:
                response = client.get(url)
                assert response.status_code == 200, response.status_code

            figures = evaluation_results(evaluation)
            assert figures["judgements"] == opts.judgements, figures["judgements"]
            columns.append(
                [
                    _median_ms(partial(evaluation_results, evaluation), opts.repeat),
                    _median_ms(partial(get, page), opts.repeat),
                    _median_ms(partial(get, api), opts.repeat),
                ]
            )
        names = ["figures alone (evaluation_results)", "results page", "API detail with live results"]
        rows = [[name, *[f"{column[i]:.0f}" for column in columns]] for i, name in enumerate(names)]
        print_columns(f"Evaluation results, {kind}", header, rows)


if __name__ == "__main__":
    main()
