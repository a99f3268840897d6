"""The new-evaluation form: the adapter, what it faces, where the prompts come from and the decoding settings."""

from typing import Any

from django import forms

from accounts.models import Project
from annotation.parsing import ImportFormat
from evaluation.judging import DEFAULT_DECODING
from evaluation.models import DeploymentTarget, PromptSource
from evaluation.prompts import UPLOAD_FORMAT_LABELS
from releases.models import Release, ReleaseState
from training.models import Adapter, BaseModel, BaseModelState

AGAINST_CHOICES = [
    ("base_model", "A base model (without adapter)"),
    ("adapter", "Another adapter of this project"),
    ("deployment_target", "The current model of a deployment target"),
]


class EvaluationForm(forms.Form):
    name = forms.CharField(
        max_length=200, required=False, help_text="Empty: named after its sides, “adapter vs the other side”."
    )
    adapter = forms.ModelChoiceField(queryset=Adapter.objects.none(), label="Adapter under evaluation")
    against = forms.ChoiceField(choices=AGAINST_CHOICES, label="Evaluate against")
    against_base_model = forms.ModelChoiceField(
        queryset=BaseModel.objects.none(), required=False, label="Base model", help_text="Empty: the adapter's own."
    )
    against_adapter = forms.ModelChoiceField(queryset=Adapter.objects.none(), required=False, label="Other adapter")
    against_target = forms.ModelChoiceField(
        queryset=DeploymentTarget.objects.none(), required=False, label="Deployment target"
    )
    third_adapter = forms.ModelChoiceField(
        queryset=Adapter.objects.none(), required=False, label="Also against (a third system, optional)"
    )
    source = forms.ChoiceField(choices=PromptSource.choices, label="Prompts")
    release = forms.ModelChoiceField(
        queryset=Release.objects.none(), required=False, help_text="Its held-out (eval) split gives the prompts."
    )
    upload = forms.FileField(
        required=False, label="Prompt file", help_text="JSONL, one conversation (or prompt) per line."
    )
    fmt = forms.ChoiceField(
        choices=[(f.value, label) for f, label in UPLOAD_FORMAT_LABELS.items()], initial=ImportFormat.CHAT_JSONL,
        required=False, label="File format",
    )  # fmt: skip
    temperature = forms.FloatField(initial=DEFAULT_DECODING["temperature"], min_value=0, max_value=5)
    top_p = forms.FloatField(initial=DEFAULT_DECODING["top_p"], min_value=0.01, max_value=1)
    max_new_tokens = forms.IntegerField(initial=DEFAULT_DECODING["max_new_tokens"], min_value=1, max_value=4096)
    seed = forms.IntegerField(initial=DEFAULT_DECODING["seed"])

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        adapters = Adapter.objects.filter(project=project).order_by("-created_at")
        for name in ("adapter", "against_adapter", "third_adapter"):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = adapters
        base_field = self.fields["against_base_model"]
        assert isinstance(base_field, forms.ModelChoiceField)
        base_field.queryset = BaseModel.objects.filter(state=BaseModelState.READY)
        target_field = self.fields["against_target"]
        assert isinstance(target_field, forms.ModelChoiceField)
        target_field.queryset = DeploymentTarget.objects.filter(project=project)
        release_field = self.fields["release"]
        assert isinstance(release_field, forms.ModelChoiceField)
        release_field.queryset = Release.objects.filter(project=project, state=ReleaseState.BUILT).order_by("-id")

    def against_side(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data["against"]
        if kind == "adapter":
            return {"kind": kind, "adapter": data["against_adapter"].pk if data["against_adapter"] else None}
        if kind == "deployment_target":
            return {"kind": kind, "target": data["against_target"].pk if data["against_target"] else None}
        return {"kind": kind, "base_model": data["against_base_model"].pk if data["against_base_model"] else None}

    def extra_sides(self) -> list[dict[str, Any]]:
        third = self.cleaned_data.get("third_adapter")
        return [{"kind": "adapter", "adapter": third.pk}] if third else []

    def decoding(self) -> dict[str, Any]:
        return {key: self.cleaned_data[key] for key in ("temperature", "top_p", "max_new_tokens", "seed")}
