"""Records keep their latest filter day (`latest_day`, max of their record_days, "" when none), indexed with the
patient's lookup columns: a partial answer (TKB hasMore) walks ix_records_page newest first instead of sorting
every record of the patient by a subquery per record

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('records', sa.Column('latest_day', sa.String(length=8), server_default='', nullable=False))
    records = sa.table('records', sa.column('pk', sa.Integer), sa.column('latest_day', sa.String))
    days = sa.table('record_days', sa.column('record_pk', sa.Integer), sa.column('day', sa.String))
    mine = days.c.record_pk == records.c.pk
    op.execute(records.update()
               .where(sa.exists().where(mine))  # a record without days keeps the default ""
               .values(latest_day=sa.select(sa.func.max(days.c.day)).where(mine).scalar_subquery()))
    op.create_index('ix_records_page', 'records',
                    ['contract', 'source_system', 'patient_id', 'patient_type', 'latest_day', 'pk'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_records_page', table_name='records')
    with op.batch_alter_table('records') as batch:
        batch.drop_column('latest_day')
