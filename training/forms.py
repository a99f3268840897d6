"""The job form (kind, release, base model, preset and every config option) and the base-model form.

The form only parses; ``training.services`` validates (``JobConfig``) and refuses with the field to fix."""

from typing import Any

from django import forms

from accounts.models import Project
from releases.models import Release
from training import selectors
from training.config import DPO_LOSS_TYPES, PRESETS, SCHEDULERS, JobConfig, preset_values
from training.models import BaseModel, JobKind

CONFIG_FIELDS = (
    "lora_r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_qlora", "learning_rate", "epochs",
    "max_steps", "batch_size", "gradient_accumulation_steps", "max_length", "lr_scheduler", "warmup_ratio",
    "logging_steps", "eval_steps", "seed", "packing", "beta", "loss_type",
)  # fmt: skip


def preset_table() -> dict[str, dict[str, dict[str, Any]]]:
    """Every preset's full config per kind, for the page's script that fills the fields."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key in PRESETS:
        table[key] = {}
        for kind in ("sft", "dpo"):
            config = JobConfig.from_dict(kind, preset_values(key, kind)).canonical()
            for name in ("target_modules", "loss_type"):
                if name in config:
                    config[name] = ", ".join(config[name])
            table[key][kind] = config
    return table


class ReleaseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Release) -> str:
        held_out = "" if obj.eval_rows else ", no held-out rows: no evaluation"
        return f"{obj.name} v{obj.version} ({obj.get_kind_display()}, {obj.hash[:8]}{held_out})"


class BaseModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: BaseModel) -> str:
        size = f"{obj.parameter_count:,} parameters" if obj.parameter_count else "size unknown"
        return f"{obj.name} ({obj.architecture}, {size})"


class JobForm(forms.Form):
    kind = forms.ChoiceField(choices=JobKind.choices, initial=JobKind.DPO)
    release = ReleaseChoiceField(queryset=Release.objects.none(), empty_label=None)
    base_model = BaseModelChoiceField(queryset=BaseModel.objects.none(), empty_label=None)
    preset = forms.ChoiceField(choices=[(p.key, p.label) for p in PRESETS.values()], initial="standard")

    lora_r = forms.IntegerField(label="LoRA rank", min_value=1)
    lora_alpha = forms.IntegerField(label="LoRA alpha", min_value=1)
    lora_dropout = forms.FloatField(label="LoRA dropout", min_value=0)
    target_modules = forms.CharField(label="Target modules", help_text="all-linear, or names such as q_proj, v_proj")
    use_dora = forms.BooleanField(label="DoRA", required=False)
    use_qlora = forms.BooleanField(label="QLoRA (4-bit; GPU with bitsandbytes)", required=False)
    learning_rate = forms.FloatField(label="Learning rate")
    epochs = forms.FloatField(label="Epochs")
    max_steps = forms.IntegerField(label="Max steps", min_value=0, help_text="0: run the epochs")
    batch_size = forms.IntegerField(label="Batch size", min_value=1)
    gradient_accumulation_steps = forms.IntegerField(label="Gradient accumulation", min_value=1)
    max_length = forms.IntegerField(label="max_length (tokens)", min_value=1)
    lr_scheduler = forms.ChoiceField(label="Scheduler", choices=[(s, s) for s in SCHEDULERS])
    warmup_ratio = forms.FloatField(label="Warm-up ratio", min_value=0)
    logging_steps = forms.IntegerField(label="Log every N steps", min_value=1)
    eval_steps = forms.IntegerField(label="Evaluate every N steps", min_value=0, help_text="0: before and after only")
    seed = forms.IntegerField(label="Seed", min_value=0)
    packing = forms.BooleanField(label="Packing (SFT; padding-free, best-fit decreasing)", required=False)
    beta = forms.FloatField(label="DPO beta")
    loss_type = forms.CharField(
        label="DPO loss types",
        help_text=f"comma-separated, e.g. sigmoid or sigmoid, sft; known: {', '.join(DPO_LOSS_TYPES)}",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        release_field = self.fields["release"]
        assert isinstance(release_field, forms.ModelChoiceField)
        release_field.queryset = selectors.trainable_releases(project)
        model_field = self.fields["base_model"]
        assert isinstance(model_field, forms.ModelChoiceField)
        model_field.queryset = selectors.ready_base_models()

    def config_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in CONFIG_FIELDS}


class BaseModelForm(forms.Form):
    name = forms.CharField(max_length=100)
    path = forms.CharField(max_length=500, help_text="Absolute path of the directory as the gpu workers see it.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def config_rows(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A stored config as (label, value, config key) rows, labelled as on the job form."""
    fields = JobForm.base_fields
    rows = []
    for key, value in sorted(config.items()):
        if key == "kind":
            rows.append(("Kind", JobKind(value).label if value in JobKind.values else str(value), key))
            continue
        field = fields.get(key)
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        rows.append((str(field.label) if field is not None and field.label else key, shown, key))
    return rows
