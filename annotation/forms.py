from typing import Any

from django import forms
from django.http import QueryDict

from accounts.models import Project
from annotation import selectors
from annotation.formats import format_misfit
from annotation.models import AnnotationSettings, PiiMode, PiiUncertain
from annotation.parsing import ImportFormat
from annotation.peers.records import PeerFormat
from core.forms import Fieldset, fieldsets

FORMAT_LABELS = {
    ImportFormat.CHAT_JSONL: 'JSONL, OpenAI chat ({"messages": [...]})',
    ImportFormat.PROMPT_RESPONSE_JSONL: 'JSONL, {"prompt", "response"}',
    ImportFormat.CSV: "CSV with a column mapping",
    ImportFormat.COMPARISON_JSONL: 'JSONL comparisons ({"prompt" or "messages", "candidates": [...]})',
    PeerFormat.LABEL_STUDIO: "Label Studio JSON export (pairwise, ranking or edited answers), with its judgements",
    PeerFormat.ARGILLA: "Argilla v2 dataset (a zip of the folder Dataset.to_disk writes), with its responses",
    PeerFormat.OPENASSISTANT: "OpenAssistant message trees (JSONL), each set of ranked replies a comparison",
}
FORMAT_CHOICES = [(fmt.value, label) for fmt, label in FORMAT_LABELS.items()]
CSV_FIELDS = ("csv_prompt", "csv_response", "csv_system", "csv_id", "csv_metadata")


class ImportForm(forms.Form):
    file = forms.FileField()
    fmt = forms.ChoiceField(
        choices=FORMAT_CHOICES, label="Format", widget=forms.RadioSelect,
        help_text="Only the formats that fit this project's work: comparisons, or conversations to annotate.",
    )  # fmt: skip
    skip_bad_lines = forms.BooleanField(
        required=False,
        label="Skip bad lines",
        help_text="Import the good lines and keep the report. Without it, one bad line means nothing is imported.",
    )
    purpose = forms.ChoiceField(
        choices=[
            ("annotation", "Items to annotate"),
            ("mixin", "General-purpose mix-in for SFT releases (conversations with answers; never annotated)"),
        ],
        initial="annotation",
        required=False,
        widget=forms.RadioSelect,
        help_text="A mix-in is imported separately and mixed into the training split of SFT releases as it is.",
    )
    csv_prompt = forms.CharField(required=False, label="Prompt column")
    csv_response = forms.CharField(required=False, label="Response column")
    csv_system = forms.CharField(required=False, label="System prompt column")
    csv_id = forms.CharField(required=False, label="Id column")
    csv_metadata = forms.CharField(required=False, label="Metadata columns (comma-separated)")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.formats = selectors.import_formats(project)
        fmt = self.fields["fmt"]
        assert isinstance(fmt, forms.ChoiceField)
        fmt.choices = [(f.value, FORMAT_LABELS[f]) for f in self.formats]
        fmt.initial = self.formats[0].value
        other = set(FORMAT_LABELS) - set(self.formats)
        if other:  # a format of the other kind of work is refused, saying where it belongs
            fmt.error_messages["invalid_choice"] = format_misfit(sorted(other)[0])
        if ImportFormat.CSV not in self.formats:
            for name in CSV_FIELDS:
                del self.fields[name]
        if not set(self.formats) & set(selectors.SFT_FORMATS):
            del self.fields["purpose"]  # a mix-in is conversations for SFT releases: none in a comparison project

    @property
    def chosen_format(self) -> str:
        value = self["fmt"].value()
        return value if value in self.formats else self.formats[0].value

    def fieldsets(self) -> list[Fieldset]:
        sft = " ".join(f.value for f in selectors.SFT_FORMATS)
        when = {"purpose": sft} | dict.fromkeys(CSV_FIELDS, ImportFormat.CSV.value)
        return fieldsets(
            self,
            (("File", ("file", "fmt", "purpose", "skip_bad_lines")), ("CSV columns", CSV_FIELDS)),
            when=when,
            chosen=self.chosen_format,
            wide={"fmt", "purpose", "skip_bad_lines"},
            notes={"CSV columns": "Header names in the file; only the prompt column is required."},
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data.setdefault("purpose", "annotation")
        if data.get("fmt") == ImportFormat.CSV and not data.get("csv_prompt"):
            self.add_error("csv_prompt", "Name the column that holds the prompt.")
        return data


class RubricForm(forms.Form):
    guidelines = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}), required=False, help_text="Markdown. Shown beside every item."
    )


