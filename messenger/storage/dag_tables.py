"""Tables of the room DAG across servers (migration ``matrix_0008``).

``matrix_forward_extremities``: per room the events nothing points at yet (the
``prev_events`` of the room's next event; Server-Server API "Room DAG").
``matrix_state_groups``: the room state after an event, as a delta on an
earlier group (a full map every ``FULL_EVERY`` steps), named by the events'
``state_group`` column; rooms with members on one server only never need it
(their graph is linear and the state at a stream position says the same).
``matrix_outlier_events``: events of a room that are not in its timeline:
auth chains handed over by a join, events refused by the auth rules
(``rejected``) and events that failed against the current state
(``soft_failed``), kept so that later events can name them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base

ID = 255


class ForwardExtremityRow(Base):
    __tablename__ = "matrix_forward_extremities"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID), primary_key=True)


class StateGroupRow(Base):
    __tablename__ = "matrix_state_groups"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), index=True)
    # None: ``delta`` is the full state map; else the changes on that group.
    prev_group: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0)  # deltas back to a full map
    delta: Mapped[str] = mapped_column(Text)  # JSON [[type, state_key, event_id], ...]


class OutlierEventRow(Base):
    __tablename__ = "matrix_outlier_events"
    __table_args__ = (Index("ix_matrix_outlier_events_room", "room_id"),)

    event_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID))
    # "outlier" (auth chain or state we were given), "rejected", "soft_failed".
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    json: Mapped[str] = mapped_column(Text)
