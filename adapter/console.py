"""The one console the commands write to people with (rich, on standard error).

On a terminal, text and tables fit its width. Into a file or a pipe (CI, cron, `2>&1 | tee`), nothing is wrapped:
rich would otherwise take 80 columns and split case names, URLs and rejection messages over lines, so that a
`grep` no longer finds them. Not even `COLUMNS` makes it wrap there: shells and CI runners export it for the
terminal they started in, not for the file the output goes to.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

# Wide enough that no line or table of ours is ever folded; tables still take only the width they need.
UNWRAPPED_WIDTH = 4096


class _Console(Console):
    def _unwrapped(self) -> bool:
        return not self.is_terminal

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height) if self._unwrapped() else size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    @property  # type: ignore[override]
    def soft_wrap(self) -> bool:
        return self._soft_wrap or self._unwrapped()

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


def stderr_console() -> Console:
    """A console on standard error that wraps on a terminal only. It looks at the stream each time it writes, so one
    made at import time follows a test runner's or a pipe's stream."""
    return _Console(stderr=True)
