"""initial schema: records, supporting FHIR context, engagement-index outbox, access log and its queue

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:05:57.180351
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('logged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('ei_outbox',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('resident', sa.String(length=32), nullable=False),
    sa.Column('service_domain', sa.String(length=255), nullable=False),
    sa.Column('categorization', sa.String(length=255), nullable=False),
    sa.Column('logical_address', sa.String(length=64), nullable=False),
    sa.Column('source_system', sa.String(length=64), nullable=False),
    sa.Column('data_controller', sa.String(length=64), nullable=False),
    sa.Column('delete_flag', sa.Boolean(), nullable=False),
    sa.Column('most_recent_content', sa.String(length=14), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index('ix_ei_outbox_key', 'ei_outbox', ['resident', 'service_domain', 'categorization', 'logical_address', 'data_controller'], unique=False)
    op.create_index('ix_ei_outbox_state', 'ei_outbox', ['state', 'logical_address', 'service_domain'], unique=False)
    op.create_table('fhir_context',
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ref')
    )
    op.create_table('records',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('source_system', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=128), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.String(length=255), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('patient_type', sa.String(length=64), nullable=False),
    sa.Column('care_unit', sa.String(length=64), nullable=True),
    sa.Column('care_giver', sa.String(length=64), nullable=True),
    sa.Column('care_contact', sa.String(length=255), nullable=True),
    sa.Column('approved_for_patient', sa.Boolean(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('period_start', sa.String(length=8), nullable=True),
    sa.Column('period_end', sa.String(length=8), nullable=True),
    sa.Column('chain_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('fragment', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('resource_type', 'resource_id', 'part', name='uq_records_resource')
    )
    op.create_index('ix_records_document', 'records', ['source_system', 'contract', 'document_id'], unique=False)
    op.create_index('ix_records_lookup', 'records', ['contract', 'source_system', 'patient_id'], unique=False)
    op.create_table('log_outbox',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['seq'], ['access_log.seq'], ),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('record_days',
    sa.Column('record_pk', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.ForeignKeyConstraint(['record_pk'], ['records.pk'], ondelete='CASCADE')
    )
    op.create_index('ix_record_days', 'record_days', ['record_pk', 'day'], unique=False)
    _access_log_append_only()


def _access_log_append_only() -> None:
    """The access log refuses UPDATE and DELETE in the database too (the hash chain still catches anyone who
    drops these triggers first)."""
    if op.get_bind().dialect.name == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER access_log_no_{operation.lower()} BEFORE {operation} ON access_log "
                       "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'access_log is append-only'; END $$")
        op.execute("CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
                   "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()")


def downgrade() -> None:
    op.drop_index('ix_record_days', table_name='record_days')
    op.drop_table('record_days')
    op.drop_table('log_outbox')
    op.drop_index('ix_records_lookup', table_name='records')
    op.drop_index('ix_records_document', table_name='records')
    op.drop_table('records')
    op.drop_table('fhir_context')
    op.drop_index('ix_ei_outbox_state', table_name='ei_outbox')
    op.drop_index('ix_ei_outbox_key', table_name='ei_outbox')
    op.drop_table('ei_outbox')
    op.drop_table('access_log')
