"""The generation run form: the policy (a ready base model, optionally one of the project's adapters), where
the prompts come from, and the decoding settings (checked by ``evaluation.decoding``)."""

from typing import Any

from django import forms

from accounts.models import Project
from core.forms import Fieldset, fieldsets
from evaluation import selectors
from evaluation.decoding import Decoding
from evaluation.models import PromptSource
from evaluation.prompts import MAX_PROMPTS, UPLOAD_FORMAT_LABELS
from releases.models import Release
from training.forms import BaseModelChoiceField, ReleaseChoiceField
from training.models import Adapter, BaseModel
from training.selectors import ready_base_models

DECODING_FIELDS = ("candidates", "temperature", "top_p", "max_new_tokens", "seed", "batch_size")
LAYOUT = [
    ("Policy", ("base_model", "adapter")),
    ("Prompts", ("source", "release", "limit", "file", "fmt")),
    ("Decoding", DECODING_FIELDS),
]


class GenerationRunForm(forms.Form):
    base_model = BaseModelChoiceField(queryset=BaseModel.objects.none(), empty_label=None, label="Base model")
    adapter = forms.ModelChoiceField(
        queryset=Adapter.objects.none(), required=False, label="Adapter", empty_label="None: the base model alone",
        help_text="One of this project's adapters, trained on the base model above.",
    )  # fmt: skip
    source = forms.ChoiceField(choices=PromptSource.choices, initial=PromptSource.RELEASE_EVAL, label="Prompts")
    release = ReleaseChoiceField(queryset=Release.objects.none(), required=False, label="Release (its held-out split)")
    limit = forms.IntegerField(
        min_value=1, max_value=MAX_PROMPTS, initial=100, required=False, label="How many imported items (oldest first)"
    )
    file = forms.FileField(required=False, label="Prompt file", help_text="JSONL, one conversation per line.")
    fmt = forms.ChoiceField(
        choices=[(f.value, label) for f, label in UPLOAD_FORMAT_LABELS.items()], required=False, label="File format"
    )
    candidates = forms.IntegerField(min_value=1, label="Candidates per prompt")
    temperature = forms.FloatField(min_value=0, label="Temperature", help_text="0: greedy decoding.")
    top_p = forms.FloatField(label="top_p")
    max_new_tokens = forms.IntegerField(min_value=1, label="Max new tokens")
    seed = forms.IntegerField(min_value=0, label="Seed")
    batch_size = forms.IntegerField(min_value=1, label="Batch size")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        defaults = Decoding().as_dict()
        kwargs.setdefault("initial", {}).update({k: v for k, v in defaults.items() if k not in kwargs["initial"]})
        super().__init__(*args, **kwargs)
        for name, choices in (
            ("base_model", ready_base_models()),
            ("adapter", selectors.adapters_for_generation(project)),
            ("release", selectors.releases_with_eval(project)),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        source = data.get("source")
        if source == PromptSource.RELEASE_EVAL and not data.get("release"):
            self.add_error("release", "Choose the release whose held-out split to answer.")
        if source == PromptSource.UPLOAD and not data.get("file"):
            self.add_error("file", "Choose the prompt file to upload.")
        return data

    def fieldsets(self) -> list[Fieldset]:
        return fieldsets(self, LAYOUT, when={}, chosen="", dense={"Decoding"})

    def decoding(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in DECODING_FIELDS}
