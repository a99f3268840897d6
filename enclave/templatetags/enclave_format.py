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
