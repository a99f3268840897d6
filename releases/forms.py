"""The release definition form: a recipe and the data lead's stated assumptions. It offers the kinds of
release the project's work makes (SFT from annotated conversations, preference pairs from comparisons) and,
per kind, only the options of that kind; the recipe it returns holds nothing of the other kind."""

from typing import Any

from django import forms

from accounts.models import Project
from annotation.models import Flag, RubricVersion
from annotation.selectors import default_release_kind, work_kinds
from core.forms import Fieldset, fieldsets
from releases import selectors
from releases.recipe import AGGREGATIONS, DEFAULT_EXCLUDED_FLAGS, LEAK_POLICIES, RANKING_PAIRS, TIE_POLICIES, Recipe

KINDS = {"preference": "Preference pairs (DPO), from judged comparisons", "sft": "SFT, from approved ideal responses"}
RADIO = forms.RadioSelect  # the choices explain themselves: all in view, wrapped, never cut off
RELEASE_KIND_OF_WORK = {"comparison": "preference", "sft": "sft"}
# The options of one kind of release; the other kind's are neither shown nor read.
ONLY_FOR = {
    "exclude_flags": "sft",
    "mixin_batches": "sft",
    "mixin_percent": "sft",
    "aggregation": "preference",
    "ties": "preference",
    "min_agreement_percent": "preference",
    "min_strength": "preference",
    "ranking_pairs": "preference",
    "per_criterion": "preference",
}
LAYOUT = (
    ("Release", ("name", "kind")),
    ("Selection", ("rubric_versions", "exclude_flagged_annotators", "exclude_flags", "aggregation", "ties", "tags",
                   "min_agreement_percent", "min_strength")),
    ("Split", ("leakage", "eval_percent", "near_duplicate_percent", "paraphrase_percent", "stratify_by",
               "stratify_tolerance_percent", "mixin_percent", "mixin_batches")),
    ("Export", ("ranking_pairs", "per_criterion", "assumptions")),
)  # fmt: skip
WIDE = {"name", "kind", "aggregation", "ties", "leakage", "ranking_pairs", "per_criterion", "assumptions",
        "rubric_versions", "exclude_flags", "mixin_batches", "exclude_flagged_annotators"}  # fmt: skip
NOTES = {
    "Selection": "Which annotations or judgements go in. Data-lead exclusions always apply.",
    "Split": "How the held-out evaluation split is drawn and kept clean of training data.",
    "Export": "The files: TRL, OpenAI, Parquet and Hugging Face datasets, with a manifest and a datasheet.",
}


class ReleaseForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Each build of a name is its next version.")
    kind = forms.ChoiceField(
        choices=list(KINDS.items()), widget=RADIO, help_text="Only the options of this kind are shown.",
        error_messages={"invalid_choice": "This project holds no work for a release of that kind."},
    )  # fmt: skip
    eval_percent = forms.FloatField(
        label="Held-out evaluation (%)", min_value=0, max_value=50, initial=10,
        help_text="By a stable hash of the normalised prompt; items once in evaluation stay there.",
    )  # fmt: skip
    rubric_versions = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: any version."
    )
    tags = forms.CharField(required=False, help_text="Comma-separated; empty: every item.")
    exclude_flagged_annotators = forms.BooleanField(
        required=False, initial=True, label="Leave out annotators flagged for low gold accuracy"
    )
    exclude_flags = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, choices=Flag.choices, initial=list(DEFAULT_EXCLUDED_FLAGS),
        label="Leave out annotations flagged", help_text="An annotation carrying any ticked flag stays out.",
    )  # fmt: skip
    aggregation = forms.ChoiceField(
        choices=list(AGGREGATIONS.items()), initial="majority", required=False, widget=RADIO,
        help_text="How the judgements of one comparison become one preference.",
    )  # fmt: skip
    ties = forms.ChoiceField(choices=list(TIE_POLICIES.items()), initial="drop", required=False, widget=RADIO)
    min_agreement_percent = forms.FloatField(
        label="Minimum agreement (%)", min_value=0, max_value=100, initial=0, required=False,
        help_text="Share of the judgement weight behind the outcome; 0: no minimum.",
    )  # fmt: skip
    min_strength = forms.FloatField(
        label="Minimum strength", min_value=0, max_value=3, initial=0, required=False,
        widget=forms.NumberInput(attrs={"step": "0.5"}),
        help_text="0: no minimum (the recipe's default). Otherwise the mean strength of the winning pairwise "
        "judgements must reach it, on their scale of 1 slightly, 2 clearly, 3 much better; rankings and "
        "per-criterion choices have no strength, so any minimum leaves them out.",
    )  # fmt: skip
    ranking_pairs = forms.ChoiceField(
        choices=list(RANKING_PAIRS.items()), initial="all", label="N-way rankings become", required=False, widget=RADIO
    )
    per_criterion = forms.BooleanField(required=False, label="Also one pair set per rubric criterion")
    leakage = forms.ChoiceField(
        choices=list(LEAK_POLICIES.items()), initial="fail", label="When a leak is found", widget=RADIO
    )
    near_duplicate_percent = forms.FloatField(
        label="Near duplicate at similarity (%)", min_value=50, max_value=100, initial=80,
        help_text="Estimated similarity of word 3-grams between a training and an evaluation prompt.",
    )  # fmt: skip
    paraphrase_percent = forms.FloatField(
        label="Paraphrase at embedding similarity (%)", min_value=0, max_value=100, initial=75, required=False,
        help_text="Cosine similarity of the prompts' sentence embeddings; catches reworded copies that 3-grams miss. "
        "0: not checked.",
    )  # fmt: skip
    stratify_by = forms.CharField(
        required=False, label="Stratify the evaluation split by",
        help_text="Item metadata keys, comma-separated (e.g. topic, channel): the evaluation split's share of each "
        "stratum follows the project's items. Empty: by the stable hash alone.",
    )  # fmt: skip
    stratify_tolerance_percent = forms.FloatField(
        label="Stratum share tolerance (points)", min_value=0, max_value=50, initial=5, required=False,
        help_text="How far a stratum's share of the evaluation split may be from its share of the project's items.",
    )  # fmt: skip
    mixin_batches = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="General-purpose mix-in imports",
        help_text="Conversations imported as a mix-in on the Imports page, mixed into the training split as they are.",
    )  # fmt: skip
    mixin_percent = forms.FloatField(
        label="Mix-in share of train (%)", min_value=0, max_value=90, initial=0, required=False,
        help_text="At most this share of the training rows come from the mix-in.",
    )  # fmt: skip
    assumptions = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Assumptions (datasheet)",
        help_text="What the data is assumed to measure and represent (datasheet section d). Frozen with the release.",
    )  # fmt: skip

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kinds = [RELEASE_KIND_OF_WORK[work] for work in sorted(work_kinds(project))]
        self.kinds.sort(key=lambda kind: kind != default_release_kind(project))  # the project's own kind first
        kind_field = self.fields["kind"]
        assert isinstance(kind_field, forms.ChoiceField)
        kind_field.choices = [(kind, KINDS[kind]) for kind in self.kinds]
        for name, kind in ONLY_FOR.items():  # a project of one kind of work never sees the other's options
            if kind not in self.kinds:
                del self.fields[name]
            elif self.is_bound and kind != self.data.get("kind"):
                self.fields[name].disabled = True  # not read: what was sent for the other kind is ignored
        versions = self.fields["rubric_versions"]
        assert isinstance(versions, forms.MultipleChoiceField)
        versions.choices = [
            (v, f"v{v}") for v in RubricVersion.objects.filter(project=project).values_list("version", flat=True)
        ]
        if not versions.choices:
            versions.help_text = "No rubric is saved yet: any version."
        mixins = self.fields.get("mixin_batches")
        if isinstance(mixins, forms.MultipleChoiceField):
            mixins.choices = [
                (b.pk, f"#{b.pk} {b.source_name} ({b.imported_count} conversations)")
                for b in selectors.mixin_batches(project)
            ]
            if not mixins.choices:
                mixins.help_text = "None imported yet: import conversations as a mix-in on the Imports page."

    @property
    def chosen_kind(self) -> str:
        value = self["kind"].value()
        return value if value in self.kinds else self.kinds[0]

    def fieldsets(self) -> list[Fieldset]:
        return fieldsets(self, LAYOUT, when=ONLY_FOR, chosen=self.chosen_kind, wide=WIDE, notes=NOTES)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        for name, only in ONLY_FOR.items():
            if name not in self.fields:
                continue
            if only != kind:
                data.pop(name, None)  # the other kind's options are not read, whatever was sent
            elif data.get(name) is None or data.get(name) == "":
                self.add_error(name, "Give a value; the form opens with the default.")
        return data

    def recipe(self) -> dict[str, Any]:
        data = self.cleaned_data
        recipe = {
            "kind": data["kind"],
            "eval_fraction": data["eval_percent"] / 100,
            "rubric_versions": [int(v) for v in data["rubric_versions"]],
            "tags": [t.strip() for t in data["tags"].split(",") if t.strip()],
            "exclude_flagged_annotators": data["exclude_flagged_annotators"],
            "leakage": data["leakage"],
            "near_duplicate_threshold": data["near_duplicate_percent"] / 100,
            "paraphrase_threshold": (
                Recipe.paraphrase_threshold if data["paraphrase_percent"] is None else data["paraphrase_percent"] / 100
            ),
            "stratify_by": data["stratify_by"],
            "stratify_tolerance": (
                Recipe.stratify_tolerance
                if data["stratify_tolerance_percent"] is None
                else data["stratify_tolerance_percent"] / 100
            ),
        }
        if data["kind"] == "sft":
            recipe |= {
                "exclude_flags": data["exclude_flags"],
                "mixin_batches": [int(b) for b in data["mixin_batches"]],
                "mixin_fraction": data["mixin_percent"] / 100,
            }
        else:
            recipe |= {
                "aggregation": data["aggregation"],
                "ties": data["ties"],
                "min_agreement": data["min_agreement_percent"] / 100,
                "min_strength": data["min_strength"],
                "ranking_pairs": data["ranking_pairs"],
                "per_criterion": data["per_criterion"],
            }
        return recipe

    @staticmethod
    def initial_from(release_recipe: dict[str, Any], name: str) -> dict[str, Any]:
        """Initial values that repeat an earlier recipe (the "new version" button)."""
        recipe = Recipe.from_dict(release_recipe)
        return {
            "name": name,
            "kind": recipe.kind,
            "eval_percent": recipe.eval_fraction * 100,
            "rubric_versions": [str(v) for v in recipe.rubric_versions],
            "tags": ", ".join(recipe.tags),
            "exclude_flagged_annotators": recipe.exclude_flagged_annotators,
            "exclude_flags": list(recipe.exclude_flags),
            "aggregation": recipe.aggregation,
            "ties": recipe.ties,
            "min_agreement_percent": recipe.min_agreement * 100,
            "min_strength": recipe.min_strength,
            "ranking_pairs": recipe.ranking_pairs,
            "per_criterion": recipe.per_criterion,
            "leakage": recipe.leakage,
            "near_duplicate_percent": recipe.near_duplicate_threshold * 100,
            "paraphrase_percent": recipe.paraphrase_threshold * 100,
            "stratify_by": ", ".join(recipe.stratify_by),
            "stratify_tolerance_percent": recipe.stratify_tolerance * 100,
            "mixin_batches": [str(b) for b in recipe.mixin_batches],
            "mixin_percent": recipe.mixin_fraction * 100,
        }


