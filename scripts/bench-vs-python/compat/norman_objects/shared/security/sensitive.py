"""Stand-in for the unpublished `norman-objects` package (see ../README): a secret that prints
as a placeholder."""

from typing import Generic, TypeVar

T = TypeVar("T")


class Sensitive(Generic[T]):
    def __init__(self, value: T):
        self._value = value

    def value(self) -> T:
        return self._value

    def __repr__(self):
        return "Sensitive(***)"
