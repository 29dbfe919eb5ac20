"""One exception type for bad input, so every stage and the CLI report it the same way."""

from __future__ import annotations


class InputError(Exception):
    """Bad input the user can fix: says where (file, row, key), what is wrong and how to fix it."""

    def __init__(
        self,
        what: str,
        *,
        file: str | None = None,
        row: int | None = None,
        key: str | None = None,
        fix: str | None = None,
    ):
        self.what, self.file, self.row, self.key, self.fix = what, file, row, key, fix
        super().__init__(self.message())

    def message(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.row) if p is not None)
        if self.key:
            where = f"{where} [{self.key}]" if where else self.key
        text = f"{where}: {self.what}" if where else self.what
        return f"{text} (fix: {self.fix})" if self.fix else text
