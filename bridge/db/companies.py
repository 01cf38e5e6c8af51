"""Companies (tenants), mirrored from the config file."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list


@dataclass(frozen=True, slots=True)
class CompanyRow:
    id: str
    name: str


COLUMNS = column_list(CompanyRow)


def _company(row: Row) -> CompanyRow:
    return CompanyRow(**row)


class CompanyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, company_id: str, name: str) -> CompanyRow:
        """Create the company or rename it."""
        row = await self._db.fetchrow_required(
            f"INSERT INTO companies (id, name) VALUES ($1, $2) "
            f"ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING {COLUMNS}",
            company_id,
            name,
        )
        return _company(row)

    async def get(self, company_id: str) -> CompanyRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM companies WHERE id = $1", company_id)
        return _company(row) if row else None

    async def list_all(self) -> list[CompanyRow]:
        rows = await self._db.fetch(f"SELECT {COLUMNS} FROM companies ORDER BY id")
        return [_company(row) for row in rows]
