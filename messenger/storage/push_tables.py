"""The table of users' notifications (migration ``push_0001``).

``matrix_push_actions``: one row per event that notifies a user, written with
the event (spec: Client-Server API 13.13 "Push Notifications": the actions the
user's push rules gave it), in the thread it counts in (spec 11.6.2.3).  A row
is *unread* while no read receipt of the user reaches it; the unread rows make
/sync's ``unread_notifications`` and are what /notifications lists.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base

ID = 255


class PushActionRow(Base):
    __tablename__ = "matrix_push_actions"

    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    stream_ordering: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID))
    event_id: Mapped[str] = mapped_column(String(ID))
    thread_id: Mapped[str] = mapped_column(String(ID))  # the root's event id, or "main"
    highlight: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_matrix_push_actions_room", "user_id", "room_id", "stream_ordering"),
    )
