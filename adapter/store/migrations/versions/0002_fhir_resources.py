"""FHIR resources with versions, owners, identifiers and links (the FHIR REST endpoint); replaces fhir_context

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_HSA_SOURCE = "urn:oid:1.2.752.129.2.1.4.1#"


def upgrade() -> None:
    resources = op.create_table('fhir_resources',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id')
    )
    identifiers = op.create_table('fhir_identifiers',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False)
    )
    op.create_index('ix_fhir_identifiers_value', 'fhir_identifiers', ['value', 'system'], unique=False)
    op.create_index('ix_fhir_identifiers_resource', 'fhir_identifiers', ['resource_type', 'resource_id'], unique=False)
    op.create_table('fhir_links',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=600), nullable=False)
    )
    op.create_index('ix_fhir_links_target', 'fhir_links', ['target', 'kind'], unique=False)
    op.create_index('ix_fhir_links_resource', 'fhir_links', ['resource_type', 'resource_id'], unique=False)

    # Supporting resources kept by earlier ingest runs move over as version 1. Their content hash is left empty,
    # so the next time a writer sends one it is taken as a change (and the records using it are re-rendered).
    conn = op.get_bind()
    context = sa.table('fhir_context', sa.column('ref'), sa.column('resource_type'), sa.column('body'),
                       sa.column('updated_at', sa.DateTime(timezone=True)))
    rows, idents = [], []
    for ref, rtype, body, updated in conn.execute(sa.select(context.c.ref, context.c.resource_type,
                                                            context.c.body, context.c.updated_at)):
        rid = ref.partition("/")[2]
        data = json.loads(body)
        source = ((data.get("meta") or {}).get("source") or "")
        owner = source[len(_HSA_SOURCE):] if source.startswith(_HSA_SOURCE) else None
        rows.append({"resource_type": rtype, "resource_id": rid, "version_id": 1, "owner": owner or None,
                     "content_hash": "", "deleted": False, "body": body, "last_updated": updated})
        found = data.get("identifier") or []
        for ident in found if isinstance(found, list) else [found]:
            if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
                idents.append({"resource_type": rtype, "resource_id": rid, "system": str(ident["system"])[:255],
                               "value": str(ident["value"])[:255]})
    if rows:
        conn.execute(resources.insert(), rows)
    if idents:
        conn.execute(identifiers.insert(), idents)
    op.drop_table('fhir_context')


def downgrade() -> None:
    context = op.create_table('fhir_context',
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ref')
    )
    conn = op.get_bind()
    resources = sa.table('fhir_resources', sa.column('resource_type'), sa.column('resource_id'),
                         sa.column('body'), sa.column('last_updated', sa.DateTime(timezone=True)),
                         sa.column('deleted', sa.Boolean()))
    supporting = ("Patient", "Organization", "Practitioner", "PractitionerRole", "Provenance", "Encounter",
                  "Medication")
    rows = [{"ref": f"{t}/{i}", "resource_type": t, "body": b, "updated_at": u}
            for t, i, b, u in conn.execute(sa.select(resources.c.resource_type, resources.c.resource_id,
                                                     resources.c.body, resources.c.last_updated)
                                           .where(resources.c.resource_type.in_(supporting),
                                                  resources.c.deleted.is_(False)))]
    if rows:
        conn.execute(context.insert(), rows)
    op.drop_index('ix_fhir_links_resource', table_name='fhir_links')
    op.drop_index('ix_fhir_links_target', table_name='fhir_links')
    op.drop_table('fhir_links')
    op.drop_index('ix_fhir_identifiers_resource', table_name='fhir_identifiers')
    op.drop_index('ix_fhir_identifiers_value', table_name='fhir_identifiers')
    op.drop_table('fhir_identifiers')
    op.drop_table('fhir_resources')
