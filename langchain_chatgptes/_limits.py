"""Size caps and policy constants, at the bottom of the import graph (imports nothing).

Untrusted replies are read in time linear in their size; these caps turn an absurd reply
into a typed error (``ResponseTooLargeError``) instead of unbounded memory. They sit well
above the 10 MB answers the fault matrix and the benchmark use.
"""

from __future__ import annotations

MAX_PAGE_BYTES = 8 * 1024 * 1024
"""Largest chat page read (WordPress pages are tens to hundreds of KB)."""

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest reply body read whole (a JSON answer, an error page)."""

MAX_EVENT_BYTES = 32 * 1024 * 1024
"""Largest single server-sent event; a whole stream has no cap (it is never kept)."""

SITE_CACHE_TTL = 2 * 3600.0
"""Seconds a page's facts (its nonce) are reused: well inside WordPress' 12-hour minimum."""

BACKOFF_BASE = 0.5
"""First retry waits up to this many seconds (with jitter), doubling per retry."""

BACKOFF_CAP = 8.0
"""Longest backoff between two retries, in seconds."""

RETRY_AFTER_CAP = 30.0
"""Longest ``Retry-After`` wait taken when ``timeout`` is ``None``, in seconds."""
