"""The comparison charts of the project overview: the overview is annotation's page and the charts are
preferences', so they meet here, where the apps are wired together."""

from typing import Any

from django import template

from accounts.models import Project
from preferences.charts import overview_charts

register = template.Library()


@register.inclusion_tag("preferences/_overview_charts.html", takes_context=True)
def comparison_overview_charts(context: dict[str, Any], project: Project) -> dict[str, Any]:
    """Judgements per day and annotator, and progress toward k, with annotators named only for who may see
    names (``preferences.permissions.may_see_annotator_names``)."""
    return {"charts": overview_charts(project, context["request"].user)}
