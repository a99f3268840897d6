class DomainError(Exception):
    """A request that the domain refuses. Services raise it once; views and the API turn it into a
    message or a 400 whose body says what to fix (``status`` 409 for a conflict with what is stored, e.g. a
    submission key sent again with other content or a member added twice; 404 for an object the request names
    that does not exist)."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    @property
    def conflict(self) -> bool:
        return self.status == 409
