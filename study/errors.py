"""Errors a user can cause: each says what is wrong, where, and what to do."""

from __future__ import annotations


class StudyError(Exception):
    """A problem the user can fix. The CLI prints it without a traceback and exits 2."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None,
                 problems: list["StudyError"] | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        self.problems = problems or []

    @classmethod
    def many(cls, problems: list["StudyError"], summary: str | None = None) -> "StudyError":
        """One error that carries every problem found, so a user sees them all in one run."""
        if len(problems) == 1:
            return problems[0]
        n = len(problems)
        return cls(summary or f"{n} problems found", problems=list(problems))

    def lines(self) -> list[str]:
        out = [self.message]
        if self.where:
            out.append(f"  where: {self.where}")
        if self.hint:
            out.append(f"  fix:   {self.hint}")
        for i, p in enumerate(self.problems, 1):
            sub = p.lines()
            out.append(f"  {i}. {sub[0]}")
            out.extend("    " + line for line in sub[1:])
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())
