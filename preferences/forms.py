"""Forms of the preferences app. Shares are edited as whole percentages and stored as fractions."""

from typing import Any

from django import forms

from preferences.models import JudgementMode, PreferenceSettings

_PERCENT_FIELDS = ("gold_rate", "gold_accuracy_threshold", "fast_fraction", "adjudication_threshold")


def _percent(label: str, help_text: str = "", *, most: int = 100) -> forms.IntegerField:
    """A share, edited as a whole percentage from 0 to ``most``."""
    return forms.IntegerField(min_value=0, max_value=most, label=label, help_text=help_text)


class PreferenceSettingsForm(forms.Form):
    mode = forms.ChoiceField(
        choices=JudgementMode.choices,
        label="Judgement mode",
        help_text="Applies to judgements from now on; each stored judgement keeps the mode it was made in. "
        "A comparison of more than two candidates is ranked in every mode.",
    )
    rationale_required = forms.BooleanField(
        required=False, label="Require a rationale", help_text="Annotators must say why before they can submit."
    )
    gold_rate = _percent(
        "Gold items served (%)",
        "Share of “next comparison” requests that serve a gold item the annotator has not judged yet.",
        most=50,
    )
    gold_accuracy_threshold = _percent("Flag annotators below this gold accuracy (%)")
    gold_minimum = forms.IntegerField(
        min_value=1, max_value=1000, label="Gold judgements before a flag", help_text="No flag on too few items."
    )
    fast_fraction = _percent(
        "Too fast: under this share of the median time (%)",
        "Judgements quicker than this share of the project's median time on task are flagged.",
    )
    adjudication_threshold = _percent(
        "Adjudicate when fewer than this share agree (%)",
        "Once an item has all its judgements, it goes to a reviewer if the largest agreeing group is "
        "smaller than this share.",
    )

    def __init__(self, *args: Any, instance_settings: PreferenceSettings, **kwargs: Any) -> None:
        initial = {
            "mode": instance_settings.mode,
            "rationale_required": instance_settings.rationale_required,
            "gold_minimum": instance_settings.gold_minimum,
        }
        initial |= {name: round(getattr(instance_settings, name) * 100) for name in _PERCENT_FIELDS}
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)

    def values(self) -> dict[str, Any]:
        """The cleaned data as the service takes it (fractions, not percentages)."""
        data = dict(self.cleaned_data)
        for name in _PERCENT_FIELDS:
            data[name] = data[name] / 100
        return data
