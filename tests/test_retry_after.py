"""A ``Retry-After`` of digits that are not ASCII (``²``, ``¹``): ``str.isdigit`` holds for
them and ``float`` refuses them, so one server sending one made the whole run stop with an
internal error, on either transport. It is a header that cannot be read: no advice."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.rescue import _retry_after
from archiver.retry import parse_retry_after
from tests.test_run import call, make_project
from tests.webserver import Reply, WebServer


@pytest.mark.parametrize("value", ["²", "¹0", "٣", " ³ "])
def test_a_retry_after_of_digits_that_are_not_ascii_is_no_advice(value: str) -> None:
    assert parse_retry_after(value) is None
    assert _retry_after(value) is None
    assert parse_retry_after(" 7 ") == 7.0 and _retry_after("7") == 7.0


def test_a_server_sending_one_is_judged_and_the_run_finishes(
        tmp_path: Path, web: WebServer, fetch_transport: str) -> None:
    web.route("/busy", Reply(503, b"busy", [("Content-Type", "text/html"),
                                             ("Retry-After", "\u00b2")]))
    web.route("/fine", Reply(200, b"<html><body><p>A fine page.</p></body></html>",
                             {"Content-Type": "text/html"}))
    config = make_project(tmp_path, [web.url("/busy"), web.url("/fine")])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    assert "1 ok, 1 server_error" in out, out
    assert web.hits["/busy"] >= 2  # retried, without the server's advice
