"""The scoring run form: one of the project's reward models, what it scores (a succeeded generation run, or the
project's comparisons) and the batch size."""

from typing import Any

from django import forms

from accounts.models import Project
from evaluation import selectors
from evaluation.models import GenerationRun
from evaluation.scoring_runs import MAX_BATCH_SIZE
from training.models import RewardModel


class ScoringRunForm(forms.Form):
    reward_model = forms.ModelChoiceField(queryset=RewardModel.objects.none(), empty_label=None, label="Reward model")
    generation_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.none(), required=False, label="Answers to score",
        empty_label="Every candidate of the project's comparisons",
        help_text="A succeeded generation run of this project, or the answers of its comparison items.",
    )  # fmt: skip
    batch_size = forms.IntegerField(min_value=1, max_value=MAX_BATCH_SIZE, initial=8, label="Batch size")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, choices in (
            ("reward_model", selectors.reward_models_of(project)),
            ("generation_run", selectors.scorable_runs_of(project)),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = choices
        runs = self.fields["generation_run"]
        assert isinstance(runs, forms.ModelChoiceField)
        runs.label_from_instance = lambda run: f"#{run.pk}: {run.policy_label}"  # type: ignore[method-assign,assignment]
