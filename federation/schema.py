"""Tables of the Matrix server-server transport (migration branch ``federation``).

``matrix_federation_outbox``: PDUs and EDUs waiting for one destination, in the
order they were queued (the id); a row leaves only when the destination
answered 200 to the transaction that carried it, so a restart or an outage
loses nothing.  ``matrix_federation_destinations``: per destination the backoff
state and the last success, for ``schulhof federation status``.
``matrix_federation_received_txns``: the answer to each transaction another
server sent us, so a retried transaction id is answered the same way and its
events are not processed twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base, UtcDateTime

SERVER_NAME = 255


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FederationOutboxRow(Base):
    __tablename__ = "matrix_federation_outbox"
    __table_args__ = (Index("ix_matrix_federation_outbox_destination", "destination", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(SERVER_NAME))
    kind: Mapped[str] = mapped_column(String(3))  # "pdu" or "edu"
    body: Mapped[str] = mapped_column(Text)  # the PDU or EDU as JSON
    queued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)


class FederationDestinationRow(Base):
    __tablename__ = "matrix_federation_destinations"

    destination: Mapped[str] = mapped_column(String(SERVER_NAME), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class FederationReceivedTxnRow(Base):
    __tablename__ = "matrix_federation_received_txns"

    origin: Mapped[str] = mapped_column(String(SERVER_NAME), primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    response: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
