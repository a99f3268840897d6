import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts import services
from accounts.models import Project, Role, User
from annotation import services as annotation_services
from annotation.models import ImportBatch, RubricVersion
from enclave import demo_drift
from evaluation import services as evaluation_services
from evaluation.models import DeploymentTarget
from preferences import gold as preference_gold
from preferences import results as preference_results
from preferences import services as preference_services
from preferences.models import AgreementSnapshot, Judgement
from releases import services as release_services
from training import services as training_services
from training.models import BaseModel

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"

DEMO_PASSWORD = "enclave-demo"  # noqa: S105 - printed on purpose: these accounts exist only in the demo

DEMO_USERS: list[tuple[str, str, bool]] = [
    ("annotator", "Dr. Ana Okafor (annotator)", False),
    ("reviewer", "Rui Santos (reviewer)", False),
    ("datalead", "Dana Lindqvist (data lead)", False),
    ("projectadmin", "Priya Admin (project admin)", False),
    ("approver", "Amira Haddad (approver, model risk)", False),
    ("outsider", "Otto Sider (other project)", False),
    ("staff", "Site staff", True),
]

DEMO_PROJECT = "Retail banking support (demo)"
OTHER_PROJECT = "Claims triage (demo)"
COMPARISON_PROJECT = "Retail banking: base model vs. adapter (demo)"
TINY_MODEL = "tiny-llama (demo, random weights)"
DEMO_TARGET = "retail-banking-assistant"


# The demo's judgements of the first six (non-gold) comparisons, by external id: per person, the candidate chosen
# (its id as imported, from 0) and a rationale that speaks of that candidate. They agree except on cmp-0006, where
# both answers are right and the two weigh brevity against completeness: that one goes to adjudication.
DEMO_JUDGEMENTS: dict[str, dict[str, tuple[int, str]]] = {
    "cmp-0002": {
        "annotator": (1, "Names the fee (unarranged overdraft) and offers the yearly refund; the other only guesses."),
        "projectadmin": (1, "Explains why the £25 was charged and what the customer can do about it."),
    },
    "cmp-0004": {
        "annotator": (1, "Says how to request a temporary increase; the other wrongly says limits can't change."),
        "projectadmin": (1, "Gives the steps and warns that we never ask for a PIN: right for a large transfer."),
    },
    "cmp-0005": {
        "annotator": (0, "Treats it as a possible account takeover: sign out everywhere, fraud team flagged."),
        "projectadmin": (0, "The other dismisses a foreign login as a VPN; this one secures the account first."),
    },
    "cmp-0006": {
        "annotator": (1, "Also says closing takes up to two working days, which the customer will want to know."),
        "projectadmin": (0, "The exact path in the app in one line, and where interest and balance go; enough."),
    },
    "cmp-0007": {
        "annotator": (0, "Gives the rate as AER, says it is variable and where the current rate is published."),
        "projectadmin": (0, "Precise and compliant: AER, variable; the other is a bare number."),
    },
    "cmp-0008": {
        "annotator": (1, "Refuses to share a balance in chat and points to the app; the other leaks account details."),
        "projectadmin": (1, "Never disclose a balance to an unverified chat: this one sends the customer to the app."),
    },
}