def criteria_from_post(data: "QueryDict") -> list[dict[str, Any]]:
    """Read the criteria table of the rubric page: rows ``crit-<n>-<field>``; rows without a name or
    marked for removal are dropped. The service validates what remains."""
    rows = sorted({int(key.split("-")[1]) for key in data if key.startswith("crit-") and key.split("-")[1].isdigit()})
    criteria = []
    for n in rows:
        name = data.get(f"crit-{n}-name", "").strip()
        if not name or data.get(f"crit-{n}-remove"):
            continue
        criteria.append(
            {
                "key": data.get(f"crit-{n}-key", "").strip() or None,
                "name": name,
                "guidance": data.get(f"crit-{n}-guidance", ""),
                "scale": data.get(f"crit-{n}-scale", ""),
                "categories": [c.strip() for c in data.get(f"crit-{n}-categories", "").split(",") if c.strip()],
                "required": bool(data.get(f"crit-{n}-required")),
                "weight": data.get(f"crit-{n}-weight", "1") or "1",
            }
        )
    return criteria


class AnnotationSettingsForm(forms.Form):
    annotators_per_item = forms.IntegerField(min_value=1, max_value=10, label="Annotators per item (k)")
    lease_minutes = forms.IntegerField(
        min_value=5,
        max_value=1440,
        label="Lease (minutes)",
        help_text="An item returns to the queue if left this long.",
    )
    pii_mode = forms.ChoiceField(choices=PiiMode.choices, label="PII policy at import")
    pii_uncertain = forms.ChoiceField(
        required=False,
        choices=PiiUncertain.choices,
        label="Values the scrubber is unsure of",
        help_text="E.g. a number that could be a phone number, with no word around it saying so. Each is "
        "listed in the import report (line and shape, never the value) either way.",
    )
    pii_phone_region = forms.CharField(
        required=False,
        max_length=2,
        label="Phone region",
        help_text="Country code (GB, DE, FR …) whose national phone numbers are read without +CC.",
    )
    pii_patterns_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        label="Extra PII patterns",
        help_text="One per line: TYPE regex, e.g. ACCOUNT ACC-\\d{6}",
    )
    pii_terms_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Extra PII terms",
        help_text="One per line: customer names, product codes … replaced wherever they appear.",
    )

    def __init__(self, *args: Any, instance_settings: AnnotationSettings, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "annotators_per_item": instance_settings.annotators_per_item,
                "lease_minutes": instance_settings.lease_minutes,
                "pii_mode": instance_settings.pii_mode,
                "pii_uncertain": instance_settings.pii_uncertain,
                "pii_phone_region": instance_settings.pii_phone_region,
                "pii_patterns_text": "\n".join(f"{t} {p}" for t, p in instance_settings.pii_patterns),
                "pii_terms_text": "\n".join(instance_settings.pii_terms),
            },
        )
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        patterns = []
        for number, line in enumerate((data.pop("pii_patterns_text", "") or "").splitlines(), start=1):
            if not line.strip():
                continue
            kind, _, regex = line.strip().partition(" ")
            if not regex.strip() or not kind.isupper():
                self.add_error(
                    "pii_patterns_text", f"Line {number}: write an upper-case TYPE, a space, then the regex."
                )
                continue
            patterns.append([kind, regex.strip()])
        data["pii_patterns"] = patterns
        if self.add_prefix("pii_phone_region") in self.data and not data.get("pii_phone_region"):
            self.add_error("pii_phone_region", "Give a country code such as GB or DE.")
        for left_as_is in ("pii_uncertain", "pii_phone_region"):  # not sent: unchanged
            data[left_as_is] = data.get(left_as_is) or None
        data["pii_terms"] = [t.strip() for t in (data.pop("pii_terms_text", "") or "").splitlines() if t.strip()]
        return data
