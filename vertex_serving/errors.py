"""The one error type for what the user got wrong: it names the parameter, the bad value and the fix."""

from __future__ import annotations


class UserError(ValueError):
    """A bad parameter, printed as one line: `parameter='value' problem: fix`."""

    def __init__(self, parameter: str, value: object, problem: str, fix: str) -> None:
        self.parameter, self.value, self.problem, self.fix = parameter, value, problem, fix
        super().__init__(f"{parameter}={_shown(value)} {problem}: {fix}")


def _shown(value: object, limit: int = 160) -> str:
    """The value as written in Python, cut short so that the line stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class InvalidConfig(ValueError):
    """Every problem of one configuration, found in one pass, so a user fixes them all at once."""

    def __init__(self, errors: list[UserError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
