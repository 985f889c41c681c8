"""Records keyed by contract name and major version ("GetDiagnosis:2"), so two versions of one contract are
served side by side

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The contracts served before this revision, all of major version 2.
_NAMES = ("GetDiagnosis", "GetMedicationHistory", "GetCarePlans", "GetFunctionalStatus", "GetCareDocumentation")


def upgrade() -> None:
    records = sa.table("records", sa.column("contract", sa.String))
    for name in _NAMES:
        op.execute(records.update().where(records.c.contract == name).values(contract=f"{name}:2"))


def downgrade() -> None:
    records = sa.table("records", sa.column("contract", sa.String))
    for name in _NAMES:
        op.execute(records.update().where(records.c.contract == f"{name}:2").values(contract=name))
    op.execute(records.delete().where(records.c.contract.like("%:%")))  # versions the old code cannot serve
