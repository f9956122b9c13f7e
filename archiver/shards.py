"""Runs the capture stage on every core: worker processes, each owning a share of the hosts.

A run's distinct URLs are split by host (the fetcher's per-host key, hashed): every URL of a
host goes to the same worker, so the politeness limits (``per_host``, ``host_interval``,
``host_give_up``) hold as in one process, and no URL is ever given to two workers. Each worker
has its own event loop, fetcher, WARC writer (its own files) and browser stage, and a
read-only view of the catalog for revisit records. The run's own process stays the only
catalog writer (``archiver.recording``).

Workers start with every module they need already imported. On Linux a fork server
(``ForkServer``, started with the run by ``forking_ahead``) imports them on another core
while the run's process reads its documents and the catalog, and forks the workers when
fetching starts; the server then leaves, and its workers become the run's own children (the
run's process is their "subreaper" for that moment), reaped and watched as before.
Elsewhere, or without a server, the workers are forked from the run's process itself, which
imports their modules first. Either way the workers share the pages of the process they were
forked from until they write to them (``gc.freeze`` keeps the collector from touching the
objects they share). A worker never returns into the run's code: it serves, then leaves
with ``os._exit``.

The two sides speak over a socket pair: length-prefixed pickles of message lists, batched
per event-loop turn. The parent sends ``shard`` (the worker's number and the count, first),
``capture``/``cancel``/``probes``/``close``; a worker answers with ``attempt`` (as each
request attempt ends: the network watch needs them early), ``done`` (a ``Finished`` record,
without what only the worker reads: ``_for_intake``), ``failed``/``gave_up`` and ``closed``.

A redirect can lead a worker to a host another worker owns. Its requests there take turns
of the owner's gate (``fetch.GateLeases``), relayed by the run's process: the worker asks
``lease`` (its key, the owner, the host), the owner takes a turn of its gate as for a request
of its own and answers ``granted`` (or ``lease_gave_up``: the host was given up), held until
the worker's ``release``; the worker's ``outcome`` of each request there is counted by the
owner's gate as its own (``host_give_up``). The run's process forwards each message,
remembers the leases it relayed, and when a worker ends, releases those it held and answers
``lease_lost`` for those it was asked: the asking worker then spaces its requests itself. A
worker told to ``close`` still reads its messages until its captures end (they may wait for
another worker's turns, or that worker for this one's).

Workers die with the run: Linux kills them when the parent dies (``PR_SET_PDEATHSIG``), and
a worker whose socket closes stops at once.

``LocalShard`` is the same interface in the run's own process, for small runs and one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import ctypes
import ctypes.util
import functools
import gc
import importlib
import io
import logging
import os
import pickle
import re
import select
import signal
import socket
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import urlsplit

from archiver import collector
from archiver.config import FetchSettings, Settings
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
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
#: A compressed source smaller than this cannot cite ``MIN_URLS_FOR_WORKERS`` URLs: no fork
#: server is started for it (it would import the workers' modules for nothing); a text
#: source is judged by the URLs it may spell.
_SMALL_SOURCES = 4096
_WINDOW = 64 * 1024


#: The messages of gate leases, relayed by the run's process (see the module's docstring).
_LEASE_MESSAGES = frozenset({"lease", "release", "outcome", "granted", "lease_gave_up"})


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
    if not host.isascii():
        host = _idna(host)
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def _idna(host: str) -> str:
    """``host``, a name in another script, in its IDNA (``xn--``) spelling, as the fetcher
    (httpx) encodes it: the two spellings are one host, and one worker must own both.
    Unchanged where IDNA refuses it (the fetcher refuses the URL then too)."""
    import idna

    try:
        return str(idna.encode(host).decode("ascii"))
    except (idna.IDNAError, UnicodeError, ValueError):
        return host


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
                      compare_text: bool = False, reread: bool = False, tls: bool = True,
                      ) -> AsyncIterator[Shards]:
    """``workers`` worker processes (``ProcessShards``), or with 0 the capture stage in
    this process (``LocalShard``); closed, with their WARC files finished, on exit. With
    ``compare_text``, each page is compared with its URL's previous capture
    (``Finished.similarity``). With ``reread`` or ``compare_text`` (URLs captured before
    are fetched again), a payload that is its URL's previous capture's is not read again
    where that reading was kept (``capturing.PageMemo``). ``tls`` false says that no
    target is an https URL: the workers are then forked without what only https needs, if
    it is not imported yet (``capturing.preload_tls``; a redirect to https imports it in
    the worker that meets it)."""
    from archiver.capturing import open_stage

    if workers <= 0:
        drop_fork_server()  # nothing to fork
        async with open_stage(settings, run_id, find_payload=catalog.find_payload,
                              on_attempt=on_attempt,
                              previous=catalog.previous_read
                              if compare_text or reread else None,
                              compare=compare_text) as stage:
            yield LocalShard(stage)
        return
    pool = ProcessShards(settings, catalog.dir, run_id, workers, on_attempt=on_attempt,
                         compare_text=compare_text, reread=reread, tls=tls)
    try:
        await pool.start()
        yield pool
    finally:
        await pool.close()


# ── in worker processes ──────────────────────────────────────────────────────


def _frame(messages: list[tuple[Any, ...]]) -> bytes:
    data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _frame_for_run(messages: list[tuple[Any, ...]]) -> bytes:
    """``_frame`` of a worker's messages, its ``Finished`` records without what only the
    worker reads (``_for_intake``)."""
    out = io.BytesIO()
    out.write(_HEADER.pack(0))
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _for_intake()
    pickler.dump(messages)
    data = out.getbuffer()
    _HEADER.pack_into(data, 0, len(data) - _HEADER.size)
    return bytes(data)


@functools.cache
def _for_intake() -> dict[type, Any]:
    """How a worker pickles a ``Finished`` record for the run's process: as the default
    pickling does (the same opcodes, the same objects unpickled), but with no ``target`` (the
    run's process sets its own, ``ProcessShards.capture``) and its hops without the headers,
    server address, TLS session and record digest that the worker's verdict and provenance
    record were made from. The run's process records none of them; they were most of its
    unpickling per URL."""
    from archiver.capturing import Finished
    from archiver.models import Hop

    newobj = copyreg.__newobj__  # type: ignore[attr-defined]

    def finished(record: Finished) -> tuple[Any, ...]:
        return newobj, (Finished,), {**record.__dict__, "target": None}

    def hop(record: Hop) -> tuple[Any, ...]:
        return newobj, (Hop,), {**record.__dict__, **_HOP_INTAKE}

    return {**copyreg.dispatch_table, Finished: finished, Hop: hop}


# The fields of a ``Hop`` that cross to the run's process as their defaults.
_HOP_INTAKE: dict[str, Any] = {"headers": (), "remote_ip": None, "tls": None,
                               "request_headers": (), "record_sha256": None}


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

    def __init__(self, write: Callable[[bytes], None],
                 frame: Callable[[list[tuple[Any, ...]]], bytes] = _frame) -> None:
        self._write = write
        self._frame = frame
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
            self._write(self._frame(pending))


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
    holds as it is, each host being one worker's (a redirect into another worker's host
    takes turns of that worker's gate: ``_relay``). A worker that dies loses only its URLs in
    flight (``ShardLost``: not fetched this run); a worker's ``ArchiveError`` (disk full)
    is raised here for the URL that met it.
    """

    def __init__(self, settings: Settings, archive_dir: os.PathLike[str] | str, run_id: int,
                 workers: int, *, on_attempt: Callable[[Attempt], None],
                 compare_text: bool = False, reread: bool = False, tls: bool = True,
                 ) -> None:
        self.settings = settings
        self.compare_text = compare_text
        self.reread = reread
        self.tls = tls
        self.archive_dir = archive_dir
        self.run_id = run_id
        self.count = workers
        self.on_attempt = on_attempt
        self.notes: list[str] = []
        self._workers: list[_Worker] = []
        self._keys = 0
        self._frozen = False
        # The gate leases relayed and not yet released: (asking worker, its key) → owner.
        self._leases: dict[tuple[int, int], int] = {}

    async def start(self) -> None:
        init = (self.settings, self.run_id, str(self.archive_dir),
                _share(self.settings.fetch.concurrency, self.count),
                _share(self.settings.browser.pages, self.count), self.compare_text,
                self.reread)
        server = _take_server()
        if server is not None and server.fetch != self.settings.fetch:
            server.close()  # not prepared for these settings
            server = None
        if server is None:
            # imported here, once, not once in every worker
            _preload(self.settings.fetch, tls=self.tls)
        # Objects that exist now are not collected, in a worker or in the run's process, until
        # the workers are gone: a collection writes into every object it scans, and each page
        # it writes to is copied out of those the processes share. (Unfrozen in the run's
        # process as soon as the workers started, its first full collection copied most of
        # them: 10-15 MB.) With a fork server the workers share the server's pages, frozen
        # there; the run's process freezes its own all the same (its full collections then
        # pass over the run's documents and modules no more).
        gc.freeze()
        self._frozen = True
        _give_back_freed()  # before the fork: what the workers would inherit and never use
        started = False
        try:
            pairs = [socket.socketpair() for _ in range(self.count)]
            pids = server.fork_workers(init, [theirs for _, theirs in pairs], tls=self.tls) \
                if server is not None else None
            for _, theirs in pairs:
                theirs.close()
            if pids is None:  # no server (or it failed): fork them here
                for mine, _ in pairs:
                    mine.close()
                if server is not None:
                    _preload(self.settings.fetch, tls=self.tls)
                forked = self._fork_here(init)
            else:
                forked = list(zip(pids, [mine for mine, _ in pairs], strict=True))
            for index, (pid, mine) in enumerate(forked):
                reader, writer = await asyncio.open_connection(sock=mine)
                worker = _Worker(index, pid, writer, _Outbox(writer.write), reader)
                worker.outbox.put("shard", index, self.count)
                worker.closed = asyncio.get_running_loop().create_future()
                worker.listening = asyncio.ensure_future(self._listen(worker))
                self._workers.append(worker)
            started = True
        finally:
            if not started:
                self._unfreeze()

    def _fork_here(self, init: tuple[Any, ...]) -> list[tuple[int, socket.socket]]:
        """Fork the workers from this process: each worker's pid and this end of its socket."""
        ours: list[socket.socket] = []
        pids = []
        parent = os.getpid()
        for _ in range(self.count):
            mine, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                _child(theirs, init, [mine, *ours], parent)
            theirs.close()
            ours.append(mine)
            pids.append(pid)
        return list(zip(pids, ours, strict=True))

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
                elif kind in _LEASE_MESSAGES:
                    self._relay(worker, message)
                elif kind == "closed" and worker.closed is not None \
                        and not worker.closed.done():
                    worker.error = worker.error or message[2]
                    worker.closed.set_result(message[1])
        # The worker's socket closed: it ended, on its own or killed.
        worker.outbox.closed = True  # nothing more to send it
        self._forget_leases(worker.index)
        code = await worker.wait()
        if worker.closed is not None and not worker.closed.done():
            worker.lost = f"not fetched: worker process {worker.index + 1} ended (exit {code})"
            worker.closed.set_result([])
        for future in worker.waiting.values():
            if not future.done():
                future.set_exception(worker.error
                                     or ShardLost(worker.lost or "worker process ended"))
        worker.waiting.clear()

    def _relay(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        """Pass a gate lease message on (see the module's docstring)."""
        kind = message[0]
        if kind == "lease":  # from the asking worker: (key, owner, host)
            _, key, owner, host = message
            if self._workers[owner].outbox.closed:
                worker.outbox.put("lease_lost", key)
                return
            self._leases[(worker.index, key)] = owner
            self._workers[owner].outbox.put("lease", worker.index, key, host)
        elif kind == "release":  # from the asking worker: (key, owner)
            _, key, owner = message
            if self._leases.pop((worker.index, key), None) is not None:
                self._workers[owner].outbox.put("release", worker.index, key)
        elif kind == "outcome":  # from the asking worker: (owner, host, kind, url, counts)
            self._workers[message[1]].outbox.put("outcome", *message[2:])
        else:  # from the owner: granted (asker, key) or lease_gave_up (asker, key, why)
            asker, key = message[1], message[2]
            if (asker, key) not in self._leases:
                return  # released, or its worker has ended, before the answer came
            if self._workers[asker].outbox.closed:
                self._leases.pop((asker, key))
                worker.outbox.put("release", asker, key)
                return
            if kind == "lease_gave_up":
                self._leases.pop((asker, key))
            self._workers[asker].outbox.put(kind, key, *message[3:])

    def _forget_leases(self, ended: int) -> None:
        """A worker has ended: give back the leases it held or asked for, and tell the
        workers waiting for one of its hosts' turns that they will not come."""
        for (asker, key), owner in list(self._leases.items()):
            if asker == ended:
                del self._leases[(asker, key)]
                self._workers[owner].outbox.put("release", asker, key)
            elif owner == ended:
                del self._leases[(asker, key)]
                self._workers[asker].outbox.put("lease_lost", key)

    async def close(self) -> None:
        """Ask every worker to finish (close its WARC file) and wait for it; a worker that
        does not stop within a minute is killed."""
        for worker in self._workers:
            worker.outbox.put("close")
        for worker in self._workers:
            try:
                assert worker.closed is not None
                async with asyncio.timeout(60):  # a scope: wait_for may drop a cancellation
                    notes = await asyncio.shield(worker.closed)
                self.notes.extend(notes)
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


# ── the fork server ──────────────────────────────────────────────────────────


def _preload(fetch: FetchSettings, *, tls: bool = True) -> None:
    """Import what a worker needs before it is forked (once, not once per worker); with
    ``tls``, what only https needs too (``capturing.preload_tls``)."""
    from archiver import capturing, warc
    from archiver.catalog import Catalog  # noqa: F401  (each worker's read-only view)
    from archiver.fetch import preload, shared_ssl_context

    warc.preload()
    capturing.preload(tls=tls)
    shared_ssl_context()  # the CA store loaded once, its pages shared with the workers
    preload(fetch, tls=tls)  # the transport's modules too


#: Seconds the run's process waits for the fork server's workers before forking them itself.
_SERVER_PATIENCE = 60.0
#: The run's fork server, from ``forking_ahead`` until ``ProcessShards.start`` takes it.
_server: ForkServer | None = None


class ForkServer:
    """A process forked at the start of a run, before the run reads its documents: it
    imports what the capture workers need (``_preload``: some 0.3 s of CPU, the fetcher's
    module being imported before the fork), on another core while the run's process works,
    then waits (importing meanwhile what a worker may need later: ``_fork_on_request``).
    ``fork_workers`` has it fork the workers and leave; the run's process, a "child
    subreaper" (Linux) meanwhile, adopts them, so they are its children as if it had
    forked them itself (it reaps them, they die with it). Like a worker, the server ignores
    Ctrl-C (the run's to handle) and dies with the run; ``close`` ends it unused."""

    def __init__(self, pid: int, control: socket.socket, fetch: FetchSettings) -> None:
        self.pid = pid
        self.control = control
        self.fetch = fetch
        self._reaped = False

    @classmethod
    def start(cls, settings: Settings) -> ForkServer | None:
        """The server, forked now; ``None`` where workers cannot be adopted (not Linux)."""
        if not sys.platform.startswith("linux"):
            return None
        parent = os.getpid()
        mine, theirs = socket.socketpair()
        # Ctrl-C reaches the terminal's whole group: held across the fork, so that the
        # server ignores it from its first line (caught there, it would unwind the run's
        # code in the server); the run gets a held one as the fork returns.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:  # the server: never returns
                with contextlib.suppress(ValueError):
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                mine.close()
                _serve_forks(theirs, parent, settings.fetch)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        theirs.close()
        return cls(pid, mine, settings.fetch)

    def fork_workers(self, init: tuple[Any, ...], socks: Sequence[socket.socket], *,
                     tls: bool = True) -> list[int] | None:
        """Fork one worker per socket of ``socks`` (the workers' ends), made with ``init``,
        with what only https needs imported if ``tls`` (``_fork_on_request``); their pids
        once they are this process's children, or ``None`` if the server could not do it
        (it is gone then, and any worker it forked ends at once: fork here)."""
        try:
            data = pickle.dumps((init, tls), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a setting that does not pickle: fork here
            self.close()
            return None
        # A caller that is a subreaper already (a supervisor) stays one after the workers.
        was_subreaper = _is_subreaper()
        if not _prctl(_PR_SET_CHILD_SUBREAPER, 1):
            self.close()
            return None
        try:
            # A server still importing on a busy machine takes a few seconds; one that hangs
            # (forked while another thread of this process held a lock it needs) is let go.
            self.control.settimeout(_SERVER_PATIENCE)
            socket.send_fds(self.control, [_HEADER.pack(len(data)) + data],
                            [sock.fileno() for sock in socks])
            reply = _recv_exactly(self.control, _HEADER.size)
            pids: list[int] = pickle.loads(
                _recv_exactly(self.control, _HEADER.unpack(reply)[0]))
            self._reap()  # the server has left: its workers are now this process's children
        except (OSError, pickle.UnpicklingError, EOFError, struct.error):
            pids = []
        finally:
            _prctl(_PR_SET_CHILD_SUBREAPER, int(was_subreaper))
            self.close()
        if len(pids) != len(socks):
            return None
        return pids

    def _reap(self) -> None:
        if not self._reaped:
            self._reaped = True
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def close(self) -> None:
        """End the server (if it has not left) and reap it."""
        self.control.close()
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()


def _may_fork(settings: Settings, source_ids: Sequence[str] | None = None) -> bool:
    """Whether a run of ``settings`` (of its sources ``source_ids``, or all of them) may well
    capture in worker processes: a fork server is worth starting. A guess from the
    sources' bytes: for text in an ASCII-compatible encoding, an upper bound of the URLs it
    spells (a run of fewer than ``MIN_URLS_FOR_WORKERS`` uses no workers); when the guess
    is wrong, the workers are forked from the run's process as without a server."""
    if worker_count(settings, 1 << 30) == 0:
        return False
    if settings.fetch.workers > 1:
        return True
    urls = 0
    chosen = set(source_ids or ())
    for source in settings.sources:
        if chosen and source.id not in chosen:
            continue
        with contextlib.suppress(OSError):  # an unreadable source: the run reports it
            urls += _urls_spelled(source.path, MIN_URLS_FOR_WORKERS - urls)
        if urls >= MIN_URLS_FOR_WORKERS:
            return True
    return False


def _urls_spelled(path: os.PathLike[str] | str, enough: int) -> int:
    """At least as many as the URLs the text at ``path`` spells (in an ASCII-compatible
    encoding), counted until ``enough``; for a compressed file (.docx, .odt) or UTF-16
    text, ``enough`` if it has 4 KB or more (it may well), else 0."""
    with open(path, "rb") as fh:
        head = fh.read(_WINDOW)
        if head[:4] == b"PK\x03\x04" or b"\x00" in head[:4096]:
            return enough if len(head) >= _SMALL_SOURCES else 0
        count, chunk, carry = 0, head, b""
        while chunk:
            # every URL a reader finds has ":/" or "//" (mangled ones too) or a "www"; the
            # two bytes carried over count what a window's edge splits (twice, at worst)
            low = (carry + chunk).lower()
            count += low.count(b":/") + low.count(b"//") + low.count(b"www")
            if count >= enough:
                break
            carry, chunk = low[-2:], fh.read(_WINDOW)
        return count


@contextlib.contextmanager
def forking_ahead(settings: Settings, source_ids: Sequence[str] | None = None
                  ) -> Iterator[None]:
    """A run's start to its end (of the sources ``source_ids``, or all): a fork server
    (``ForkServer``) prepares the workers while the run reads its documents, when the run
    may need workers; ended unused otherwise."""
    global _server
    server = None
    if _may_fork(settings, source_ids):
        # The fetcher's module (httpx, httpcore and their own: 0.12 s of CPU) is imported
        # before the fork, once: the run's process imports it anyway before it asks for the
        # workers (its offline decisions; claim support later), and the server inherits it
        # instead of importing it again on the other core.
        import archiver.fetch  # noqa: F401

        server = ForkServer.start(settings)
    drop_fork_server()
    _server = server
    try:
        yield
    finally:
        if _server is server:
            drop_fork_server()
        elif server is not None:
            server.close()


def _fork_on_request(control: socket.socket, parent: int, fetch: FetchSettings) -> None:
    """The server's one request: fork a worker per socket received, reply their pids
    (``fetch``: the settings the server was started for, those of the run's workers).

    What a worker may need later or never (what only https needs, ``capturing.preload_tls``;
    httpcore's backend, ``fetch.HTTPCORE_BACKEND``) is imported while the server waits for
    the request, a module at a time, until the request comes; then what the request's run
    needs of it (https URLs, the settings' transport). A worker meeting the rest (a redirect
    to https, an answer only httpcore reads) imports it then."""
    from archiver import capturing
    from archiver import fetch as fetcher

    for name in (*capturing.TLS_MODULES, *fetcher.HTTPCORE_BACKEND):
        if _readable(control):
            break  # the run is ready: its workers are not kept waiting for these
        with contextlib.suppress(ImportError):  # another version may not have it
            importlib.import_module(name)
    data, fds, _flags, _address = socket.recv_fds(control, _HEADER.size, 64)
    if not data:  # the run needs no workers (it closed the socket)
        return
    data += _recv_exactly(control, _HEADER.size - len(data))
    init, tls = pickle.loads(_recv_exactly(control, _HEADER.unpack(data)[0]))
    socks = [socket.socket(fileno=fd) for fd in fds]
    if tls and not capturing.tls_preloaded():
        capturing.preload_tls()
    fetcher.preload(fetch, tls=tls)  # httpcore's backend, if the settings need it
    gc.freeze()  # see ProcessShards.start: the workers share these pages
    me = os.getpid()
    pids = []
    for index, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:  # a worker: never returns
            _child(sock, init, [control, *socks[:index], *socks[index + 1:]], parent, me)
        pids.append(pid)
    for sock in socks:
        sock.close()
    reply = pickle.dumps(pids)
    control.sendall(_HEADER.pack(len(reply)) + reply)


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (or its peer closed it), without waiting."""
    return bool(select.select([sock], [], [], 0)[0])


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the other side closed the socket")
        data += chunk
    return data


def _take_server() -> ForkServer | None:
    global _server
    server, _server = _server, None
    return server


def drop_fork_server() -> None:
    """End the run's fork server, if it has one (the run will fork no worker, or a new
    run starts)."""
    server = _take_server()
    if server is not None:
        server.close()


def _serve_forks(control: socket.socket, parent: int, fetch: FetchSettings) -> NoReturn:
    """The fork server, just forked: import, wait for the run's request, fork the workers
    it asks for, send their pids and leave."""
    def serve() -> None:
        # Only imports until the workers are forked: the collector stays paused (as the
        # run paused it when it forked this server), and each worker resumes it.
        with collector.paused():
            _preload(fetch, tls=False)  # the rest as the request allows (_fork_on_request)
            _fork_on_request(control, parent, fetch)

    _forked("fork server", parent, None, serve)


def _forked(what: str, parent: int, server: int | None, body: Callable[[], None]) -> NoReturn:
    """The life of a process forked for the run (``what``: a worker, the fork server): it
    dies with the run's process ``parent`` (see ``die_with_parent``), leaves Ctrl-C to the
    run, runs ``body`` and leaves, with exit 1 if ``body`` failed; nothing it raises
    unwinds into the run's code, which this process shares."""
    code = 0
    try:
        die_with_parent(parent, server)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        body()
    except BaseException:  # nothing may unwind into the run's code
        log.exception("%s failed", what)
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _give_back_freed() -> None:
    """Return the C allocator's free pages to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Freed memory it keeps is inherited by every worker, resident, then copied by
    whichever process writes into it first: about 20 MB just before the fork of a run of
    100,000 URLs (what reading the document and the catalog's answers left)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


# ── the worker process itself ────────────────────────────────────────────────


def _prctl(option: int, value: int) -> bool:
    """Linux's ``prctl(option, value)``; whether it was done."""
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux, or no prctl in this C library
        with contextlib.suppress(OSError, AttributeError):
            name = ctypes.util.find_library("c")
            return bool(ctypes.CDLL(name, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
        return False


def _is_subreaper() -> bool:
    """Whether this process is a child subreaper (``PR_GET_CHILD_SUBREAPER``)."""
    value = ctypes.c_int(0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value),
                                                0, 0, 0)
    return value.value != 0


def die_with_parent(parent: int, server: int | None = None) -> None:
    """Ask Linux to kill this process when the run's process (``parent``) dies, and stop
    at once if it died before the request was made. A worker forked by the fork server
    (``server``) first waits for the server to leave, which makes it the run's child."""
    if server is not None:
        while os.getppid() == server:
            time.sleep(0.0005)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child(sock: socket.socket, init: tuple[Any, ...], inherited: list[socket.socket],
           parent: int, server: int | None = None) -> NoReturn:
    """The worker, just forked: serve on ``sock`` until told to close, then leave."""

    def serve() -> None:
        # forked from a process whose start paused the collector: a worker's own event
        # loop makes cycles from its first capture
        collector.resume()
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

    _forked("worker process", parent, server, serve)


class _Leases:
    """A worker's ``fetch.GateLeases``: turns of the gates of the hosts other workers own,
    asked through the run's process (see the module's docstring)."""

    def __init__(self, index: int, count: int, outbox: _Outbox) -> None:
        self._index, self._count, self._outbox = index, count, outbox
        self._keys = 0
        self._waiting: dict[int, asyncio.Future[int | None]] = {}

    def owner(self, url: str) -> int | None:
        shard = shard_of(url, self._count)
        return None if shard == self._index else shard

    async def acquire(self, owner: int, host: str) -> int | None:
        from archiver.fetch import HostGaveUp

        self._keys += 1
        key = self._keys
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        self._outbox.put("lease", key, owner, host)
        try:
            answer = await future
        except HostGaveUp:
            raise
        except BaseException:  # cancelled: the turn, granted or not yet, is not wanted
            self._waiting.pop(key, None)
            self._outbox.put("release", key, owner)
            raise
        return answer

    def release(self, owner: int, lease: int) -> None:
        self._outbox.put("release", lease, owner)

    def record(self, owner: int, host: str, kind: str, url: str, counts: bool) -> None:
        self._outbox.put("outcome", owner, host, kind, url, counts)

    def answer(self, kind: str, key: int, *detail: Any) -> None:
        """The run's process relayed the owner's answer to lease ``key``."""
        from archiver.fetch import HostGaveUp

        future = self._waiting.pop(key, None)
        if future is None or future.done():
            return
        if kind == "granted":
            future.set_result(key)
        elif kind == "lease_lost":
            future.set_result(None)
        else:
            future.set_exception(HostGaveUp(*detail[0]))


async def _serve(sock: socket.socket, init: tuple[Any, ...]) -> None:
    from archiver.capturing import open_stage
    from archiver.catalog import Catalog
    from archiver.fetch import HostGaveUp

    settings, run_id, archive_dir, concurrency, pages, compare_text, reread = init
    reader, writer = await asyncio.open_connection(sock=sock)
    outbox = _Outbox(writer.write, _frame_for_run)
    catalog = Catalog.open_reader(archive_dir)
    # The writer asks the catalog about the payloads of earlier runs (its own are in its
    # memory). An archive that held none when the worker started (its first run) would
    # answer "never" to a query per response written: not asked then.
    try:
        find_payload = catalog.find_payload if catalog.has_payloads() else None
    except ArchiverError:  # asked as before: each write then says what is wrong
        find_payload = catalog.find_payload
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

    leases: _Leases | None = None
    lent: dict[tuple[int, int], asyncio.Task[None]] = {}

    async def lend(stage: CaptureStage, asker: int, key: int, host: str) -> None:
        """Hold a turn of ``host``'s gate for worker ``asker`` until it releases it."""
        try:
            async with stage.fetcher.lend(host):
                outbox.put("granted", asker, key)
                await asyncio.get_running_loop().create_future()  # until cancelled
        except HostGaveUp as exc:
            outbox.put("lease_gave_up", asker, key, (exc.host, exc.timeouts))
        finally:
            lent.pop((asker, key), None)

    def handle(stage: CaptureStage, messages: list[tuple[Any, ...]]) -> bool:
        """Act on the run's process's messages; true when they say "close"."""
        nonlocal leases
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
            elif kind in ("granted", "lease_gave_up", "lease_lost"):
                if leases is not None:
                    leases.answer(kind, message[1], *message[2:])
            elif kind == "lease":
                lent[(message[1], message[2])] = asyncio.ensure_future(
                    lend(stage, message[1], message[2], message[3]))
            elif kind == "release":
                lending = lent.pop((message[1], message[2]), None)
                if lending is not None:
                    lending.cancel()
            elif kind == "outcome":
                stage.fetcher.record_lent(*message[1:])
            elif kind == "shard":
                leases = _Leases(message[1], message[2], outbox)
                stage.fetcher.leases = leases
            elif kind == "close":
                closing = True
        return closing

    notes: list[str] = []
    error: ArchiverError | None = None
    try:
        try:
            async with open_stage(settings, run_id, find_payload=find_payload,
                                  on_attempt=lambda a: outbox.put("attempt", a),
                                  concurrency=concurrency, browser_pages=pages,
                                  recover=False,
                                  previous=catalog.previous_read
                                  if compare_text or reread else None,
                                  compare=compare_text) as stage:
                while (messages := await _read_frame(reader)) is not None:
                    if handle(stage, messages):
                        break
                else:
                    # The socket closed without "close": the run is gone; stop now.
                    for task in tasks.values():
                        task.cancel()
                    return
                # Closing: this worker's captures end as they would, the messages still
                # read meanwhile. One may wait for a turn of another worker's gate, or that
                # worker for a turn of this one's (its own captures behind it): a worker
                # that stopped reading would leave them both waiting.
                finishing = asyncio.ensure_future(
                    asyncio.gather(*tasks.values(), return_exceptions=True))
                while not finishing.done():
                    reading = asyncio.ensure_future(_read_frame(reader))
                    await asyncio.wait((reading, finishing),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not reading.done():
                        reading.cancel()  # the stream is not read again
                    elif (messages := reading.result()) is not None:
                        handle(stage, messages)
                    else:  # the run is gone: stop now, as above
                        for task in tasks.values():
                            task.cancel()
                        return
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
