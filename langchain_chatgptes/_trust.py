"""The trust rule: which addresses a user may give, and where a page may send requests.

A chat page and every reply come from a third party (or from whatever answers in its
place), and the package runs inside servers where the site itself may come from a user. So
the browser's same-origin rule is applied to every request before it is sent, in one place
(the policy layer calls :meth:`TrustRule.admit`):

* requests go over ``http`` or ``https`` only (never ``file``, ``gopher``, ``dict``...);
* every endpoint a page or a reply names lies on the origin of the page it was read from
  (an ``http`` page's host may be reached over ``https`` on the default ports: an upgrade
  of the same site), or on a host the user listed in ``allowed_hosts``;
* URLs holding credentials, whitespace or control characters are refused;
* only the page GET follows redirects (that is how ``base_url`` settles, http -> https,
  www -> bare host); a chat, nonce or session request that is redirected is refused
  (:func:`redirect_location` spots one): nothing is sent to its ``Location``, and the
  error does not quote the redirect's body.

:func:`site_url` and :func:`host_entry` check what a user gives at construction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from langchain_chatgptes.errors import RefusedRedirectError, UntrustedEndpointError

SCHEMES = ("http", "https")
"""The only URL schemes requests use."""

DEFAULT_PORTS = {"http": 80, "https": 443}

MAX_PAGE_REDIRECTS = 10
"""Redirects the page GET follows before giving up (browsers allow about 20)."""

_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # whitespace and control characters
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_HOST = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+|\[[0-9a-f:.]+\]")
_SHOWN = 200  # characters of a refused URL shown in a message
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class _Credentials(ValueError):
    """A URL holding ``user:password@``."""


def mask_credentials(url: str) -> str:
    """``url`` with anything that may be credentials replaced by ``***@``.

    A URL that reads without credentials is kept (an ``@`` in its path is not one); any
    other URL with an ``@`` loses everything up to its last ``@``, however it is written
    (``http://user:pa/ss@host``, ``user:pass@host``, ``http:/user:pass@host``), so that no
    message or recorded input shows it. A masked URL is still refused as holding credentials.
    """
    if "@" not in url:
        return url
    try:
        if "@" not in urlsplit(url).netloc:
            _parse(url)
            return url  # readable, and the "@" is in its path or query
    except (ValueError, UnicodeError):
        pass
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    return url[:start] + "***@" + url.rpartition("@")[2]


def _shown(url: str) -> str:
    """A URL for a message: credentials masked, cut to a readable length."""
    url = mask_credentials(url)
    return url if len(url) <= _SHOWN else url[:_SHOWN] + "…"


@dataclass(frozen=True)
class Origin:
    """``scheme://host:port``: what the same-origin rule compares."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        port = None if DEFAULT_PORTS.get(self.scheme) == self.port else self.port
        return f"{self.scheme}://{_netloc(self.host, port)}"

    def admits(self, other: Origin) -> bool:
        """Whether ``other`` is this site: the same origin, or its upgrade to https."""
        if other == self:
            return True
        return (
            self.scheme == "http" and self.port == 80 and other == Origin("https", self.host, 443)
        )


def _host(hostname: str) -> str:
    """A host name as compared and sent: lower case, IDNA (punycode) for non-ASCII."""
    host = hostname.lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # UnicodeError for an invalid name
    if not _HOST.fullmatch(f"[{host}]" if ":" in host else host):
        raise ValueError(f"not a host name: {hostname!r}")
    return host


def _netloc(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _parse(url: str) -> tuple[str, str, int | None, str, str]:
    """``(scheme, host, port, path, query)`` of an http(s) URL; ValueError with the reason."""
    if _UNSAFE.search(url):
        raise ValueError("it holds whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"its scheme is {scheme or 'missing'!r}, not http or https")
    if parts.username is not None or parts.password is not None:
        raise _Credentials("it holds credentials (user:password@)")
    if not parts.hostname:
        raise ValueError("it names no host")
    try:
        port = parts.port
    except ValueError:  # (its message would quote the text, which may be a password)
        raise ValueError("its port is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("its port is not a number from 1 to 65535")
    host = _host(parts.hostname)
    # Non-ASCII text in the path or query travels percent-encoded (UTF-8), as browsers send it.
    path, query = (_NON_ASCII.sub(lambda m: quote(m.group()), p) for p in (parts.path, parts.query))
    return scheme, host, port, path, query


def origin_of(url: str) -> Origin:
    """The origin of an http(s) URL.

    Raises:
        ValueError: Not an http(s) URL with a host.
    """
    scheme, host, port, _, _ = _parse(url)
    return Origin(scheme, host, port if port is not None else DEFAULT_PORTS[scheme])


def normal_url(url: str) -> str:
    """An http(s) URL as it is sent: host in lower case and punycode, no fragment.

    Raises:
        ValueError: The URL cannot be requested (scheme, credentials, characters, port).
    """
    scheme, host, port, path, query = _parse(url)
    return urlunsplit((scheme, _netloc(host, port), path, query, ""))


# --- what the user gives ----------------------------------------------------------------------


def site_url(value: str) -> str:
    """``base_url`` checked and normalised (no trailing slash on the path, query kept).

    Raises:
        ValueError: Not an http(s) URL with a host, a port that is not one, whitespace or
            control characters, or credentials (which the message says where to put).
    """
    try:
        if "***@" in value:  # masked by mask_credentials: they were credentials
            raise _Credentials
        scheme, host, port, path, query = _parse(value)
    except _Credentials:
        raise ValueError(
            "base_url must not hold credentials (user:password@): they would travel "
            "with every request and show in reprs and traces. For a site behind HTTP "
            "authentication pass your own session, e.g. "
            "http_client=curl_cffi.requests.Session(auth=(user, password))"
        ) from None
    except (ValueError, UnicodeError) as exc:
        raise ValueError(
            f"base_url must be an http(s) URL such as 'https://chatgpt.es': {exc}"
        ) from None
    return urlunsplit((scheme, _netloc(host, port), path.rstrip("/"), query, ""))


def page_url(base_url: str) -> str:
    """The chat page a checked ``base_url`` names: its path with a trailing slash, its query.

    ``https://site/chat?lang=es`` -> ``https://site/chat/?lang=es`` (WordPress' canonical
    form, which saves a redirect).
    """
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/"))


def host_entry(value: str) -> str:
    """An ``allowed_hosts`` entry checked and normalised: ``host`` or ``host:port``.

    Raises:
        ValueError: Not a host name (with an optional port): no scheme, path or credentials.
    """
    try:
        if any(mark in value for mark in "/@?#\\") or _UNSAFE.search(value):
            raise ValueError
        parts = urlsplit(f"//{value}")
        if not parts.hostname or parts.port == 0:
            raise ValueError
        return _netloc(_host(parts.hostname), parts.port)
    except (ValueError, UnicodeError):
        raise ValueError(
            f"allowed_hosts entries are host names, optionally with a port "
            f"(e.g. 'chat.example.com' or 'chat.example.com:8443'), not {value!r}"
        ) from None


# --- where requests may go ------------------------------------------------------------------


class TrustRule:
    """Where the requests of calls to the bots of one page may go.

    Args:
        page_url: The page's final URL (after redirects): its origin is trusted.
        allowed_hosts: Checked :func:`host_entry` values: these hosts (on any port when none
            is given) are trusted too, over http or https.
    """

    def __init__(self, page_url: str, allowed_hosts: tuple[str, ...] = ()) -> None:
        """Trust the page's origin and ``allowed_hosts``."""
        self.page_url = page_url
        self.origin = origin_of(page_url)
        self._hosts = frozenset(allowed_hosts)

    def admit(self, url: str, *, step: str = "chat") -> str:
        """The URL to send a ``step`` request to, or the error that refuses it.

        Raises:
            UntrustedEndpointError: Not http(s), unreadable, or on another site.
        """
        try:
            origin = origin_of(url)
            admitted = normal_url(url)
        except (ValueError, UnicodeError) as exc:
            raise self._refused(url, step, str(exc)) from None
        if self.origin.admits(origin) or self._allowed(origin):
            return admitted
        raise self._refused(
            url,
            step,
            f"it is on another site ({origin}) than the page ({self.origin}); if you trust "
            "that host, list it in allowed_hosts",
        )

    def _allowed(self, origin: Origin) -> bool:
        hosts = self._hosts
        return bool(hosts) and (
            _netloc(origin.host, None) in hosts or _netloc(origin.host, origin.port) in hosts
        )

    def _refused(self, url: str, step: str, reason: str) -> UntrustedEndpointError:
        return UntrustedEndpointError(
            f"The {step} endpoint {_shown(url)!r} that the page at {self.page_url} names was "
            f"refused, and nothing was sent there: {reason}.",
            url=url,
            reason=reason,
        )


@functools.lru_cache(maxsize=256)
def trust_rule(page_url: str, allowed_hosts: tuple[str, ...] = ()) -> TrustRule:
    """The :class:`TrustRule` of a page (cached: one per page and host list)."""
    return TrustRule(page_url, allowed_hosts)


def redirect_location(url: str, status: int, headers: Mapping[str, str]) -> str | None:
    """Where a 3xx reply to ``url`` redirects (resolved against it), or ``None``.

    Raises:
        RefusedRedirectError: A ``Location`` that cannot be read (a browser would not
            follow it either); whitespace and control characters are not dropped.
    """
    location = headers.get("location", "").strip(" ")
    if not 300 <= status < 400 or not location:
        return None
    try:
        if _UNSAFE.search(location):
            raise ValueError("it holds whitespace or control characters")
        return urljoin(url, location)
    except ValueError as exc:
        raise RefusedRedirectError(
            f"The reply to {_shown(url)} redirected to {_shown(location)!r}, which is refused: "
            f"{exc}.",
            url=location,
            reason=str(exc),
        ) from None


def refuse_redirect(url: str, location: str, step: str) -> RefusedRedirectError:
    """The error for a chat, nonce or session request that the site redirected."""
    return RefusedRedirectError(
        f"The {step} request to {_shown(url)} was redirected to {_shown(location)!r}; only "
        "the page GET follows redirects (not followed: nothing was sent there).",
        url=location,
        reason="a redirect of a chat, nonce or session request",
    )


def page_redirect(url: str, location: str, hops: int) -> str:
    """The next URL of the page GET, after a redirect from ``url``.

    Raises:
        RefusedRedirectError: Not http(s), unreadable, or one redirect too many.
    """
    try:
        target = normal_url(location)
    except (ValueError, UnicodeError) as exc:
        raise RefusedRedirectError(
            f"The page at {_shown(url)} redirected to {_shown(location)!r}, which is refused: "
            f"{exc}.",
            url=location,
            reason=str(exc),
        ) from None
    if hops >= MAX_PAGE_REDIRECTS:
        raise RefusedRedirectError(
            f"The page at {_shown(url)} redirected more than {MAX_PAGE_REDIRECTS} times "
            f"(last to {_shown(location)!r}).",
            url=location,
            reason="too many redirects",
        )
    return target
