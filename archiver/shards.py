"""Runs the capture stage on every core: worker processes, each owning a share of the hosts.

A run's distinct URLs are split by host (the fetcher's per-host key, hashed): every URL of a
host goes to the same worker, so the politeness limits (``per_host``, ``host_interval``,
``host_give_up``) hold as in one process, and no URL is ever given to two workers. Each worker
has its own event loop, fetcher, WARC writer (its own files) and browser stage, and a
read-only view of the catalog for revisit records. The run's own process stays the only
catalog writer (``archiver.recording``).

Workers are forked from the run's process when fetching starts: they begin at once, with
every module already imported, and share the run's memory pages until they write to them
(``gc.freeze``, until the workers end, keeps the collector of every process from touching
the objects they share). A worker never
returns into the run's code: it serves, then leaves with ``os._exit``.

The two sides speak over a socket pair: length-prefixed pickles of message lists, batched
per event-loop turn. The parent sends ``capture``/``cancel``/``probes``/``close``; a worker
answers with ``attempt`` (as each request attempt ends: the network watch needs them early),
``done`` (a ``Finished`` record), ``failed``/``gave_up`` and ``closed``. Workers die with the
run: Linux kills them when the parent dies (``PR_SET_PDEATHSIG``), and a worker whose socket
closes stops at once.

``LocalShard`` is the same interface in the run's own process, for small runs and one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import pickle
import re
import signal
import socket
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import urlsplit

from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.models import Target

if TYPE_CHECKING:
    from archiver.capturing import CaptureStage, Finished
    from archiver.catalog import Catalog
    from archiver.fetch import Attempt

log = logging.getLogger(__name__)

#: A run of fewer URLs than this is captured in its own process by default: starting a
#: worker (a fresh interpreter and its imports) costs more than it saves.
MIN_URLS_FOR_WORKERS = 256
_HEADER = struct.Struct(">I")
#: Bytes a worker may have queued for the run's process before it waits for them to go.
_HIGH_WATER = 4 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


class ShardLost(ArchiverError):
    """A worker process ended before finishing its URLs (killed, out of memory); its URLs
    in flight are not fetched this run."""


class Shards(Protocol):
    """Where targets are captured: ``capture(target)`` returns its ``Finished`` record;
    ``notes`` are the browser stage's, once closed."""

    @property
    def notes(self) -> list[str]: ...

    async def capture(self, target: Target) -> Finished: ...

    def start_probes(self, urls: Sequence[str]) -> None: ...


def worker_count(settings: Settings, urls: int) -> int:
    """How many worker processes a run of ``urls`` URLs uses; 0 means none (the run's own
    process captures). ``[fetch] workers`` 0 (the default) means one per core for runs of
    ``MIN_URLS_FOR_WORKERS`` URLs or more; 1 means none."""
    wanted = settings.fetch.workers
    if wanted == 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        wanted = cores if urls >= MIN_URLS_FOR_WORKERS else 1
    wanted = min(wanted, max(urls, 1))
    return wanted if wanted > 1 else 0


def shard_of(url: str, shards: int) -> int:
    """The worker that owns ``url``'s host (stable across runs and processes)."""
    return zlib.crc32(host_key(url).encode("utf-8", "surrogatepass")) % shards


_DEFAULT_PORTS = {"http": 80, "https": 443}
# The common spelling, read without urlsplit: http(s) in lower case, a host of letters,
# digits, dots and hyphens, an optional port of digits, then the path, query, fragment or
# the end. Anything else (user info, IPv6, percent signs, tabs, other schemes) takes
# urlsplit's way; both give the same key (tests/test_shards.py compares them).
_PLAIN = re.compile(r"(https?)://([A-Za-z0-9.\-]+)(?::([0-9]*))?(?=[/?#]|\Z)")


def host_key(url: str) -> str:
    """``url``'s host and port as sharding sees them: lower case, no user info, the
    scheme's default port left out; ``""`` for a URL that does not parse. Cheaper than the
    fetcher's own parse (it runs twice per URL in the run's process), and equal for every
    spelling of a host that matters to politeness."""
    plain = _PLAIN.match(url)
    if plain is not None:
        scheme, host, digits = plain.groups()
        if not digits:
            return host.lower()
        port = int(digits)
        if port == _DEFAULT_PORTS[scheme]:
            return host.lower()
        if port <= 65535:
            return f"{host.lower()}:{port}"
    return _host_key_parsed(url)


