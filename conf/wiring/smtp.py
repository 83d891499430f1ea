"""Wiring of the smtp service(s) into a School (see conf.wiring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conf.app import School, Service


def build(school: School) -> list[Service]:
    return []
