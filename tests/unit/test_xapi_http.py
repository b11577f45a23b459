"""Where labctl sends an upload xapi redirected, and the redirects it refuses, each in one
line that never shows the query (it holds the session). The PUTs themselves, against a fake
pool: tests/e2e/test_xenserver_driver.py."""

from __future__ import annotations

import pytest

from labctl.drivers.xapi_http import MAX_REDIRECTS, _follow
from labctl.errors import ProvisionError

MASTER = "https://xs1.example"
LOCATION = "https://10.0.0.12/import_raw_vdi?session_id=OpaqueRef:s&vdi=OpaqueRef:v&format=raw&task_id=t"


def follow(location: str | None, tried: list[str] | None = None, status: int = 302) -> str:
    return _follow("xs1", "upload the seed of vm1", tried or [MASTER], "/import_raw_vdi", status, location)


def refused(location: str | None, tried: list[str] | None = None) -> str:
    with pytest.raises(ProvisionError) as failed:
        follow(location, tried)
    message = str(failed.value)
    assert message.startswith("xs1: upload the seed of vm1 failed: ") and "\n" not in message
    assert "session_id" not in message and "OpaqueRef" not in message
    return message.split(" failed: ", 1)[1]


def test_xapis_location_names_the_member_to_send_the_same_request_to():
    assert follow(LOCATION) == "https://10.0.0.12"
    assert follow(LOCATION.replace("10.0.0.12", "10.0.0.12:8443"), status=307) == "https://10.0.0.12:8443"
    assert follow(LOCATION.replace("10.0.0.12", "[fd00::12]")) == "https://[fd00::12]"
    assert (
        follow("//10.0.0.12/import_raw_vdi?session_id=OpaqueRef:s") == "https://10.0.0.12"
    )  # the scheme kept
    assert follow(LOCATION.replace("https", "http"), tried=["http://xs1.example"]) == "http://10.0.0.12"


def test_a_redirect_without_a_location_or_to_no_http_url_is_one_line():
    assert refused(None) == "HTTP 302 from https://xs1.example/import_raw_vdi without a Location"
    assert refused("ftp://10.0.0.12/import_raw_vdi?session_id=OpaqueRef:s") == (
        "xapi redirected the upload to ftp://10.0.0.12/import_raw_vdi: not an HTTP URL"
    )


def test_https_is_never_followed_to_http_not_even_after_a_hop():
    assert refused(LOCATION.replace("https", "http")) == (
        "xapi redirected the upload from https://xs1.example to http://10.0.0.12/import_raw_vdi: labctl "
        "does not send the session over plain http when the XenAPI URL is https"
    )
    message = refused(
        LOCATION.replace("https://10.0.0.12", "http://10.0.0.13"), [MASTER, "https://10.0.0.12"]
    )
    assert message.startswith("xapi redirected the upload from https://10.0.0.12 to http://10.0.0.13/")


def test_a_loop_and_too_many_hops_are_one_line():
    assert refused(LOCATION.replace("10.0.0.12", "xs1.example")) == (
        "xapi redirected the upload in a loop: https://xs1.example -> https://xs1.example"
    )
    tried = [MASTER, *(f"https://10.0.0.{n}" for n in range(MAX_REDIRECTS))]
    assert refused(LOCATION, tried) == (
        f"xapi redirected the upload more than {MAX_REDIRECTS} times: {' -> '.join(tried)} -> https://10.0.0.12"
    )