def _host_key_parsed(url: str) -> str:
    """``host_key`` by ``urlsplit``, for every spelling."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def _share(total: int, shards: int) -> int:
    return max(1, -(-total // shards))


# ── in this process ──────────────────────────────────────────────────────────


class LocalShard:
    """The capture stage in the run's own process."""

    def __init__(self, stage: CaptureStage) -> None:
        self.stage = stage

    @property
    def notes(self) -> list[str]:
        return self.stage.browsing.notes

    async def capture(self, target: Target) -> Finished:
        return await self.stage.capture(target)

    def start_probes(self, urls: Sequence[str]) -> None:
        self.stage.start_probes(urls)


@contextlib.asynccontextmanager
async def open_shards(settings: Settings, catalog: Catalog, run_id: int, workers: int, *,
                      on_attempt: Callable[[Attempt], None],
                      compare_text: bool = False) -> AsyncIterator[Shards]:
    """``workers`` worker processes (``ProcessShards``), or with 0 the capture stage in
    this process (``LocalShard``); closed, with their WARC files finished, on exit. With
    ``compare_text``, each page is compared with its URL's previous capture
    (``Finished.similarity``)."""
    from archiver.capturing import open_stage

    if workers <= 0:
        async with open_stage(settings, run_id, find_payload=catalog.find_payload,
                              on_attempt=on_attempt,
                              previous=catalog.comparable_text if compare_text else None,
                              ) as stage:
            yield LocalShard(stage)
        return
    pool = ProcessShards(settings, catalog.dir, run_id, workers, on_attempt=on_attempt,
                         compare_text=compare_text)
    try:
        await pool.start()
        yield pool
    finally:
        await pool.close()


# ── in worker processes ──────────────────────────────────────────────────────


def _frame(messages: list[tuple[Any, ...]]) -> bytes:
    data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> list[tuple[Any, ...]] | None:
    """The next message list, or ``None`` at the end of the stream (the peer closed it,
    or a write to the peer failed because it is gone: the stream then ends in that error)."""
    try:
        head = await reader.readexactly(_HEADER.size)
        return pickle.loads(await reader.readexactly(_HEADER.unpack(head)[0]))  # type: ignore[no-any-return]
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class _Outbox:
    """Messages to one peer, sent as one frame per event-loop turn."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: list[tuple[Any, ...]] = []
        self.closed = False

    def put(self, *message: Any) -> None:
        if self.closed:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(message)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self.closed:
            self._write(_frame(pending))


@dataclass
class _Worker:
    index: int
    pid: int
    writer: asyncio.StreamWriter
    outbox: _Outbox
    reader: asyncio.StreamReader
    waiting: dict[int, asyncio.Future[Finished]] = field(default_factory=dict)
    closed: asyncio.Future[list[str]] | None = None
    listening: asyncio.Task[None] | None = None
    lost: str | None = None
    # The error that stopped the worker's capture stage (its WARC file could not be
    # opened or closed), raised in the run's process like the in-process stage's.
    error: BaseException | None = None
    exit_code: int | None = None

    async def wait(self) -> int:
        """The worker's exit status, once it has ended (reaped here)."""
        while self.exit_code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = -1
                break
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                break
            await asyncio.sleep(0.01)
        return self.exit_code


