"""Archive answers are read within bounds: a compression bomb from the archive (or from
something posing as it) costs a few megabytes and ends as a failed lookup, not a crash.

Each run happens in a fresh Python process against a real loopback server, so the peak
resident memory it reports (``ru_maxrss``) is the lookup's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.config import RescueSettings
from archiver.fetch import decode_body
from archiver.rescue import MAX_ANSWER, Rescuer, url_variants
from tests.webserver import Reply

REPO = Path(__file__).resolve().parent.parent
# Far more than the answer cap, far less than what decoding a bomb whole would take.
PEAK_LIMIT = 64 * 2**20

_SCRIPT = r"""
import asyncio, gzip, json, os, resource, sys
from archiver.config import RescueSettings
from archiver.rescue import Rescuer
from tests.webserver import Reply, WebServer

coding, action, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])


def brotli_bomb(mib):
    # With the data and the window in a steady state, every further MiB of zeros compresses
    # to the same flushed segment, so a bomb of any size is built in milliseconds.
    import brotli
    block = b"\0" * 2**20
    compressor = brotli.Compressor(quality=1)
    parts = [compressor.compress(block) + compressor.flush() for _ in range(3)]
    assert parts[1] == parts[2]
    return parts[0] + parts[1] * (mib - 1) + compressor.finish()


def gzip_bomb(mib):
    member = gzip.compress(b"\0" * 2**20, 9)  # gzip allows member after member
    return member * mib


bomb = brotli_bomb(mib) if coding == "br" else gzip_bomb(mib)
headers = {"Content-Type": "application/json", "Content-Encoding": coding}
with WebServer() as web:
    web.fallback = lambda req: Reply(200, bomb, headers)
    settings = RescueSettings(cdx_api=web.url("/cdx"), availability_api=web.url("/available"),
                              spn_api=web.url("/save"), save_page_now=True, retries=0,
                              timeout=30)
    os.environ.update(IA_S3_ACCESS_KEY="a", IA_S3_SECRET_KEY="s")

    async def go():
        async with Rescuer(settings, user_agent="test", backoff=0) as rescuer:
            if action == "lookup":
                result = await rescuer.lookup("https://example.org/gone", None)
                return {"error": result.error, "found": result.memento is not None}
            saved = await rescuer.save_page_now("https://example.org/live")
            return {"error": saved.message, "status": saved.status.value}

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = asyncio.run(go())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome.update(peak_delta=(after - before) * 1024, bomb=len(bomb),
                   asked=[path.split("?")[0] for _, path, _ in web.requests])
print(json.dumps(outcome))
"""


def run_against_bomb(coding: str, action: str, mib: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ARCHIVER_TESTING": "1"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, coding, action, str(mib)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_bombs_are_what_they_claim() -> None:
    """The brotli construction decodes to zeros well past the cap (checked within a bound)."""
    import io

    import brotli

    block = b"\0" * 2**20
    compressor = brotli.Compressor(quality=1)
    parts = [compressor.compress(block) + compressor.flush() for _ in range(3)]
    bomb = parts[0] + parts[1] * 15 + compressor.finish()
    assert len(bomb) < 8 * 1024
    assert decode_body(io.BytesIO(bomb), "br", 2**40) == b"\0" * 16 * 2**20


@pytest.mark.parametrize(("coding", "mib"), [("br", 2048), ("gzip", 1024)])
def test_a_bomb_from_the_archive_is_a_failed_lookup_in_bounded_memory(coding: str,
                                                                     mib: int) -> None:
    outcome = run_against_bomb(coding, "lookup", mib)
    assert outcome["bomb"] < MAX_ANSWER  # small as sent: only decoding could tell
    assert outcome["found"] is False
    error = str(outcome["error"])
    assert "larger than 4.0 MiB once decoded" in error, error
    assert f"Content-Encoding: {coding}" in error
    # The CDX API failed, so the availability API was asked once; neither was retried.
    assert outcome["asked"] == ["/cdx", "/available"], outcome
    assert int(outcome["peak_delta"]) < PEAK_LIMIT, outcome


def test_a_bomb_answering_save_page_now_is_a_failed_save_in_bounded_memory() -> None:
    outcome = run_against_bomb("br", "spn", 2048)
    assert outcome["status"] == "failed", outcome
    assert "larger than 4.0 MiB once decoded" in str(outcome["error"])
    assert int(outcome["peak_delta"]) < PEAK_LIMIT, outcome


@pytest.mark.parametrize("url", ["http://127.1/x", "http://0x7f.1/x", "http://10.1/x",
                                 "http://2130706433/x", "http://[::1]:8080/x"])
def test_no_www_variant_for_an_address_in_any_notation(url: str) -> None:
    """``www.127.1`` is not a twin of ``127.1``: an address has no www. form."""
    https = "https" + url[len("http"):]
    assert url_variants(url) == (url, url + "/", https)


CDX_ROWS = json.dumps([["timestamp", "original", "statuscode", "mimetype", "digest"],
                       ["20200101000000", "https://example.org/gone", "200", "text/html",
                        "SHA1"]]).encode()


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate", "zstd", "x-custom", "gzip, br"])
def test_encoded_answers_are_read(web, coding: str) -> None:
    """What the archive compresses is decoded; an unknown coding is taken as sent, as httpx
    takes it."""
    import asyncio
    import gzip
    import zlib

    import brotli
    import zstandard

    encoders = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress,
                "zstd": zstandard.ZstdCompressor().compress, "x-custom": lambda b: b,
                "gzip, br": lambda b: brotli.compress(gzip.compress(b))}
    web.route("/cdx", Reply(200, encoders[coding](CDX_ROWS),
                            {"Content-Type": "application/json", "Content-Encoding": coding}))
    settings = RescueSettings(cdx_api=web.url("/cdx"), availability_api=web.url("/available"),
                              retries=0, timeout=5)

    async def go():
        async with Rescuer(settings, user_agent="test", backoff=0) as rescuer:
            return await rescuer.lookup("https://example.org/gone", None)

    result = asyncio.run(go())
    assert result.error is None, result
    assert result.memento is not None and result.memento.datetime.year == 2020
