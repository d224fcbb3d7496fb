"""The one error type of configuration loading, carrying every problem found in a file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One mistake in one file: where it is and what to do about it."""

    file: str
    message: str
    key: str = ""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised with all the problems of one or more configuration files at once."""

    def __init__(self, problems: list[Problem]) -> None:
        files = list(dict.fromkeys(p.file for p in problems))
        # Grouped by file in the order met, then in line order, so the output reads top-down.
        self.problems = sorted(
            problems, key=lambda p: (files.index(p.file), p.line if p.line is not None else 0)
        )
        super().__init__("\n".join(str(p) for p in self.problems))
