"""Form layout: a form's fields grouped into labelled fieldsets on a grid, each field marked with the value
of the form's switch (a release's kind, an import's format) it belongs to. The templates
``_form_fieldsets.html`` and ``_form_field.html`` draw it; ``static/js/forms.js`` shows the fields of the
chosen value and disables the others, so only what applies is sent."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.forms import BoundField


@dataclass(frozen=True)
class Slot:
    field: BoundField
    when: str = ""  # space-separated switch values the field belongs to; empty: always shown
    wide: bool = False  # spans the whole row (long choices, text areas)
    hidden: bool = False  # another value is chosen now


@dataclass(frozen=True)
class Fieldset:
    legend: str
    slots: list[Slot]
    note: str = ""
    dense: bool = False  # short inputs (numbers): two to a row even on a phone

    @property
    def hidden(self) -> bool:
        return all(slot.hidden for slot in self.slots)


def fieldsets(
    form: forms.Form,
    layout: Sequence[tuple[str, Sequence[str]]],
    *,
    when: Mapping[str, str],
    chosen: str,
    wide: Collection[str] = (),
    notes: Mapping[str, str] | None = None,
    dense: Collection[str] = (),
) -> list[Fieldset]:
    """The form's fields in ``layout`` order (legend, field names); fields the form does not have are left
    out, and so is a fieldset left empty. A field of ``when`` is hidden unless ``chosen`` is among its values."""
    sets = []
    for legend, names in layout:
        slots = [
            Slot(
                field=form[name],
                when=when.get(name, ""),
                wide=name in wide,
                hidden=bool(when.get(name)) and chosen not in when[name].split(),
            )
            for name in names
            if name in form.fields
        ]
        if slots:
            sets.append(Fieldset(legend=legend, slots=slots, note=(notes or {}).get(legend, ""), dense=legend in dense))
    return sets


class SwitchSelect(forms.Select):
    """A select whose options carry the switch value each one stands for (``data-switch``), e.g. a release
    option carries the kind of job it trains; ``switch_of`` maps an option's value to it."""

    def __init__(self, *, switch_of: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.switch_of: Mapping[str, str] = switch_of or {}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        switch = self.switch_of.get(str(option["value"]))
        if switch:
            option["attrs"] = {**option["attrs"], "data-switch": switch}
        return option
