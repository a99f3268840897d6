"""The release definition form: a recipe and the data lead's stated assumptions."""

from typing import Any

from django import forms

from accounts.models import Project
from annotation.models import Flag, RubricVersion
from releases import selectors
from releases.recipe import AGGREGATIONS, DEFAULT_EXCLUDED_FLAGS, LEAK_POLICIES, RANKING_PAIRS, TIE_POLICIES, Recipe


class ReleaseForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Each build of a name is its next version.")
    kind = forms.ChoiceField(choices=[("preference", "Preference pairs (DPO)"), ("sft", "SFT (ideal responses)")])
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
        label="SFT: leave out annotations flagged", help_text="Applies to SFT releases.",
    )  # fmt: skip
    aggregation = forms.ChoiceField(choices=list(AGGREGATIONS.items()), initial="majority")
    ties = forms.ChoiceField(choices=list(TIE_POLICIES.items()), initial="drop")
    min_agreement_percent = forms.FloatField(label="Minimum agreement (%)", min_value=0, max_value=100, initial=0)
    min_strength = forms.FloatField(
        min_value=0, max_value=3, initial=0, help_text="Mean strength of the winning judgements: 1 slightly … 3 much."
    )
    ranking_pairs = forms.ChoiceField(choices=list(RANKING_PAIRS.items()), initial="all", label="N-way rankings become")
    per_criterion = forms.BooleanField(required=False, label="Also one pair set per rubric criterion")
    leakage = forms.ChoiceField(choices=list(LEAK_POLICIES.items()), initial="fail", label="When a leak is found")
    near_duplicate_percent = forms.FloatField(
        label="Near duplicate at similarity (%)", min_value=50, max_value=100, initial=80
    )
    mixin_batches = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="SFT: general-purpose mix-in imports"
    )
    mixin_percent = forms.FloatField(label="Mix-in share of train (%)", min_value=0, max_value=90, initial=0)
    assumptions = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Datasheet (d): what the data is assumed to measure and represent. Frozen with the release.",
    )  # fmt: skip

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = self.fields["rubric_versions"]
        mixins = self.fields["mixin_batches"]
        assert isinstance(versions, forms.MultipleChoiceField)
        assert isinstance(mixins, forms.MultipleChoiceField)
        versions.choices = [
            (v, f"v{v}") for v in RubricVersion.objects.filter(project=project).values_list("version", flat=True)
        ]
        mixins.choices = [
            (b.pk, f"#{b.pk} {b.source_name} ({b.imported_count} conversations)")
            for b in selectors.mixin_batches(project)
        ]

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
            "mixin_batches": [str(b) for b in recipe.mixin_batches],
            "mixin_percent": recipe.mixin_fraction * 100,
        }
