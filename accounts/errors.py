class DomainError(Exception):
    """A request that the domain refuses. Services raise it once; views and the API turn it into a
    message or a 400 whose body says what to fix."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
