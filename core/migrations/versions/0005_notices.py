"""notices: where each department's notices go (webhook, e-mail, 企业微信, 钉钉, Telegram); a report's chosen 事项

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ('webhook_url', 'webhook_secret', 'email', 'wecom_url', 'dingtalk_url', 'dingtalk_secret', 'telegram_chat_id')


def upgrade() -> None:
    with op.batch_alter_table('department', schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chosen_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.drop_column('chosen_code')
    with op.batch_alter_table('department', schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
