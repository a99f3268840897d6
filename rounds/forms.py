"""The form that starts a round: the deployment target whose policy answers, the new prompts, K candidates
per prompt and the decoding, the pair policy (with its reward model), and the DPO settings of the round's job
(its LoRA shape is the policy adapter's; a preset and a few overrides)."""

from typing import Any

from django import forms

from accounts.models import Project
from core.forms import Fieldset, fieldsets
from evaluation.models import DeploymentTarget, PromptSource
from evaluation.prompts import MAX_PROMPTS, UPLOAD_FORMAT_LABELS
from rounds.models import PairPolicy
from rounds.services import MAX_CANDIDATES
from training.config import PRESETS, preset_for
from training.models import RewardModel

SOURCES = [
    (PromptSource.UPLOAD, "An uploaded prompt file"),
    (PromptSource.PROJECT_ITEMS, "The project's imported items"),
]
LAYOUT = [
    ("Policy", ("target",)),
    ("New prompts", ("source", "file", "fmt", "limit")),
    ("Candidates and pairs", ("candidates_per_prompt", "temperature", "top_p", "max_new_tokens", "seed",
                              "pair_policy", "reward_model", "pairs_per_prompt")),
    ("Release and DPO", ("min_decided", "eval_fraction", "dpo_preset", "learning_rate", "max_steps", "beta")),
]  # fmt: skip


class TargetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: DeploymentTarget) -> str:
        serving = obj.current_adapter.name if obj.current_adapter is not None else f"{obj.base_model} alone"
        return f"{obj.name} (serves {serving})"


class RoundForm(forms.Form):
    target = TargetChoiceField(
        queryset=DeploymentTarget.objects.none(),
        empty_label=None,
        label="Deployment target",
        help_text="Its current model answers the new prompts; the round's adapter continues it.",
    )
    source = forms.ChoiceField(choices=SOURCES, initial=PromptSource.UPLOAD, label="Prompts")
    file = forms.FileField(required=False, label="Prompt file", help_text="JSONL, one conversation per line.")
    fmt = forms.ChoiceField(
        choices=[(f.value, label) for f, label in UPLOAD_FORMAT_LABELS.items()], required=False, label="File format"
    )
    limit = forms.IntegerField(min_value=1, max_value=MAX_PROMPTS, initial=100, required=False,
                               label="How many imported items (oldest first)")  # fmt: skip
    candidates_per_prompt = forms.IntegerField(min_value=2, max_value=MAX_CANDIDATES, initial=4,
                                               label="Candidates per prompt (K)")  # fmt: skip
    temperature = forms.FloatField(min_value=0.01, initial=1.0, label="Temperature")
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=1.0, label="top_p")
    max_new_tokens = forms.IntegerField(min_value=1, initial=64, label="Max new tokens")
    seed = forms.IntegerField(min_value=0, initial=0, label="Seed")
    pair_policy = forms.ChoiceField(choices=PairPolicy.choices, initial=PairPolicy.LEAST_SURE, label="Pair policy")
    reward_model = forms.ModelChoiceField(queryset=RewardModel.objects.none(), required=False, label="Reward model",
                                          empty_label="None (random pairs only)")  # fmt: skip
    pairs_per_prompt = forms.IntegerField(min_value=1, initial=1, label="Pairs per prompt")
    min_decided = forms.IntegerField(min_value=1, initial=1, label="Decided pairs before an early release")
    eval_fraction = forms.FloatField(min_value=0.01, max_value=0.5, initial=0.2,
                                     label="Prompts held out for the evaluation")  # fmt: skip
    dpo_preset = forms.ChoiceField(
        choices=[(key, preset.label) for key, preset in PRESETS.items()], initial="standard", label="DPO preset"
    )
    learning_rate = forms.FloatField(required=False, label="Learning rate (blank: the preset's)")
    max_steps = forms.IntegerField(min_value=0, required=False, label="Max steps (blank: the preset's)")
    beta = forms.FloatField(required=False, label="DPO beta (blank: the preset's)")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        targets = DeploymentTarget.objects.filter(project=project).select_related("base_model", "current_adapter")
        self.fields["target"].queryset = targets  # type: ignore[attr-defined]
        first = targets.first()
        if first is not None and not self.is_bound:
            # The quick preset for a CPU-sized model (the demo's): the standard one would train a round's few
            # dozen pairs for a step or two, at a warm-up learning rate near 0.
            self.fields["dpo_preset"].initial = preset_for(first.base_model.parameter_count)
        reward_models = RewardModel.objects.filter(project=project).order_by("-created_at", "-id")
        self.fields["reward_model"].queryset = reward_models  # type: ignore[attr-defined]
        newest = reward_models.first()
        if newest is not None and not self.is_bound:
            self.fields["reward_model"].initial = newest.pk  # the least-sure policy, chosen first, needs one

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == PromptSource.UPLOAD and not data.get("file"):
            self.add_error("file", "Choose the prompt file to upload.")
        return data

    def fieldsets(self) -> list[Fieldset]:
        return fieldsets(self, LAYOUT, when={}, chosen="", dense={"Candidates and pairs"})

    def decoding(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("temperature", "top_p", "max_new_tokens", "seed")}

    def dpo_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in ("learning_rate", "max_steps", "beta")}
