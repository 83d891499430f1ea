"""A ZIP archive written by a thread of its own, fed from the event loop.

The export (``conf.admin.export``) reads pages from the database on the event
loop and hands each page to this writer; compressing, encoding (JSON, mbox,
HTML) and writing happen in one worker thread, in the order they were handed
over.  The loop stays free for other people's requests while a big account is
exported (issue 17: the admin button and ``/datenauskunft`` run inside
``serve``), and the next page is read while the last one is compressed.
At most ``depth`` steps wait for the thread, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import collections
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, Any


class ThreadedArchive:
    """``async with ThreadedArchive(out) as zw: await zw.run(step, ...)``: each step
    is called in the worker thread as ``step(archive, *args)``, one after the
    other.  After a failing step the later ones are skipped and the error is
    raised on the loop (from the next ``run`` or at the end)."""

    def __init__(self, out: IO[bytes], *, depth: int = 2) -> None:
        self._out = out
        self._depth = depth
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
        self._pending: collections.deque[asyncio.Future[None]] = collections.deque()
        self._archive: zipfile.ZipFile | None = None
        self._failed: BaseException | None = None

    async def __aenter__(self) -> ThreadedArchive:
        await self.run(self._open)
        return self

    def _open(self, _: zipfile.ZipFile | None) -> None:
        self._archive = zipfile.ZipFile(self._out, "w", compression=zipfile.ZIP_DEFLATED,
                                        compresslevel=1, allowZip64=True)

    def _step(self, step: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self._failed is not None:
            return
        try:
            step(self._archive, *args)
        except BaseException as error:
            self._failed = error
            raise

    async def run(self, step: Callable[..., None], *args: Any) -> None:
        """Queue ``step(archive, *args)`` for the thread; wait only while ``depth``
        steps are queued already."""
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._executor, self._step, step, args))
        while len(self._pending) > self._depth:
            await self._pending.popleft()

    async def _drain(self) -> None:
        while self._pending:
            await self._pending.popleft()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                await self._drain()
                await self.run(self._close)
                await self._drain()
        finally:
            # On an error (or a cancelled request) the queued steps are skipped; the
            # thread finishes its current one before the caller closes ``out``.
            if self._failed is None and kind is not None:
                self._failed = error or kind()
            for waiting in self._pending:  # their errors are the one raised already
                waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.shield(asyncio.to_thread(self._executor.shutdown, wait=True))

    def _close(self, archive: zipfile.ZipFile | None) -> None:
        if archive is not None:
            archive.close()  # the central directory
