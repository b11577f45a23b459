"""One logged-in XenAPI session, the way a real pool answers: TLS, the pool master, and
every failure as one line naming the host and the step.

- TLS: https is verified against the system's CAs by default. A stock XenServer /
  XCP-ng host has a self-signed certificate: `tls_ca_file` names the CA (or the host's
  own certificate) to trust, `tls_verify: false` turns checking off (logged each time).
- A pool member refuses every call, login included, with HOST_IS_SLAVE and the master's
  address: the session follows it once, to the same scheme and port at that address.
- XenAPI failures, XML-RPC faults, HTTP errors, TLS and network errors become a
  ProvisionError (exit 3); a XenAPI failure keeps its code and parameters
  (XapiError), for callers that explain a particular one.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import xmlrpc.client
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from xml.parsers.expat import ExpatError

from labctl import secrets
from labctl.errors import ProvisionError

log = logging.getLogger("labctl.xenapi")


class XapiError(ProvisionError):
    """XenAPI refused a call: its error code and parameters (ErrorDescription)."""

    def __init__(self, host: str, step: str, description: list):
        self.code = str(description[0]) if description else "UNKNOWN"
        self.params = [str(d) for d in description[1:]]
        super().__init__(host, step, " ".join([self.code, *self.params]))


@dataclass(frozen=True)
class XenApiTarget:
    """Where the XenAPI is and how to trust it; what the journal keeps (never a password)."""

    url: str
    user: str
    password_file: str | None = None
    ca_file: str | None = None
    verify: bool = True

    def to_record(self) -> dict:
        return {
            "url": self.url,
            "user": self.user,
            "password_file": self.password_file,
            "tls_ca_file": self.ca_file,
            "tls_verify": self.verify,
        }

    @classmethod
    def from_record(cls, record: dict) -> XenApiTarget:
        return cls(
            record["url"],
            record["user"],
            record.get("password_file"),
            record.get("tls_ca_file"),
            record.get("tls_verify", True),
        )


def at_address(url: str, address: str) -> str:
    """The same URL at another host address (the pool master's), scheme and port kept."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def tls_context(target: XenApiTarget, host: str) -> ssl.SSLContext:
    """The TLS settings of the inventory, for XML-RPC and for HTTP uploads alike."""
    if target.verify:
        return ssl.create_default_context(cafile=target.ca_file)  # None: the system's CAs
    log.warning("%s: TLS certificate checking is OFF (inventory says tls_verify: false)", host)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _transport(url: str, target: XenApiTarget, host: str) -> xmlrpc.client.Transport | None:
    if urlsplit(url).scheme != "https":
        return None
    return xmlrpc.client.SafeTransport(context=tls_context(target, host))


def explain(exc: BaseException, url: str) -> str:
    """One line for what went wrong talking to the XenAPI at `url` (not a XenAPI failure)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {url} is not trusted ({exc.verify_message}): give the CA that "
            "signed it, or the host's own certificate, as tls_ca_file:, or set tls_verify: false "
            "(docs/drivers.md)"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {url} failed: {exc.reason or exc}"
    if isinstance(exc, xmlrpc.client.Fault):
        return f"XML-RPC fault {exc.faultCode}: {exc.faultString}"
    if isinstance(exc, xmlrpc.client.ProtocolError):
        return f"HTTP {exc.errcode} {exc.errmsg} from {url} (is this a XenAPI URL?)"
    if isinstance(exc, (http.client.HTTPException, ExpatError)):
        return f"no XenAPI answer from {url} ({type(exc).__name__}: {exc})"
    if isinstance(exc, OSError):
        return f"XenAPI unreachable at {url}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


WIRE_ERRORS = (OSError, xmlrpc.client.Error, http.client.HTTPException, ExpatError)


class XenApi:
    """A session with the pool: logged in at `target.url`, or at its master's address."""

    def __init__(self, host: str, target: XenApiTarget):
        import XenAPI

        self.host, self.target, self.user = host, target, target.user
        password = secrets.password(host, target.password_file)
        self.url = target.url
        try:
            self.session = self._login(self.url, password)
        except XapiError as exc:
            if exc.code != "HOST_IS_SLAVE" or not exc.params:
                raise
            self.url = at_address(target.url, exc.params[0])  # the pool master's
            log.info("%s: %s is a pool member; its master is at %s", host, target.url, self.url)
            self.session = self._login(self.url, password)
        self.api = self.session.xenapi
        self._failure = XenAPI.Failure

    def _login(self, url: str, password: str):
        import XenAPI

        step = f"log in to XenAPI at {url}"
        session = XenAPI.Session(url, transport=_transport(url, self.target, self.host))
        try:
            session.xenapi.login_with_password(self.user, password, "2.0", "labctl")
        except XenAPI.Failure as exc:
            details = list(exc.details or [])
            if details and details[0] == "SESSION_AUTHENTICATION_FAILED":
                raise ProvisionError(
                    self.host, step, f"authentication failed for {self.user} (wrong password?)"
                ) from None
            raise XapiError(self.host, step, details) from None
        except WIRE_ERRORS as exc:
            raise ProvisionError(self.host, step, explain(exc, url)) from None
        return session

    @property
    def followed_master(self) -> bool:
        return self.url != self.target.url

    def call(self, step: str, method: str, *args):
        obj, name = method.split(".")
        try:
            return getattr(getattr(self.api, obj), name)(*args)
        except self._failure as exc:
            raise XapiError(self.host, step, list(exc.details or [])) from None
        except WIRE_ERRORS as exc:
            raise ProvisionError(self.host, step, explain(exc, self.url)) from None

    def one(self, step: str, cls: str, label: str) -> str | None:
        refs = self.call(step, f"{cls}.get_by_name_label", label)
        return refs[0] if refs else None

    def logout(self) -> None:
        try:
            self.session.xenapi.session.logout()
        except Exception:  # best effort: the session times out on its own
            pass