class ProcessShards:
    """``workers`` worker processes sharing the run's hosts (see the module's docstring).

    ``concurrency`` and the browser's ``pages`` are split between the workers; ``per_host``
    holds as it is, each host being one worker's. A worker that dies loses only its URLs in
    flight (``ShardLost``: not fetched this run); a worker's ``ArchiveError`` (disk full)
    is raised here for the URL that met it.
    """

    def __init__(self, settings: Settings, archive_dir: os.PathLike[str] | str, run_id: int,
                 workers: int, *, on_attempt: Callable[[Attempt], None],
                 compare_text: bool = False) -> None:
        self.settings = settings
        self.compare_text = compare_text
        self.archive_dir = archive_dir
        self.run_id = run_id
        self.count = workers
        self.on_attempt = on_attempt
        self.notes: list[str] = []
        self._workers: list[_Worker] = []
        self._keys = 0
        self._frozen = False

    async def start(self) -> None:
        from archiver import capturing, warc
        from archiver.fetch import preload, shared_ssl_context

        init = (self.settings, self.run_id, str(self.archive_dir),
                _share(self.settings.fetch.concurrency, self.count),
                _share(self.settings.browser.pages, self.count), self.compare_text)
        ours: list[socket.socket] = []
        warc.preload()  # imported once here rather than once in every worker
        capturing.preload()
        shared_ssl_context()  # the CA store loaded once, its pages shared with the workers
        preload(self.settings.fetch)  # the transport's modules too
        # Objects that exist now are not collected, in a worker or in the run's process, until
        # the workers are gone: a collection writes into every object it scans, and each page
        # it writes to is copied out of those the processes share. (Unfrozen in the run's
        # process as soon as the workers started, its first full collection copied most of
        # them: 10-15 MB.)
        gc.freeze()
        self._frozen = True
        _give_back_freed()  # before the fork: what the workers would inherit and never use
        started = False
        try:
            for index in range(self.count):
                mine, theirs = socket.socketpair()
                pid = os.fork()
                if pid == 0:  # the worker: never returns
                    _child(theirs, init, [mine, *ours])
                theirs.close()
                ours.append(mine)
                reader, writer = await asyncio.open_connection(sock=mine)
                worker = _Worker(index, pid, writer, _Outbox(writer.write), reader)
                worker.closed = asyncio.get_running_loop().create_future()
                worker.listening = asyncio.ensure_future(self._listen(worker))
                self._workers.append(worker)
            started = True
        finally:
            if not started:
                self._unfreeze()

    def _unfreeze(self) -> None:
        if self._frozen:
            self._frozen = False
            gc.unfreeze()

    async def capture(self, target: Target) -> Finished:
        worker = self._workers[shard_of(target.url, self.count)]
        if worker.error is not None:
            raise worker.error
        if worker.lost is not None:
            raise ShardLost(worker.lost)
        self._keys += 1
        key = self._keys
        future: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        worker.waiting[key] = future
        worker.outbox.put("capture", key, target)
        try:
            finished = await future
            # The record holds the worker's copy of the target; the run keeps its own (the
            # URL is a key of the run's results until the end), not a second one per URL.
            # The record was just unpickled and nothing else holds it: set in place, not
            # copied (``dataclasses.replace`` is most of the intake's cost per URL).
            object.__setattr__(finished, "target", target)
            return finished
        except asyncio.CancelledError:
            if worker.waiting.pop(key, None) is not None:
                worker.outbox.put("cancel", key)
            raise
        finally:
            worker.waiting.pop(key, None)

    def start_probes(self, urls: Sequence[str]) -> None:
        shares: list[list[str]] = [[] for _ in self._workers]
        for url in urls:
            shares[shard_of(url, self.count)].append(url)
        for worker, share in zip(self._workers, shares, strict=True):
            if share:
                worker.outbox.put("probes", share)

    async def _listen(self, worker: _Worker) -> None:
        from archiver.fetch import HostGaveUp

        while (messages := await _read_frame(worker.reader)) is not None:
            for message in messages:
                kind = message[0]
                if kind == "attempt":
                    self.on_attempt(message[1])
                elif kind == "done":
                    future = worker.waiting.pop(message[1], None)
                    if future is not None and not future.done():
                        future.set_result(message[2])
                elif kind in ("failed", "gave_up"):
                    future = worker.waiting.pop(message[1], None)
                    error = HostGaveUp(*message[2]) if kind == "gave_up" else message[2]
                    if future is not None and not future.done():
                        future.set_exception(error)
                elif kind == "closed" and worker.closed is not None \
                        and not worker.closed.done():
                    worker.error = worker.error or message[2]
                    worker.closed.set_result(message[1])
        # The worker's socket closed: it ended, on its own or killed.
        worker.outbox.closed = True  # nothing more to send it
        code = await worker.wait()
        if worker.closed is not None and not worker.closed.done():
            worker.lost = f"not fetched: worker process {worker.index + 1} ended (exit {code})"
            worker.closed.set_result([])
        for future in worker.waiting.values():
            if not future.done():
                future.set_exception(worker.error
                                     or ShardLost(worker.lost or "worker process ended"))
        worker.waiting.clear()

    async def close(self) -> None:
        """Ask every worker to finish (close its WARC file) and wait for it; a worker that
        does not stop within a minute is killed."""
        for worker in self._workers:
            worker.outbox.put("close")
        for worker in self._workers:
            try:
                assert worker.closed is not None
                self.notes.extend(await asyncio.wait_for(asyncio.shield(worker.closed), 60))
            except (TimeoutError, asyncio.CancelledError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            finally:
                worker.outbox.closed = True
                worker.writer.close()
        for worker in self._workers:
            await worker.wait()
            if worker.listening is not None:
                await asyncio.gather(worker.listening, return_exceptions=True)
        self._unfreeze()  # no process shares the run's pages any more
        for worker in self._workers:
            if worker.error is not None:  # a WARC file that could not be finished
                raise worker.error


def _give_back_freed() -> None:
    """Return the C allocator's free pages to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Freed memory it keeps is inherited by every worker, resident, then copied by
    whichever process writes into it first: about 20 MB just before the fork of a run of
    100,000 URLs (what reading the document and the catalog's answers left)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


# ── the worker process itself ────────────────────────────────────────────────


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when the run's process dies, and stop at once if it
    died before the request was made."""
    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child(sock: socket.socket, init: tuple[Any, ...], inherited: list[socket.socket]) -> NoReturn:
    """The worker, just forked: serve on ``sock`` until told to close, then leave."""
    code = 0
    try:
        _die_with_parent(os.getppid())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        for other in inherited:  # the run's ends of this and earlier workers' sockets
            other.close()
        profile_dir = os.environ.get("ARCHIVER_PROFILE_WORKERS")
        if profile_dir:  # a cProfile of each worker, for finding where its time goes
            import cProfile

            with cProfile.Profile() as profile:
                asyncio.run(_serve(sock, init))
            profile.dump_stats(os.path.join(profile_dir, f"worker-{os.getpid()}.prof"))
        else:
            asyncio.run(_serve(sock, init))
    except BaseException:  # nothing may unwind into the run's code
        log.exception("worker process failed")
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


async def _serve(sock: socket.socket, init: tuple[Any, ...]) -> None:
    from archiver.capturing import open_stage
    from archiver.catalog import Catalog
    from archiver.fetch import HostGaveUp

    settings, run_id, archive_dir, concurrency, pages, compare_text = init
    reader, writer = await asyncio.open_connection(sock=sock)
    outbox = _Outbox(writer.write)
    catalog = Catalog.open_reader(archive_dir)
    tasks: dict[int, asyncio.Task[None]] = {}

    async def capture(stage: CaptureStage, key: int, target: Target) -> None:
        try:
            outbox.put("done", key, await stage.capture(target))
        except HostGaveUp as exc:
            outbox.put("gave_up", key, (exc.host, exc.timeouts))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            try:
                pickle.dumps(exc)
            except Exception:
                exc = RuntimeError(f"worker: {exc!r}")
            outbox.put("failed", key, exc)
        finally:
            tasks.pop(key, None)
        if writer.transport.get_write_buffer_size() > _HIGH_WATER:
            await writer.drain()  # the run's process is behind: wait for it

    notes: list[str] = []
    error: ArchiverError | None = None
    try:
        try:
            async with open_stage(settings, run_id, find_payload=catalog.find_payload,
                                  on_attempt=lambda a: outbox.put("attempt", a),
                                  concurrency=concurrency, browser_pages=pages,
                                  recover=False,
                                  previous=catalog.comparable_text if compare_text else None,
                                  ) as stage:
                while (messages := await _read_frame(reader)) is not None:
                    closing = False
                    for message in messages:
                        kind = message[0]
                        if kind == "capture":
                            tasks[message[1]] = asyncio.ensure_future(
                                capture(stage, message[1], message[2]))
                        elif kind == "cancel":
                            task = tasks.pop(message[1], None)
                            if task is not None:
                                task.cancel()
                        elif kind == "probes":
                            stage.start_probes(message[1])
                        elif kind == "close":
                            closing = True
                    if closing:
                        break
                else:
                    # The socket closed without "close": the run is gone; stop now.
                    for task in tasks.values():
                        task.cancel()
                    return
                await asyncio.gather(*tasks.values(), return_exceptions=True)
                notes = stage.browsing.notes
        except ArchiverError as exc:
            # The WARC file could not be created or finished: the run's process raises it
            # (for the URLs still waiting, and once every worker has closed), as it does
            # for its own stage; no traceback here.
            error = exc
        outbox.put("closed", notes, error)
        outbox.flush()
        await writer.drain()
        writer.close()
    finally:
        catalog.close()