def quiet_progress_bars() -> None:
    """The demo release is written through `datasets` and the tiny model through `transformers`: their progress
    bars ("Saving the dataset (0/0 shards)", "Writing model shards") would bury the console of a first start."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _sft_guidelines() -> str:
    return str(json.loads((DEMO_DIR / "banking_rubric.json").read_text())["guidelines"])


class Command(BaseCommand):
    help = "Create demo accounts (one per role, an outsider and site staff) and demo projects. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with production settings (never do this).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if str(settings.SETTINGS_MODULE).endswith("production") and not options["allow_production"]:
            raise CommandError("Refusing to create demo accounts with a known password under production settings.")
        quiet_progress_bars()
        with transaction.atomic():
            users = {name: self._user(name, label, staff) for name, label, staff in DEMO_USERS}
            staff = users["staff"]
            project = self._project(staff, DEMO_PROJECT, "Customer-support conversations of a retail bank.")
            for name, role in [
                ("annotator", Role.ANNOTATOR),
                ("reviewer", Role.REVIEWER),
                ("datalead", Role.DATA_LEAD),
                ("projectadmin", Role.PROJECT_ADMIN),
                ("approver", Role.APPROVER),
            ]:
                self._member(staff, project, users[name], role)
            other = self._project(staff, OTHER_PROJECT, "Insurance claim notes; only the outsider belongs here.")
            self._member(staff, other, users["outsider"], Role.PROJECT_ADMIN)
            self._annotation_demo(project, users)
            comparisons = self._project(
                staff,
                COMPARISON_PROJECT,
                "Which answer is better: the base model or the fine-tuned adapter? Pairwise, two judgements each.",
            )
            for name, role in [
                ("annotator", Role.ANNOTATOR),
                ("reviewer", Role.REVIEWER),
                ("datalead", Role.DATA_LEAD),
                ("projectadmin", Role.PROJECT_ADMIN),
                ("approver", Role.APPROVER),
            ]:
                self._member(staff, comparisons, users[name], role)
            self._preference_demo(comparisons, users)
            model = self._training_demo(staff)
            self._deployment_demo(comparisons, users["projectadmin"], model)
        if options["verbosity"] >= 1:
            self.stdout.write(f"Demo accounts (password “{DEMO_PASSWORD}”): " + ", ".join(users))

    def _user(self, username: str, label: str, staff: bool) -> User:
        existing = User.objects.filter(username=username).first()
        if existing:
            return existing
        return services.user_create(
            actor=None, username=username, display_name=label, password=DEMO_PASSWORD, is_staff=staff
        )

    def _project(self, actor: User, name: str, description: str) -> Project:
        existing = Project.objects.filter(name=name).first()
        return existing or services.project_create(actor=actor, name=name, description=description)

    def _member(self, actor: User, project: Project, user: User, role: str) -> None:
        if not project.memberships.filter(user=user).exists():
            services.membership_add(actor=actor, project=project, user=user, role=role)

    def _annotation_demo(self, project: Project, users: dict[str, User]) -> None:
        """A rubric, three months of labelled and released history (``enclave.demo_drift``), an import of support
        chats with planted PII (scrubbed on the way in), two submitted annotations so the review queue has work,
        and this week's import, whose topic mix has shifted: the drift page flags the topic."""
        lead = users["datalead"]
        if not RubricVersion.objects.filter(project=project).exists():
            rubric = json.loads((DEMO_DIR / "banking_rubric.json").read_text())
            annotation_services.rubric_save(
                actor=lead, project=project, guidelines=rubric["guidelines"], criteria=rubric["criteria"]
            )
        if ImportBatch.objects.filter(project=project).exists():
            return
        demo_drift.history(project, users)
        with (DEMO_DIR / "banking_support.jsonl").open("rb") as upload:
            support = annotation_services.import_start(
                actor=lead, project=project, upload=upload, source_name="banking_support.jsonl", fmt="chat_jsonl"
            )
        ImportBatch.objects.filter(pk=support.pk).update(created_at=timezone.now() - timedelta(days=40))
        annotator = users["annotator"]
        for n in range(2):
            slot = annotation_services.item_next(user=annotator, project=project)
            if slot is None:
                break
            annotation_services.annotation_submit(
                user=annotator,
                item=slot.item,
                response=(slot.item.response or "") + " Is there anything else I can help you with?",
                scores={"factually_correct": "pass", "helpfulness": "4", "compliance_risk": "none"},
                flags=[],
                note="",
                time_spent_ms=45_000 + n * 10_000,
                submit_key=f"demo-{slot.item_id}",
            )
        demo_drift.this_week(project, users)

    def _demo_day(self, project: Project, *, since: datetime, days_ago: int) -> None:
        """Date the judgements made since ``since`` ``days_ago`` days back, and (for a past day) recompute
        agreement as of then: the demo opens with a few days of history, so its charts draw lines."""
        day = timezone.now() - timedelta(days=days_ago, hours=3)
        fresh = Judgement.objects.filter(item__project=project, created_at__gte=since).order_by("id")
        for n, judgement_id in enumerate(list(fresh.values_list("id", flat=True))):
            Judgement.objects.filter(pk=judgement_id).update(created_at=day + timedelta(minutes=9 * n))
        if days_ago:
            snapshot = preference_services.agreement_recompute(project=project)
            AgreementSnapshot.objects.filter(pk=snapshot.pk).update(computed_at=day + timedelta(hours=1))

    def _gold_demo(self, project: Project, users: dict[str, User]) -> None:
        """Both colleagues were handed the gold comparisons today: the annotator got all of them right, the
        project admin missed one (so the quality page has gold accuracy to show)."""
        for name, misses in (("annotator", 0), ("projectadmin", 1)):
            user = users[name]
            for n in range(3):
                item = preference_gold.gold_unjudged(user, project)
                if item is None:
                    break
                preference_gold.gold_assign(user, item)
                right = int(item.gold or 0)  # a pair's gold answer: the id of the better candidate
                winner = right if n >= misses else 1 - right
                _, order = preference_results.display_order(user, item)
                letter = preference_results.LETTERS[order.index(winner)]
                preference_services.judgement_submit(
                    user=user, item=item, shown={"choice": letter, "strength": 2},
                    rationale="Checked against the card policy.", time_spent_ms=40_000 + 6_000 * n,
                    idempotency_key=f"demo-gold-{name}-{item.pk}",
                )  # fmt: skip

    def _training_demo(self, staff: User) -> BaseModel:
        """A tiny random Llama with a locally trained tokenizer, built under the data directory and registered
        as a base model, so a DPO job on the demo release runs on a CPU in seconds."""
        found = BaseModel.objects.filter(name=TINY_MODEL).first()
        if found is not None:
            return found
        from training.environment import apply_offline_env
        from training.tiny_model import make_tiny_model

        apply_offline_env()
        directory = Path(settings.DATA_DIR) / "models" / "tiny-llama"
        if not (directory / "config.json").exists():
            make_tiny_model(directory)
        model = training_services.base_model_register(
            actor=staff,
            name=TINY_MODEL,
            path=str(directory),
            description="Built by seed_demo: 2 layers, hidden size 32, a byte-level BPE tokenizer trained on local "
            "text and a chat template. For trying the pipeline, not for answers.",
        )
        validated = training_services.base_model_validate(model_id=model.pk)  # at once: the demo opens with it ready
        assert validated is not None
        return validated

    def _deployment_demo(self, project: Project, admin: User, model: BaseModel) -> None:
        """The assistant the bank serves, on the base model alone until an adapter is promoted. Its gate is set low
        for the demo (random weights answer nonsense on both sides): a real target asks for a lower bound of 0.5."""
        if DeploymentTarget.objects.filter(project=project, name=DEMO_TARGET).exists():
            return
        evaluation_services.deployment_target_create(
            actor=admin, project=project, name=DEMO_TARGET, base_model=model,
            description="The customer-support assistant in the bank's app (demo thresholds: lower than a real one).",
            min_win_rate_lower=0.3, max_metric_regression=0.5,
        )  # fmt: skip

    def _preference_demo(self, project: Project, users: dict[str, User]) -> None:
        """Comparisons of the base model against an adapter (three of them gold), two judgements per
        comparison, a few already judged by the annotator and the project admin, and agreement computed."""
        lead = users["datalead"]
        # Guidelines written for comparing answers, not the SFT project's for writing one; a demo seeded
        # before it had its own gets them now.
        rubric = json.loads((DEMO_DIR / "banking_comparison_rubric.json").read_text())
        current = RubricVersion.objects.filter(project=project).order_by("-version").first()
        if current is None or current.guidelines == _sft_guidelines():
            annotation_services.rubric_save(
                actor=lead, project=project, guidelines=rubric["guidelines"], criteria=rubric["criteria"]
            )
        if ImportBatch.objects.filter(project=project).exists():
            return
        annotation_services.annotation_settings_update(
            actor=lead, project=project, annotators_per_item=2, lease_minutes=30, pii_mode="replace",
            pii_patterns=[], pii_terms=[],
        )  # fmt: skip
        preference_services.preference_settings_update(actor=lead, project=project, mode="pairwise", gold_rate=0.2)
        with (DEMO_DIR / "banking_comparisons.jsonl").open("rb") as upload:
            annotation_services.import_start(
                actor=lead, project=project, upload=upload, source_name="banking_comparisons.jsonl",
                fmt="comparison_jsonl",
            )  # fmt: skip
        # Two colleagues judged the first six comparisons, two a day over three days; they disagree on one,
        # which goes to adjudication, where the reviewer (who judged none of them) decides it. Each judgement's
        # rationale speaks of the candidate it chose (``DEMO_JUDGEMENTS``: candidate id as imported, from 0).
        started = timezone.now()
        for n in range(len(DEMO_JUDGEMENTS)):
            for name in ("annotator", "projectadmin"):
                user = users[name]
                slot = annotation_services.item_next(user=user, project=project, kind="comparison")
                if slot is None:
                    break
                winner, rationale = DEMO_JUDGEMENTS[slot.item.external_id][name]
                _, order = preference_results.display_order(user, slot.item)
                preference_services.judgement_submit(
                    user=user, item=slot.item,
                    shown={"choice": preference_results.LETTERS[order.index(winner)], "strength": 2},
                    rationale=rationale, time_spent_ms=30_000 + 5_000 * n,
                    idempotency_key=f"demo-{name}-{slot.item_id}",
                )  # fmt: skip
            if n % 2:
                self._demo_day(project, since=started, days_ago=2 - n // 2)
        self._gold_demo(project, users)
        preference_services.agreement_recompute(project=project)
        # A first release of what is judged so far, built here so the demo opens with one (its queued
        # build task finds it built and does nothing).
        release = release_services.release_create(
            actor=lead, project=project, name="Adapter preferences",
            recipe={"kind": "preference", "eval_fraction": 0.5, "ties": "keep"},  # a tiny demo: a large held-out share
            assumptions="Demo data: synthetic retail-banking questions; two bank staff judged each comparison.",
        )  # fmt: skip
        release_services.release_build(release_id=release.pk)