class DriftSettingsForm(forms.Form):
    """A project's eval-set health thresholds (``EvalHealthSettings``), edited on the drift page."""

    psi_max = forms.FloatField(
        label="PSI at most", min_value=0, max_value=10,
        help_text="Population stability index of a metadata key's shares; 0.2 is the usual “significant shift”.",
    )  # fmt: skip
    chi2_p_min = forms.FloatField(
        label="p-value at least", min_value=0, max_value=1,
        help_text="A key (chi-square) and the prompt length (KS) are flagged only below this p-value too.",
    )  # fmt: skip
    ks_max = forms.FloatField(
        label="KS statistic at most", min_value=0, max_value=1,
        help_text="Prompt length in tokens, two-sample Kolmogorov-Smirnov.",
    )  # fmt: skip
    centroid_max = forms.FloatField(
        label="Centroid distance at most", min_value=0, max_value=2,
        help_text="Cosine distance of the mean prompt embeddings of both sides.",
    )  # fmt: skip
    mmd_p_min = forms.FloatField(
        label="MMD p-value at least", min_value=0, max_value=1,
        help_text="Permutation test of the embeddings' maximum mean discrepancy.",
    )  # fmt: skip
    window_days = forms.IntegerField(label="Recent window (days)", min_value=1, max_value=3650)
    min_eval_per_stratum = forms.IntegerField(
        label="Eval items a stratum at least", min_value=0, max_value=100_000, help_text="Fewer: a coverage gap."
    )  # fmt: skip
