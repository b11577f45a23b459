"""A PUT to one of xapi's HTTP handlers (import_raw_vdi), sent the way xapi's own client
sends one (xen-api ocaml/xe-cli/newcli.ml, HttpPut): the request line and headers first,
then xapi's answer, and the body only after a 200.

- xapi answers before it reads the body: 200 (whether the data arrived is the task's to
  say), an error, or 302 when another pool member reaches the VDI's SR (a local SR of that
  member). import_raw_vdi.ml asks Importexport.check_sr_availability and, when this host
  cannot see the SR, return_302_redirect answers `Location: https://<that host's
  address><the same path>?<the same query>` (session_id and task_id with it), then closes
  without reading the body: a client that sends the body first can lose that answer to
  the connection's reset.
- A 302 (or 307) is followed to the host the Location names (its scheme, address and
  port) with this request's own path and query, over the same TLS settings (the member is
  of the same pool: the same CA). Never from https to http (xapi before 2016 answered http
  to a request that came in unencrypted), never to a URL already tried, at most
  MAX_REDIRECTS times; each refusal is one line. No line shows the query: it holds the
  session.
"""

from __future__ import annotations

import http.client
import logging
import socket
from urllib.parse import urlencode, urljoin, urlsplit

from labctl.drivers.xenapi_session import WIRE_ERRORS, XenApi, explain, tls_context
from labctl.errors import ProvisionError

log = logging.getLogger("labctl.xenapi")

MAX_REDIRECTS = 3  # a pool forwards once, to the member that reaches the SR; more is a loop or a proxy
REDIRECTS = (302, 307)  # xapi answers 302; 307 says the same (same method, same body)
TIMEOUT_S = 300.0  # one socket operation; the upload of a seed takes seconds


def put(api: XenApi, step: str, path: str, query: dict[str, str], body: bytes) -> None:
    """PUT `body` to `path` of the pool, authenticated by the session's ref (query session_id),
    following xapi's redirects."""
    request = f"{path}?{urlencode({'session_id': api.session._session, **query})}"
    tried = [api.url]
    while True:
        url = tried[-1]
        status, reason, location = _put_once(api, step, url, request, body, redirected=len(tried) > 1)
        if status == 200:
            return
        if status not in REDIRECTS:
            raise ProvisionError(api.host, step, f"HTTP {status} {reason} from {url}{path}{_via(tried)}")
        tried.append(_follow(api.host, step, tried, path, status, location))
        log.info(
            "%s: %s: xapi redirected %s to %s, a pool member that reaches the SR",
            api.host,
            step,
            url,
            tried[-1],
        )


def _via(tried: list[str]) -> str:
    return f" (redirected: {' -> '.join(tried)})" if len(tried) > 1 else ""


def _follow(host: str, step: str, tried: list[str], path: str, status: int, location: str | None) -> str:
    """The scheme, address and port to send the request to next, or one line saying why not."""
    if not location:
        raise ProvisionError(host, step, f"HTTP {status} from {tried[-1]}{path} without a Location")
    parts = urlsplit(urljoin(tried[-1] + path, location))
    url = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProvisionError(host, step, f"xapi redirected the upload to {url}{parts.path}: not an HTTP URL")
    if urlsplit(tried[0]).scheme == "https" and parts.scheme != "https":
        raise ProvisionError(
            host,
            step,
            f"xapi redirected the upload from {tried[-1]} to {url}{parts.path}: labctl does not send the "
            "session over plain http when the XenAPI URL is https",
        )
    if url in tried:
        raise ProvisionError(
            host, step, f"xapi redirected the upload in a loop: {' -> '.join([*tried, url])}"
        )
    if len(tried) > MAX_REDIRECTS:
        raise ProvisionError(
            host,
            step,
            f"xapi redirected the upload more than {MAX_REDIRECTS} times: {' -> '.join([*tried, url])}",
        )
    return url


def _put_once(
    api: XenApi, step: str, url: str, request: str, body: bytes, redirected: bool
) -> tuple[int, str, str | None]:
    """One PUT at `url`: headers, xapi's answer, then the body only after a 200, read until
    xapi closes (it has read the body by then). Its status, reason and Location."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    address = parts.hostname or ""
    head = (
        f"PUT {request} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock: socket.socket | None = None
    answer: http.client.HTTPResponse | None = None
    try:
        sock = socket.create_connection((address, parts.port or (443 if https else 80)), timeout=TIMEOUT_S)
        if https:
            sock = tls_context(api.target, api.host).wrap_socket(sock, server_hostname=address)
        sock.sendall(head.encode("ascii"))
        answer = http.client.HTTPResponse(sock, method="PUT")
        answer.begin()
        if answer.status == 200:
            sock.sendall(body)
            answer.read()
        return answer.status, answer.reason, answer.getheader("Location")
    except WIRE_ERRORS as exc:
        note = "; xapi redirected the upload to this pool member" if redirected else ""
        raise ProvisionError(api.host, step, explain(exc, url) + note) from None
    finally:
        if answer is not None:
            answer.close()  # the socket's file: the socket closes with it
        if sock is not None:
            sock.close()
