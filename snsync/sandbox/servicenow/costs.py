"""Server time per record: what a request costs the instance beyond its fixed per-request time.
Inserting a `sys_user` runs business rules (defaults, role inheritance, audit) and costs far more
than a membership row; every row read costs a little (reference.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass

HEAVY_TABLES = frozenset({"sys_user"})  # tables whose writes run the costly business rules


@dataclass(frozen=True)
class ServerCosts:
    """Milliseconds of server time per row read and per record written."""

    row_read_ms: float = 0.0
    user_insert_ms: float = 0.0  # a write to a heavy table (sys_user)
    insert_ms: float = 0.0  # any other table (a membership row, a group, a department)
    user_update_ms: float = 0.0
    update_ms: float = 0.0
    delete_ms: float = 0.0

    def seconds(self, method: str, table: str, rows: int) -> float:
        """The server time of one successful Table API call."""
        heavy = table in HEAVY_TABLES
        if method == "GET":
            ms = self.row_read_ms * rows
        elif method == "POST":
            ms = self.user_insert_ms if heavy else self.insert_ms
        elif method in ("PUT", "PATCH"):
            ms = self.user_update_ms if heavy else self.update_ms
        elif method == "DELETE":
            ms = self.delete_ms
        else:
            ms = 0.0
        return ms / 1000.0
