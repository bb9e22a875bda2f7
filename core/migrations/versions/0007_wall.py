"""wall: a partial index of the late 处置完成 events

The wall's 按期结案率 asks, for each case 结案 in the last 30 days, whether any of its 处置完成 was late. On
100,000 cases (``python -m bench wall``) PostgreSQL answered it from the events of each case, 90 ms of the wall's
time; this index holds only the late completions (a few per cent of the events), so the question is an index-only
probe and the statement takes 25 ms.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATE = sa.text("action = 'complete' AND on_time IS false")


def upgrade() -> None:
    op.create_index('ix_case_event_late', 'case_event', ['case_id'], unique=False,
                    postgresql_where=LATE, sqlite_where=LATE)


def downgrade() -> None:
    op.drop_index('ix_case_event_late', table_name='case_event')
