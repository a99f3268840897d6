"""The dossier for people: ``dossier.html`` (one self-contained page, printable: no script, no outside address)
and ``dossier.pdf`` (fpdf2, pure Python), both written from ``dossier.json``'s content."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.template.loader import render_to_string
from fpdf import FPDF

# A Unicode TrueType font where the system has one (Debian's fonts-dejavu-core); else the PDF's own Helvetica,
# which holds Latin-1 only, so other characters are written as "?".
UNICODE_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _datasheet_text(release: dict[str, Any], files: dict[str, bytes]) -> str:
    markdown = files.get(release["files"].get("datasheet.md", ""))
    return markdown.decode() if markdown is not None else _pretty(release["datasheet"])


def dossier_html(content: dict[str, Any], files: dict[str, bytes]) -> bytes:
    releases = [{**r, "datasheet_text": _datasheet_text(r, files)} for r in content["releases"]]
    lineage = content["lineage"]
    context = {
        "d": content,
        "releases": releases,
        "hardware": _pretty(lineage["hardware"]),
        "network": _pretty(lineage["network"]),
        "config": _pretty(lineage["config"]),
        "procedure": _pretty(content["annotation_procedure"]),
        "bias": _pretty(content["bias"]),
        "held_out": _pretty(content["held_out_evaluation"]),
    }
    return render_to_string("governance/dossier_document.html", context).encode()


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.title_text = title
        font = next((path for path in UNICODE_FONTS if path.exists()), None)
        if font is not None:
            self.add_font("body", "", str(font))
            self.body_font = "body"
            self.has_unicode = True
        else:
            self.body_font = "helvetica"
            self.has_unicode = False
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def safe(self, value: str) -> str:
        return value if self.has_unicode else value.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.body_font, size=7)
        self.cell(0, 5, self.safe(f"{self.title_text} · page {self.page_no()}"), align="C")

    def heading(self, value: str) -> None:
        self.ln(2)
        self.set_font(self.body_font, size=13)
        self.multi_cell(0, 7, self.safe(value), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def para(self, value: str, size: float = 9) -> None:
        self.set_font(self.body_font, size=size)
        self.multi_cell(0, size * 0.5, self.safe(value), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def facts(self, rows: list[tuple[str, Any]]) -> None:
        for label, value in rows:
            self.para(f"{label}: {value}")


def dossier_pdf(content: dict[str, Any], files: dict[str, bytes], *, created: datetime) -> bytes:
    """The same sections as the HTML, as text: figures, tables as lines, the long records as JSON."""
    lineage = content["lineage"]
    pdf = _Pdf(f"Dossier of adapter {content['adapter']['name']}")
    pdf.set_creation_date(created)
    pdf.set_title(pdf.title_text)
    pdf.add_page()
    pdf.heading(pdf.title_text)
    pdf.para(
        f"Project {content['project']['name']} · exported {content['exported_at']} by {content['exported_by']} · "
        f"{content['format']} · code {content['code_version']}. Verify with: python verify_dossier.py ."
    )
    pdf.heading("1. Lineage")
    pdf.facts(
        [
            ("Adapter sha256", content["adapter"]["sha256"]),
            ("Release", f"{lineage['release']['name']} v{lineage['release']['version']} {lineage['release']['hash']}"),
            ("Base model", f"{lineage['base_model']['name']} {lineage['base_model']['hash']}"),
            ("Config hash", lineage["config_hash"]),
            ("Seed", lineage["seed"]),
            ("Job", f"#{lineage['job']['id']} ({lineage['job']['kind']}) on {lineage['job']['worker']}"),
            ("Code version", lineage["code_version"]),
            ("Libraries", ", ".join(f"{k} {v}" for k, v in sorted(lineage["library_versions"].items()))),
            ("Hardware", _pretty(lineage["hardware"])),
            ("Network record", _pretty(lineage["network"])),
            ("Config", _pretty(lineage["config"])),
        ]
    )
    pdf.heading("2. Datasheets (Art. 10(2)(a)-(h))")
    for release in content["releases"]:
        pdf.para(f"{release['name']} v{release['version']} ({release['state']}), hash {release['hash']}", size=10)
        pdf.para(_datasheet_text(release, files), size=7)
    pdf.heading("3. Rubric versions and guidelines")
    for rubric in content["rubrics"]:
        pdf.para(f"Version {rubric['version']}: {rubric['guidelines_file']} sha256 {rubric['guidelines_sha256']}")
    pdf.heading("4. Annotation procedure")
    pdf.para(_pretty(content["annotation_procedure"]), size=7)
    pdf.heading("5. Annotators (pseudonymised)")
    for row in content["annotators"]:
        pdf.para(
            f"{row['pseudonym']}: annotations {row['annotations'] or '-'}, judgements {row['judgements']}, "
            f"gold {row.get('gold') or '-'}, too fast {row.get('too_fast_judgements', '-')}, "
            f"flagged {row.get('flagged', '-')}, excluded {row.get('excluded', '-')}, "
            f"agreement {row.get('agreement_with_consensus', {}).get('rate', '-')}"
        )
    pdf.heading("6. Bias checks")
    pdf.para(_pretty(content["bias"]), size=7)
    pdf.heading("7. Known gaps")
    for gap in content["known_gaps"] or ["None recorded."]:
        pdf.para(f"- {gap}")
    training = content["training"]
    pdf.heading("8. Training log")
    pdf.para(
        f"Job #{training['job']} ({training['kind']}, {training['state']}): {training['logged_steps']} logged steps "
        f"in {training['files']['metrics']}, {training['log_lines']} log lines in {training['files']['log']}."
    )
    pdf.heading("9. Held-out evaluation")
    pdf.para(_pretty(content["held_out_evaluation"]), size=7)
    pdf.heading("10. Human evaluations")
    for evaluation in content["human_evaluations"] or [None]:
        if evaluation is None:
            pdf.para("The adapter has not been evaluated by people.")
            continue
        pdf.para(f"#{evaluation['id']} {evaluation['name']} ({evaluation['state']}), {evaluation['file']}")
        for row in (evaluation["results"] or {}).get("head_to_head", []):
            pdf.para(
                f"  against {row['label']}: {row['wins']} wins, {row['ties']} ties, {row['losses']} losses, "
                f"win rate {row['win_rate']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
            )
    pdf.heading("11. Promotions and deployments")
    pdf.para(_pretty(content["deployments"]), size=7)
    audit = content["audit"]
    pdf.heading("12. Audit events (Art. 12)")
    pdf.para(
        f"{audit['events']} events in {audit['files']['events']}; {audit['links']} chain links to head "
        f"#{audit['head']['seq']} {audit['head']['hash']} in {audit['files']['chain']}."
    )
    return bytes(pdf.output())
