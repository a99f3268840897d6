"""Forms of the deployment pages: a new target, its thresholds, a promotion request, a rollback request, and
the note of an approval or refusal."""

from typing import Any

from django import forms

from core.forms import Slot
from evaluation import selectors
from evaluation.models import DeploymentTarget, Evaluation
from training.models import Adapter, BaseModel, BaseModelState

BASE_ALONE = "base"


class _Slotted(forms.Form):
    def slots(self) -> list[Slot]:
        return [Slot(field=self[name], wide=name in ("description", "reason", "note")) for name in self.fields]


class TargetForm(_Slotted):
    name = forms.CharField(max_length=100, help_text="Lowercase letters, digits and hyphens: retail-banking-assistant.")
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.none())
    current_adapter = forms.ModelChoiceField(
        queryset=Adapter.objects.none(), required=False, empty_label="The base model alone",
        help_text="What the target serves now.",
    )  # fmt: skip
    min_win_rate_lower = forms.FloatField(
        initial=0.5, min_value=0, max_value=1, label="Win rate's lower bound at least",
        help_text="A promotion needs the lower bound of the adapter's human win rate against the current model "
        "to reach this.",
    )  # fmt: skip
    max_metric_regression = forms.FloatField(
        initial=0.02, min_value=0, max_value=1, label="Held-out regression at most",
        help_text="A fraction: 0.02 allows held-out figures 2% worse than the current adapter's.",
    )  # fmt: skip
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args: Any, project_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = BaseModel.objects.filter(state=BaseModelState.READY)  # type: ignore[attr-defined]
        self.fields["current_adapter"].queryset = Adapter.objects.filter(project_id=project_id)  # type: ignore[attr-defined]


class ThresholdsForm(_Slotted):
    min_win_rate_lower = TargetForm.base_fields["min_win_rate_lower"]
    max_metric_regression = TargetForm.base_fields["max_metric_regression"]
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class PromotionForm(_Slotted):
    adapter = forms.ModelChoiceField(queryset=Adapter.objects.none(), label="Adapter to promote")
    evaluation = forms.ModelChoiceField(
        queryset=Evaluation.objects.none(),
        required=False,
        empty_label="— none —",
        help_text="A finished evaluation of that adapter.",
    )

    def __init__(self, *args: Any, target: DeploymentTarget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["adapter"].queryset = selectors.promotable_adapters(target)  # type: ignore[attr-defined]
        self.fields["evaluation"].queryset = selectors.finished_evaluations(target.project)  # type: ignore[attr-defined]


class RollbackForm(_Slotted):
    adapter = forms.ChoiceField(label="Roll back to")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why: it is kept with the history.")

    def __init__(self, *args: Any, target: DeploymentTarget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = {str(a.pk): a for a in selectors.rollback_choices(target)}
        options = [(key, str(adapter)) for key, adapter in self.choices.items()]
        if target.current_adapter_id is not None:
            options.append((BASE_ALONE, f"{target.base_model} alone (no adapter)"))
        self.fields["adapter"].choices = options  # type: ignore[attr-defined]

    def chosen_adapter(self) -> Adapter | None:
        return self.choices.get(self.cleaned_data["adapter"])


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
