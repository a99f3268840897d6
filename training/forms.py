"""The job form (kind, release, base model, preset and every config option) and the base-model form.

The form only parses; ``training.services`` validates (``JobConfig``) and refuses with the field to fix."""

from typing import Any

from django import forms
from django.utils.html import format_html_join

from accounts.models import Project
from annotation.selectors import default_release_kind
from core.forms import Fieldset, Slot, SwitchSelect, fieldsets
from core.http import parse_id
from releases.models import Release
from training import selectors
from training.config import DPO_LOSS_TYPES, KIND_ONLY, KINDS, PRESETS, SCHEDULERS, JobConfig, preset_values
from training.models import JOB_KIND_FOR_RELEASE, BaseModel, JobKind

CONFIG_FIELDS = (
    "lora_r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_qlora", "learning_rate", "epochs",
    "max_steps", "batch_size", "gradient_accumulation_steps", "max_length", "lr_scheduler", "warmup_ratio",
    "logging_steps", "eval_steps", "seed", "packing", "beta", "loss_type", "center_rewards_coefficient",
    "desirable_weight", "undesirable_weight",
)  # fmt: skip


def preset_table() -> dict[str, dict[str, dict[str, Any]]]:
    """Every preset's full config per kind, for the page's script that fills the fields."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key in PRESETS:
        table[key] = {}
        for kind in KINDS:
            config = JobConfig.from_dict(kind, preset_values(key, kind)).canonical()
            for name in ("target_modules", "loss_type"):
                if name in config:
                    config[name] = ", ".join(config[name])
            table[key][kind] = config
    return table


# The options of some kinds of job (space-separated): shown for those, neither sent nor read for the others. A
# preference release trains a DPO adapter or, when "Train" says so, a reward model.
ONLY_FOR = {name: " ".join(kinds) for name, kinds in KIND_ONLY.items()} | {"preference_kind": "dpo kto reward"}
REQUIRED_WHEN_SHOWN = ("beta", "loss_type", "desirable_weight", "undesirable_weight")  # the preset fills them
LAYOUT = (
    ("Training", ("release", "preference_kind", "base_model", "preset", "packing", "beta", "loss_type",
                  "desirable_weight", "undesirable_weight", "center_rewards_coefficient")),
    ("LoRA", ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_qlora")),
    ("Schedule", ("learning_rate", "lr_scheduler", "warmup_ratio", "epochs", "max_steps", "batch_size",
                  "gradient_accumulation_steps", "max_length", "logging_steps", "eval_steps", "seed")),
)  # fmt: skip
WIDE = {"release", "base_model", "preset", "loss_type", "target_modules"}
NOTES = {
    "LoRA": "The adapter: filled from the preset; change any value.",
    "Schedule": "Optimiser and steps: filled from the preset; change any value.",
}


class ReleaseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Release) -> str:
        held_out = "" if obj.eval_rows else ", no held-out rows: no evaluation"
        return f"{obj.name} v{obj.version} ({obj.get_kind_display()}, {obj.hash[:8]}{held_out})"


class BaseModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: BaseModel) -> str:
        size = f"{obj.parameter_count:,} parameters" if obj.parameter_count else "size unknown"
        return f"{obj.name} ({obj.architecture}, {size})"


class JobForm(forms.Form):
    """The job's kind follows the chosen release (SFT on an SFT release; on a preference release a DPO adapter,
    or a KTO adapter or a reward model when "Train" says so), and the form shows and reads only that kind's
    options."""

    kind = forms.ChoiceField(choices=JobKind.choices, required=False, widget=forms.HiddenInput)
    release = ReleaseChoiceField(
        queryset=Release.objects.none(), empty_label=None,
        help_text="An SFT release trains an SFT job; a preference release a DPO adapter or a reward model.",
    )  # fmt: skip
    preference_kind = forms.ChoiceField(
        label="Train", widget=forms.RadioSelect, required=False, initial=JobKind.DPO,
        choices=[(JobKind.DPO, "A DPO adapter (the model learns the preferred answers)"),
                 (JobKind.KTO, "A KTO adapter (chosen answers desirable, rejected ones undesirable, one by one)"),
                 (JobKind.REWARD, "A reward model (scores answers; ranks candidates for the experts)")],
    )  # fmt: skip
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
    packing = forms.BooleanField(
        label="Packing (padding-free, best-fit decreasing)", required=False,
        help_text="SFT: several short conversations share one sequence.",
    )  # fmt: skip
    beta = forms.FloatField(
        label="Beta", required=False, help_text="How far the adapter may move from the base model; 0.1 is usual."
    )
    loss_type = forms.CharField(
        label="DPO loss types", required=False,
        help_text=f"comma-separated, e.g. sigmoid or sigmoid, sft; known: {', '.join(DPO_LOSS_TYPES)}",
    )  # fmt: skip
    desirable_weight = forms.FloatField(
        label="Desirable weight", required=False, min_value=0, help_text="KTO: weight of the chosen answers' loss."
    )
    undesirable_weight = forms.FloatField(
        label="Undesirable weight", required=False, min_value=0, help_text="KTO: weight of the rejected answers' loss."
    )
    center_rewards_coefficient = forms.FloatField(
        label="Reward centring", required=False, min_value=0,
        help_text="Pulls the mean reward towards 0 (0: off; 0.01 is usual), so scores stay on a steady scale.",
    )  # fmt: skip

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project_kind = JOB_KIND_FOR_RELEASE[default_release_kind(project)]
        releases = selectors.trainable_releases(project)
        release_field = self.fields["release"]
        assert isinstance(release_field, forms.ModelChoiceField)
        self.job_kinds = {pk: JOB_KIND_FOR_RELEASE[kind] for pk, kind in releases.values_list("pk", "kind")}
        release_field.widget = SwitchSelect(switch_of={str(pk): kind for pk, kind in self.job_kinds.items()})
        release_field.queryset = releases  # after the widget: setting it hands the widget its choices
        self.fields["preset"].help_text = format_html_join(
            " ",
            '<span data-preset="{}"><strong>{}</strong>: {}</span>',
            ((p.key, p.label, p.description) for p in PRESETS.values()),
        )
        model_field = self.fields["base_model"]
        assert isinstance(model_field, forms.ModelChoiceField)
        model_field.queryset = selectors.ready_base_models()
        if self.is_bound:
            for name, kinds in ONLY_FOR.items():
                self.fields[name].disabled = self.chosen_kind not in kinds.split()  # other kinds' are not read

    @property
    def chosen_kind(self) -> str:
        """The kind of job the selected release trains (the project's kind while there is none)."""
        release = parse_id(str(self["release"].value() or ""))
        kind = self.job_kinds.get(release or 0, self.project_kind)
        return refined(kind, self["preference_kind"].value())

    def fieldsets(self) -> list[Fieldset]:
        return fieldsets(
            self, LAYOUT, when=ONLY_FOR, chosen=self.chosen_kind, wide=WIDE, notes=NOTES, dense={"LoRA", "Schedule"}
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        release = data.get("release")
        if not isinstance(release, Release):
            return data
        kind = refined(JOB_KIND_FOR_RELEASE[release.kind], data.get("preference_kind"))
        data["kind"] = kind  # whatever was sent: the release (and "Train" for a preference release) decides
        for name, only in ONLY_FOR.items():
            if kind not in only.split():
                data.pop(name, None)  # the other kinds' options are not read
            elif name in REQUIRED_WHEN_SHOWN and data.get(name) in (None, ""):
                self.add_error(name, "Give a value; the preset fills it.")
        return data

    def config_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in CONFIG_FIELDS if name in self.cleaned_data}


def refined(kind: str, preference_kind: Any) -> str:
    """A preference release trains a DPO adapter unless a reward model or a KTO adapter is asked for."""
    if kind == JobKind.DPO and preference_kind in (JobKind.REWARD, JobKind.KTO):
        return str(preference_kind)
    return kind


class BaseModelForm(forms.Form):
    name = forms.CharField(max_length=100)
    path = forms.CharField(max_length=500, help_text="Absolute path of the directory as the gpu workers see it.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def slots(self) -> list[Slot]:
        return [Slot(field=self[name], wide=name != "name") for name in self.fields]


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
