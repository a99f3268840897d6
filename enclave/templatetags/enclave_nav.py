"""The project tab bar, shown on every project page, with the tabs the user's role allows."""

from typing import Any

from django import template
from django.urls import reverse

from accounts.models import Project, ProjectPerm
from accounts.permissions import project_perms_for
from annotation.selectors import work_kinds

register = template.Library()

# (url name, label, the permission, or any one of a set of permissions, that shows the tab)
_TABS: list[tuple[str, str, str | set[str]]] = [
    ("project_detail", "Overview", ProjectPerm.VIEW),
    ("annotate", "Annotate", ProjectPerm.ANNOTATE),
    ("compare", "Compare", ProjectPerm.ANNOTATE),
    ("review_queue", "Review", ProjectPerm.REVIEW),
    ("adjudications", "Adjudicate", ProjectPerm.REVIEW),
    ("imports", "Imports", ProjectPerm.MANAGE_DATA),
    ("rubric", "Rubric", ProjectPerm.VIEW),
    ("on_hold", "On hold", ProjectPerm.MANAGE_DATA),
    ("preference_quality", "Agreement", {ProjectPerm.REVIEW, ProjectPerm.MANAGE_DATA}),
    ("releases", "Releases", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("training", "Training", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("generation", "Generation", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("scoring", "Scoring", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("deployments", "Deployments", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING, ProjectPerm.APPROVE_PROMOTION}),
    ("evaluations", "Evaluations", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("rounds", "Rounds", {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}),
    ("annotation_settings", "Settings", ProjectPerm.MANAGE_DATA),
    ("project_members", "Members", ProjectPerm.MANAGE_MEMBERS),
    ("project_audit", "Audit log", ProjectPerm.VIEW_AUDIT),
]

# Tabs for one kind of work, hidden in a project that imported only the other kind (a project that imported
# nothing yet shows both; the page itself stays reachable by its address).
_KIND_OF_TAB = {"annotate": "sft", "review_queue": "sft", "compare": "comparison", "adjudications": "comparison"}

# Pages that belong under another page's tab.
_UNDER = {
    "annotate_item": "annotate",
    "review": "review_queue",
    "import_detail": "imports",
    "compare_item": "compare",
    "adjudicate": "adjudications",
    "preference_settings": "annotation_settings",
    "retention": "annotation_settings",
    "release_new": "releases",
    "release_detail": "releases",
    "release_diff": "releases",
    "training_new": "training",
    "training_job": "training",
    "adapter": "training",
    "generation_new": "generation",
    "generation_run": "generation",
    "scoring_new": "scoring",
    "scoring_run": "scoring",
    "deployment_new": "deployments",
    "deployment_target": "deployments",
    "deployment_target_edit": "deployments",
    "deployment_promote": "deployments",
    "deployment_rollback": "deployments",
    "evaluation_new": "evaluations",
    "evaluation": "evaluations",
    "round_new": "rounds",
    "round": "rounds",
}


@register.inclusion_tag("_project_nav.html", takes_context=True)
def project_nav(context: dict[str, Any], project: Project) -> dict[str, Any]:
    request = context["request"]
    current = request.resolver_match.url_name if request.resolver_match else ""
    current = _UNDER.get(current, current)
    granted = project_perms_for(request.user, project)
    kinds = work_kinds(project)
    tabs = []
    for name, label, perm in _TABS:
        allowed = granted & perm if isinstance(perm, set) else perm in granted
        kind = _KIND_OF_TAB.get(name)
        needed = kind is None or kind in kinds or name == current
        if allowed and needed:
            tabs.append({"url": reverse(name, args=[project.pk]), "label": label, "current": name == current})
    return {"tabs": tabs}
