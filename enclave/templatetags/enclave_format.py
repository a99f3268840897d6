from django import template

register = template.Library()


@register.filter
def duration_ms(value: int | None) -> str:
    """Milliseconds as a person reads them: "45 s", "3 min 20 s", "1 h 5 min"."""
    if not value:
        return "0 s"
    seconds = round(int(value) / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def p_value(value: float | None) -> str:
    """A p-value as a statistician writes it: "0.042", "0.0031", "< 0.0001" (never "0.0000"), "—" for none."""
    if value is None:
        return "—"
    number = float(value)
    if number < 0.0001:
        return "< 0.0001"
    return f"{number:.4f}" if number < 0.01 else f"{number:.3f}"
