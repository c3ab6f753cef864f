"""ChatChatGptEs: the LangChain chat model over chatgpt.es.

A thin adapter: messages become a :class:`ChatInput` (``_prompt``), the policy layer
(``_policy``) runs the call through the site's protocol and returns events, and this module
turns events into LangChain messages and chunks. Sync calls run the same async pipeline on
the package's I/O thread (``_sessions``); async calls run it on the caller's loop.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import secrets
import sys
import threading
import uuid
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from contextvars import ContextVar
from operator import itemgetter
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import urlsplit

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import (
    BaseChatModel,
    LangSmithParams,
    LanguageModelInput,
    ModelProfile,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SkipValidation,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from langchain_chatgptes._answer import PROVIDER, AnswerEngine, AnswerSpec, text_chunk
from langchain_chatgptes._conversation import Visitor
from langchain_chatgptes._output import tokens_for_chars
from langchain_chatgptes._prompt import render_instructions
from langchain_chatgptes._sites import MAX_COOLDOWN, SiteHealth, SiteOrder
from langchain_chatgptes._tools import ToolChoice, tool_choice_of
from langchain_chatgptes._trust import host_entry, mask_credentials, page_url, site_url
from langchain_chatgptes.errors import (
    BlockedError,
    ChatGptEsError,
    InvalidInputError,
    NonceNotFoundError,
    RefusedRedirectError,
    TransportError,
    UntrustedEndpointError,
)

if TYPE_CHECKING:
    from langchain_chatgptes._policy import Settings
    from langchain_chatgptes._sessions import Runtime, SessionOptions
    from langchain_chatgptes._sites import Router

ModelLabel = Literal["gpt-4", "gpt-4o", "gpt-4o-mini"]
KNOWN_MODELS: tuple[str, ...] = get_args(ModelLabel)
"""Model labels accepted; the site itself decides which model answers."""

# The rules of the settings a call may also pass: one type each, for the field and the call.
StopSequences = Annotated[
    list[str] | None,
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
]
"""Stop sequences: a list of strings; one string is one stop sequence."""
TokenLimit = Annotated[int | None, Field(ge=1)]
"""A limit in (estimated) tokens: at least 1, or ``None`` for none."""
_CALL_ARGUMENTS: dict[str, Any] = {
    "stop": StopSequences,
    "max_tokens": TokenLimit,
    "model": ModelLabel,
}


@functools.cache
def _adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(_CALL_ARGUMENTS[name])


def call_argument(name: str, value: Any) -> Any:
    """A per-call argument checked by the rules of the field of the same name.

    Raises:
        InvalidInputError: The value breaks the rule; the message names the argument and
            what is allowed.
    """
    try:
        return _adapter(name).validate_python(value)
    except ValidationError as exc:
        reason = "; ".join(error["msg"] for error in exc.errors())
        raise InvalidInputError(
            f"{name}={value!r} is not valid for this call: {reason}.", setting=name
        ) from None


_RUNTIME_LOCK = threading.Lock()  # first calls from several threads build one runtime


def _new_runtime_lock() -> None:
    global _RUNTIME_LOCK  # a forked child must not inherit a lock another thread held
    _RUNTIME_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_runtime_lock)
DEFAULT_BASE_URL = "https://chatgpt.es"
AUTO = "auto"
"""The ``plugin`` value that lets the page decide which protocol to speak."""
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
MAX_TIMEOUT = 1_000_000.0
"""Largest finite ``timeout`` in seconds (about 11 days; curl counts milliseconds in a
32-bit number on some platforms). ``None`` or ``inf`` means no limit."""
MAX_CONCURRENCY = 1024
"""Largest ``max_concurrency``: curl_cffi allocates a pool of that many handles per loop."""

# Modules whose frames are not the caller's: a warning is attributed to the first frame
# outside them (the user's code calling invoke, stream, a chain or an agent).
_NOT_THE_CALLER = frozenset(
    {
        "langchain_chatgptes",
        "langchain_core",
        "langchain",
        "langgraph",
        "langsmith",
        "concurrent",
        "threading",
        "contextlib",
    }
)
_CALLER: ContextVar[FrameType | None] = ContextVar("chatgptes_caller", default=None)
"""The caller's frame, noted where a call enters the model (``ainvoke``): langchain-core
runs ``_agenerate`` in a task of its own, whose stack no longer reaches the caller."""


def _caller_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame outside the packages above, or None.

    None when the walk reaches the event loop first: the code runs in a task of its own,
    whose stack does not reach the caller.
    """
    while frame is not None:
        root = frame.f_globals.get("__name__", "").partition(".")[0]
        if root == "asyncio":
            return None
        if root not in _NOT_THE_CALLER:
            return frame
        frame = frame.f_back
    return None


def _sites_from_env(value: str) -> str | list[str]:
    """``CHATGPTES_BASE_URL``: one site, or several separated by commas or whitespace."""
    sites = [mask_credentials(site) for site in value.replace(",", " ").split()]
    return sites[0] if len(sites) == 1 else sites


def _notify(engine: AnswerEngine) -> None:
    """Raise the warnings the engine gathered since the last time, in this thread."""
    for warning in engine.take_notices():
        warn_caller(warning)


def warn_caller(warning: Warning) -> None:
    """Issue ``warning`` attributed to the caller's code (see :func:`_caller_frame`).

    Filters keyed on the caller's module then match, and "once per location" means once
    per place in the caller's code, whatever thread or task the call ran in.
    """
    here = sys._getframe(1)
    frame = _caller_frame(here) or _CALLER.get()
    if frame is None:  # nothing better known: the first frame outside this package
        frame = here
        while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            "langchain_chatgptes"
        ):
            frame = frame.f_back
    module_globals = frame.f_globals
    warnings.warn_explicit(
        warning,
        type(warning),
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__", "<string>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def advise(exc: ChatGptEsError, *, impersonate: str = "chrome") -> None:
    """Add what the caller of the model can change to an error's message (once)."""
    if exc.advice:
        return
    if isinstance(exc, BlockedError):
        exc.advice = (
            "Try another network or `proxy=`, or another `impersonate=` browser target "
            "(e.g. 'chrome', 'safari', 'firefox')."
        )
    elif isinstance(exc, NonceNotFoundError):
        exc.advice = "The site may have changed or be down: check `base_url` in a browser."
    elif isinstance(exc, InvalidInputError) and exc.setting == "impersonate":
        exc.advice = (
            f"impersonate={impersonate!r} is not one: use e.g. 'chrome', 'safari' or 'firefox'."
        )
    elif isinstance(exc, TransportError) and exc.at_proxy:
        exc.advice = "Check `proxy=` (or CHATGPTES_PROXY): is it running and reachable?"
    elif isinstance(exc, UntrustedEndpointError) and not isinstance(exc, RefusedRedirectError):
        exc.advice = (
            "If the site embeds a chat box from another host you trust, list that host in "
            "`allowed_hosts=`; see the README's Security section."
        )


class ChatChatGptEs(BaseChatModel):
    """Chat model over free WordPress chat sites (chatgpt.es first): AI Power and AI Engine.

    Unofficial: the site is a third party that may change, rate-limit or block clients at
    any time. It chooses the model that answers, takes no temperature, stop sequences or
    token limit (stop and ``max_tokens`` are applied on the client side) and reports no
    token counts (``usage_metadata`` is an estimate). Text only. Tool calling and structured
    output are emulated through the prompt.

    Setup:
        ```bash
        pip install langchain-chatgptes
        export CHATGPTES_PROXY="socks5://user:pass@host:1080"  # optional
        ```

    Key init args:
        model: Label reported in metadata: ``gpt-4o`` (default), ``gpt-4o-mini``, ``gpt-4``.
        base_url: The site (env ``CHATGPTES_BASE_URL``, default ``https://chatgpt.es``);
            any site running the same plugin works, e.g. the bundled emulator.
        proxy: http(s)://, socks4(a):// or socks5(h):// proxy URL (env ``CHATGPTES_PROXY``).
        impersonate: curl_cffi browser target, default ``"chrome"`` (the newest).
        timeout: Seconds; total for a non-streamed call, per silence for a stream.
        max_retries: Retries after transport errors, HTTP 429 and 5xx.
        stop: Stop sequences, applied on the client side.
        max_tokens: Truncate the answer at this many estimated tokens (client side).

    Instantiate:
        ```python
        from langchain_chatgptes import ChatChatGptEs

        model = ChatChatGptEs(model="gpt-4o", timeout=60, max_retries=2)
        ```

    Invoke:
        ```python
        model.invoke([("system", "Answer briefly."), ("human", "What is LangChain?")])
        ```

    Stream:
        ```python
        for chunk in model.stream("Tell me a joke"):
            print(chunk.text, end="", flush=True)
        ```

    Async:
        ```python
        await model.ainvoke("Hello")
        async for chunk in model.astream("Hello"):
            ...
        await model.abatch(["Hello", "Hi"])
        ```

    Tool calling:
        ```python
        from langchain_core.tools import tool

        @tool
        def get_weather(city: str) -> str:
            '''Get the current weather in a city.'''
            return f"It is sunny in {city}."

        model.bind_tools([get_weather]).invoke("Weather in Madrid?").tool_calls
        # [{"name": "get_weather", "args": {"city": "Madrid"}, "id": "call_...", ...}]
        ```

    Structured output:
        ```python
        from pydantic import BaseModel

        class Joke(BaseModel):
            setup: str
            punchline: str

        model.with_structured_output(Joke).invoke("Tell me a joke about cats")
        model.with_structured_output(Joke, method="json_schema").invoke("A cat joke")
        ```

    Token usage:
        ```python
        model.invoke("Hello").usage_metadata  # estimated: response_metadata["usage_is_estimate"]
        ```

    Response metadata:
        ```python
        model.invoke("Hello").response_metadata
        # {"site_url": "https://chatgpt.es", "site_plugin": "aipkit", "site_bot_id": "123",
        #  "site_message_id": "...", "site_response_id": "...", "model_name": "gpt-4o",
        #  "model_provider": "chatgptes", "finish_reason": "stop", "usage_is_estimate": True}
        ```
    """

    # hide_input_in_errors: a rejected proxy URL may hold credentials.
    model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

    model_name: ModelLabel = Field(default="gpt-4o", alias="model")
    """Model label (``gpt-4o``, ``gpt-4o-mini`` or ``gpt-4``); the site picks the model."""
    base_url: str | list[str] = Field(
        default_factory=lambda: _sites_from_env(
            from_env("CHATGPTES_BASE_URL", default=DEFAULT_BASE_URL)()
        ),
        validate_default=True,  # a bad CHATGPTES_BASE_URL is a ValidationError too
    )
    """The site's address, its chat page, or a list of sites to use in turn (env
    ``CHATGPTES_BASE_URL``: several separated by commas or whitespace). http(s) only, no
    credentials; a query string is kept (``https://site/?lang=es``)."""
    site_order: SiteOrder = "listed"
    """With several sites: ``listed`` (the first healthy one in the order given) or
    ``fastest`` (the healthy one with the lowest recent time to first byte first)."""
    site_cooldown: Annotated[float, Field(gt=0, le=MAX_COOLDOWN)] = 60.0
    """With several sites: seconds a site that failed a call is skipped, doubling while it
    keeps failing (at most 900), before one call probes it again."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts besides the page's own that the chat box may send requests to (``host`` or
    ``host:port``), for a site whose chat box is served from another host you trust. Empty:
    only the page's origin (and its https upgrade)."""
    plugin: str = Field(
        default_factory=from_env("CHATGPTES_PLUGIN", default=AUTO),
        validate_default=True,  # a bad CHATGPTES_PLUGIN is a ValidationError naming the field
    )
    """Which chat plugin's protocol to speak (env ``CHATGPTES_PLUGIN``): ``auto`` (what the
    page shows) or the name of a registered protocol: ``aipkit`` (AI Power / AI Puffer
    2.3+), ``mwai`` (AI Engine by Meow Apps), ``wpaicg`` (AI Power up to 2.2), or one added
    with ``langchain_chatgptes.protocols.register_protocol``."""
    bot_id: str | None = Field(default=None, min_length=1)
    """Which bot of a page that shows several (its id on the page); ``None``: the first
    inline bot, else the first one."""
    proxy: SecretStr | None = Field(
        default_factory=secret_from_env("CHATGPTES_PROXY", default=None)
    )
    """Proxy URL (http, https, socks4(a), socks5(h)) for every request (env ``CHATGPTES_PROXY``)."""
    impersonate: str = "chrome"
    """curl_cffi browser target; its TLS fingerprint and headers, User-Agent included."""
    timeout: Annotated[float | None, Field(gt=0)] = 60.0
    """Seconds. A reply read whole (the site answers JSON) must arrive within it; a reply
    read as a stream (a streaming site, on every call path) may go quiet for at most this
    long, before its first bytes and between chunks, however long it is in total.
    ``Retry-After`` waits are taken only within it. ``None`` (or ``inf``): no limit; a
    finite value is at most 1,000,000."""
    max_retries: Annotated[int, Field(ge=0)] = 2
    """HTTP retries per request, after transport errors, HTTP 429 and 5xx (a rejected
    nonce is refetched once on top)."""
    max_tool_retries: Annotated[int, Field(ge=0)] = 1
    """How often a required tool call that did not come is asked for again."""
    streaming: bool = False
    """Let ``invoke`` stream internally (callbacks then see each token)."""
    stop: StopSequences = Field(default=None, alias="stop_sequences")
    """Stop sequences, applied on the client side (one string is one sequence)."""
    temperature: float | None = None
    """Accepted for compatibility; **not sent**: the site has no such setting."""
    max_tokens: TokenLimit = None
    """Truncate answers at this many estimated tokens (client side, ``finish_reason="length"``)."""
    verify: bool = True
    """Verify TLS certificates (turn off only for a site you trust on a network you trust)."""
    max_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] = 16
    """Async requests in flight at once per event loop (1 to 1024); more wait for a slot."""
    http_client: SkipValidation[Any] = Field(default=None, exclude=True)
    """Your own curl_cffi ``AsyncSession`` (or ``Session``) for the sync methods, instead of
    the package's; never closed by the model, shared by copies, not pickled. The sync
    methods run on the package's I/O thread, where an ``AsyncSession`` is bound on first use.
    Configure proxy, browser target and TLS on it (then do not pass ``proxy``,
    ``impersonate`` or ``verify``)."""
    http_async_client: SkipValidation[Any] = Field(default=None, exclude=True)
    """Your own curl_cffi ``AsyncSession`` for the async methods (bound to your event
    loop); never closed by the model, shared by copies, not pickled."""
    site_cache: SkipValidation[Any] = Field(default=None, exclude=True)
    """Where page facts and nonces are kept (default: one cache shared by the process)."""

    _visitor: Visitor = PrivateAttr(
        default_factory=lambda: Visitor(secrets.token_hex(5), str(uuid.uuid4()))
    )
    _runtime: Runtime | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        """Validate the fields (no network I/O happens here)."""
        super().__init__(**data)
        self._check_http_clients()

    def _check_http_clients(self) -> None:
        if self.http_client is None and self.http_async_client is None:
            return  # (curl_cffi is imported on first use, not at construction)
        from curl_cffi.requests import AsyncSession, Session

        for name, allowed in (
            ("http_client", (AsyncSession, Session)),
            ("http_async_client", (AsyncSession,)),
        ):
            client = getattr(self, name)
            if client is not None and not isinstance(client, allowed):
                kinds = " or ".join(f"curl_cffi.{kind.__name__}" for kind in allowed)
                raise InvalidInputError(f"{name} must be a {kinds}, not {type(client).__name__}.")
        conflicts: list[str] = [
            name for name in ("impersonate", "verify") if name in self.model_fields_set
        ]
        if self.proxy is not None:
            conflicts.insert(0, "proxy")
        if conflicts:
            raise InvalidInputError(
                f"{' and '.join(conflicts)} cannot be combined with http_client or "
                "http_async_client: configure your session instead (e.g. "
                "AsyncSession(impersonate='chrome', proxy=...))."
            )

    @property
    def _client_id(self) -> str:
        """``wpaicg_chat_client_id``: stable per instance, like one browser."""
        return self._visitor.client_id

    @model_validator(mode="before")
    @classmethod
    def _mask_base_url_credentials(cls, data: Any) -> Any:
        # Credentials in base_url are refused; masked first, they cannot reach the error's
        # recorded input (ValidationError.errors(), .json()) either.
        url = data.get("base_url") if isinstance(data, dict) else None
        if isinstance(url, str) and "@" in url:
            data = {**data, "base_url": mask_credentials(url)}
        elif isinstance(url, list | tuple):
            masked = [mask_credentials(u) if isinstance(u, str) else u for u in url]
            data = {**data, "base_url": masked}
        return data

    @field_validator("base_url")
    @classmethod
    def _validate_base_url(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            return site_url(value)
        sites = list(dict.fromkeys(site_url(url) for url in value))  # (each site once)
        if not sites:
            raise ValueError("base_url must name at least one site")
        return sites

    @field_validator("plugin")
    @classmethod
    def _validate_plugin(cls, value: str) -> str:
        if value == AUTO:
            return value  # (the protocols are imported on first use, not at construction)
        from langchain_chatgptes.protocols import plugin_names

        known = plugin_names()
        if value not in known:
            raise ValueError(f"plugin must be one of {', '.join(map(repr, known))}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _validate_allowed_hosts(cls, value: list[str]) -> list[str]:
        return [host_entry(entry) for entry in value]

    @field_validator("timeout")
    @classmethod
    def _validate_timeout(cls, value: float | None) -> float | None:
        if value is None or math.isinf(value):
            return None  # (nan and values <= 0 were refused by the field's rule)
        if value > MAX_TIMEOUT:
            raise ValueError(
                f"timeout must be at most {MAX_TIMEOUT:,.0f} seconds; use None for no limit"
            )
        return value

    @field_validator("proxy")
    @classmethod
    def _validate_proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            parts = urlsplit(value.get_secret_value())
            valid = parts.scheme in _PROXY_SCHEMES and bool(parts.hostname) and parts.port != 0
        except ValueError:  # e.g. a port that is not a number
            valid = False
        if not valid:
            raise ValueError(
                "proxy must be a URL such as 'http://host:3128', 'https://host:443' or "
                "'socks5://user:password@host:1080' (the value is not shown: it may hold "
                "credentials)"
            )
        return value

    @property
    def model(self) -> str:
        """The model label (same as ``model_name``)."""
        return self.model_name

    @property
    def _llm_type(self) -> str:
        return f"{PROVIDER}-{self.model_name}"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Chains holding the model round-trip through ``dumpd``/``load``."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """``["langchain_chatgptes", "chat_models"]``."""
        return ["langchain_chatgptes", "chat_models"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The proxy (it may hold credentials) is stored as a reference to its variable."""
        return {"proxy": "CHATGPTES_PROXY"}

    @property
    def sites(self) -> list[str]:
        """The sites this model uses, in the order given (one, or several)."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    def site_health(self) -> list[SiteHealth]:
        """What is known of each of this model's sites, one record per site.

        State, failures, cooldown, time to first byte, counts and last error, shared by
        every model of the process that uses the same ``site_cache``. See the "Several
        sites" guide.
        """
        from langchain_chatgptes._site_cache import SiteCache

        book = (self.site_cache or SiteCache.shared()).health
        return [book.snapshot(url) for url in self.sites]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            # Every setting that changes which site or bot answers (for LangChain's caches);
            # base_url never holds credentials, and the proxy is not part of it.
            "base_url": self.base_url,
            "plugin": self.plugin,
            "bot_id": self.bot_id,
            "allowed_hosts": self.allowed_hosts,
            "site_order": self.site_order,
            "impersonate": self.impersonate,
            "stop": self.stop,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=kwargs.get("model", self.model_name),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if max_tokens := kwargs.get("max_tokens", self.max_tokens):
            params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = ls_stop
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return ModelProfile(
            text_inputs=True,
            text_outputs=True,
            image_inputs=False,
            image_url_inputs=False,
            pdf_inputs=False,
            audio_inputs=False,
            video_inputs=False,
            tool_calling=True,
            tool_choice=True,
            tool_call_streaming=False,
            structured_output=False,
        )

    # --- tokens ---------------------------------------------------------------------------

    def get_num_tokens(self, text: str) -> int:
        """Estimated tokens of a text, offline (4 characters per token)."""
        return tokens_for_chars(len(text))

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Estimated tokens of messages, offline (``count_tokens_approximately``)."""
        return count_tokens_approximately(messages, tools=list(tools) if tools else None)

    # --- sessions and the pipeline ----------------------------------------------------------

    def _session_options(self) -> SessionOptions:
        from langchain_chatgptes._sessions import SessionOptions

        return SessionOptions(
            impersonate=self.impersonate,
            proxy=self.proxy.get_secret_value() if self.proxy else None,
            verify=self.verify,
            max_concurrency=self.max_concurrency,
        )

    def _get_runtime(self) -> Runtime:
        # Built on first use (construction does no I/O), and again if a field it uses changed.
        from langchain_chatgptes._sessions import Runtime

        key = (
            self.impersonate,
            self.proxy,
            self.verify,
            self.max_concurrency,
            self.http_async_client,
            self.http_client,
        )
        runtime = self._runtime
        if runtime is not None and runtime.key == key:
            return runtime
        with _RUNTIME_LOCK:
            old = self._runtime
            if old is not None and old.key == key:
                return old
            self._runtime = Runtime(
                self._session_options(), self.http_async_client, self.http_client
            )
            self._runtime.key = key
        if old is not None:
            old.close()  # its sessions on other loops close with their loops
        return self._runtime

    def _settings(self, site: str) -> Settings:
        from langchain_chatgptes._policy import Settings

        return Settings(
            page_url(site),
            self.timeout,
            # With several sites, moving on to the next one is the retry.
            self.max_retries if isinstance(self.base_url, str) else 0,
            self.plugin,
            self.bot_id,
            tuple(self.allowed_hosts),
            site_url=site,
        )

    async def _pipeline(self, runtime: Runtime, *, on_io_thread: bool) -> Router:
        """The sites' policy layers on the running loop's adapter, behind the router."""
        from langchain_chatgptes._policy import Pipeline
        from langchain_chatgptes._site_cache import SiteCache
        from langchain_chatgptes._sites import Router

        adapter = await runtime.adapter(on_io_thread=on_io_thread)
        cache = self.site_cache or SiteCache.shared()
        pipelines = {site: Pipeline(self._settings(site), cache, adapter) for site in self.sites}
        return Router(pipelines, cache.health, self.site_order, self.site_cooldown)

    def close(self) -> None:
        """Close the session of the sync methods (connections are kept alive between calls).

        Async sessions close with their event loops, or with :meth:`aclose`.
        """
        if self._runtime is not None:
            self._runtime.close()

    async def aclose(self) -> None:
        """Close the running event loop's session and the sync methods' one."""
        if self._runtime is not None:
            await self._runtime.aclose()
            self._runtime.close()

    # --- copies and pickling: runtime state is never copied ---------------------------------

    _SHARED_FIELDS: ClassVar[tuple[str, ...]] = ("http_client", "http_async_client", "site_cache")

    def __copy__(self) -> Self:
        duplicate = super().__copy__()
        duplicate._runtime = None
        return duplicate

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        for name in self._SHARED_FIELDS:  # the user's sessions and cache are shared
            value = getattr(self, name)
            if value is not None:
                memo[id(value)] = value
        if self._runtime is not None:
            memo[id(self._runtime)] = None
        duplicate = super().__deepcopy__(memo)
        duplicate._runtime = None
        return duplicate

    def __getstate__(self) -> dict[Any, Any]:
        state = copy.copy(super().__getstate__())
        fields = dict(state["__dict__"])
        for name in self._SHARED_FIELDS:  # sessions and locks do not pickle: left out
            fields[name] = None
        state["__dict__"] = fields
        private = dict(state.get("__pydantic_private__") or {})
        private["_runtime"] = None
        state["__pydantic_private__"] = private
        return state

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- tools and structured output ------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; calls are emulated through the prompt (the site has no native tools).

        Args:
            tools: Anything ``convert_to_openai_tool`` accepts (``BaseTool``, functions,
                pydantic classes, TypedDicts, JSON-schema dicts, ``Runnable.as_tool``).
            tool_choice: ``None``/``"auto"`` (may call), ``"any"``/``"required"``/``True``
                (must call one), a tool name or ``{"type": "function", "function":
                {"name": ...}}`` (must call that one), ``"none"`` (tools left out).
            **kwargs: Passed on to ``bind`` (e.g. ``response_format``, ``strict``).

        Raises:
            InvalidInputError: An unknown ``tool_choice``.
        """
        formatted = [convert_to_openai_tool(tool, strict=kwargs.get("strict")) for tool in tools]
        tool_choice_of(tool_choice, [tool["function"]["name"] for tool in formatted])
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers shaped by a schema (pydantic v2 or v1, TypedDict or JSON schema).

        Args:
            schema: The output schema.
            method: ``function_calling`` (a forced call of a tool named after the schema),
                ``json_schema`` (the schema and a "reply with only this JSON" rule in the
                prompt) or ``json_mode`` ("reply with a JSON object"; describe the shape in
                your prompt).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising.
            strict: Accepted for compatibility; the site cannot enforce a schema.
            **kwargs: Not supported; raises.

        Raises:
            InvalidInputError: No schema, an unknown method or unknown arguments.
        """
        if schema is None:
            raise InvalidInputError("with_structured_output needs a schema.")
        if method == "function_calling":
            return super().with_structured_output(
                schema, include_raw=include_raw, method=method, strict=strict, **kwargs
            )
        if method not in ("json_schema", "json_mode") or kwargs:
            raise InvalidInputError(
                f"Unsupported method {method!r} or arguments {sorted(kwargs)}: use "
                "method='function_calling', 'json_schema' or 'json_mode'."
            )
        json_schema = convert_to_json_schema(schema)
        response_format: dict[str, Any] = (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": json_schema.get("title", "response"),
                    "schema": json_schema,
                    "strict": strict,
                },
            }
            if method == "json_schema"
            else {"type": "json_object"}
        )
        llm = self.bind(
            response_format=response_format,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": json_schema,
            },
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema)
            if isinstance(schema, type) and is_basemodel_subclass(schema)
            else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=llm) | parsed

    # --- calls ----------------------------------------------------------------------------

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """See ``BaseChatModel.ainvoke``; notes the caller, to whom warnings are attributed."""
        token = _CALLER.set(_caller_frame(sys._getframe(1)) or _CALLER.get())
        try:
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        finally:
            _CALLER.reset(token)

    def _spec(self, stop: Any, kwargs: Mapping[str, Any]) -> AnswerSpec:
        """What one call asks for, its arguments checked as the fields are."""
        tools = kwargs.get("tools") or []
        names = [tool["function"]["name"] for tool in tools]
        choice = tool_choice_of(kwargs.get("tool_choice"), names) if tools else ToolChoice()
        response_format = kwargs.get("response_format")
        stops = call_argument("stop", stop) if stop is not None else self.stop
        model = call_argument("model", kwargs["model"]) if "model" in kwargs else self.model_name
        limit = (
            call_argument("max_tokens", kwargs["max_tokens"])
            if "max_tokens" in kwargs
            else (self.max_tokens)
        )
        return AnswerSpec(
            model_name=model,
            stop=tuple(stops) if stops else None,
            max_tokens=limit,
            tool_names=tuple(names) if tools and choice.mode != "none" else None,
            choice=choice,
            json_only=response_format is not None,
            instructions=render_instructions(tools, choice, response_format),
            max_tool_retries=self.max_tool_retries,
        )

    def _engine(
        self, messages: Sequence[BaseMessage], stop: Any, kwargs: Mapping[str, Any]
    ) -> AnswerEngine:
        return AnswerEngine(self._spec(stop, kwargs), messages, self._visitor)

    async def _pieces(
        self, engine: AnswerEngine, runtime: Runtime, *, on_io_thread: bool
    ) -> AsyncGenerator[str, None]:
        """The engine's text on this loop's pipeline; errors get the caller's advice."""
        await runtime.gate().turn()  # many calls at once start one per loop iteration
        try:
            pipeline = await self._pipeline(runtime, on_io_thread=on_io_thread)
            async with aclosing(engine.pieces(pipeline.chat)) as pieces:
                async for piece in pieces:
                    yield piece
        except ChatGptEsError as exc:
            advise(exc, impersonate=self.impersonate)
            raise

    async def _collect(self, engine: AnswerEngine, runtime: Runtime) -> list[str]:
        """A whole answer on the I/O thread: one hand-over instead of one per piece."""
        return [piece async for piece in self._pieces(engine, runtime, on_io_thread=True)]

    def _sync_pieces(self, engine: AnswerEngine) -> Iterator[str]:
        """:meth:`_pieces` run on the package's I/O thread, iterated from this one.

        The engine's notices are raised here, in the caller's thread.
        """
        from langchain_chatgptes._sessions import IOThread

        runtime = self._get_runtime()  # here, in the caller's thread, not on the I/O thread
        pieces = IOThread.get().iterate(lambda: self._pieces(engine, runtime, on_io_thread=True))
        try:
            for piece in pieces:
                _notify(engine)
                yield piece
        finally:
            pieces.close()
            _notify(engine)

    async def _caller_pieces(self, engine: AnswerEngine) -> AsyncIterator[str]:
        """:meth:`_pieces` on the caller's loop; the engine's notices are raised here."""
        try:
            async for piece in self._pieces(engine, self._get_runtime(), on_io_thread=False):
                _notify(engine)
                yield piece
        finally:
            _notify(engine)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine = self._engine(messages, stop, kwargs)
        if run_manager and self.streaming:  # tokens reach callbacks as they come
            shown = [piece for piece in self._stream_pieces(engine, run_manager)]
        else:
            from langchain_chatgptes._sessions import IOThread

            runtime = self._get_runtime()
            try:
                shown = IOThread.get().run(self._collect(engine, runtime))
            finally:
                _notify(engine)
        message = engine.result.message("".join(shown))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream_pieces(
        self, engine: AnswerEngine, run_manager: CallbackManagerForLLMRun
    ) -> Iterator[str]:
        for piece in self._sync_pieces(engine):
            run_manager.on_llm_new_token(piece, chunk=text_chunk(piece))
            yield piece
        if tail := engine.result.lead + engine.result.text:
            run_manager.on_llm_new_token(tail, chunk=text_chunk(tail))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine = self._engine(messages, stop, kwargs)
        streaming = bool(run_manager and self.streaming)
        shown: list[str] = []
        async for piece in self._caller_pieces(engine):
            shown.append(piece)
            if streaming and run_manager:  # tokens reach callbacks as they come
                await run_manager.on_llm_new_token(piece, chunk=text_chunk(piece))
        result = engine.result
        if streaming and run_manager and (tail := result.lead + result.text):
            await run_manager.on_llm_new_token(tail, chunk=text_chunk(tail))
        return ChatResult(generations=[ChatGeneration(message=result.message("".join(shown)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        engine = self._engine(messages, stop, kwargs)
        for piece in self._sync_pieces(engine):
            chunk = text_chunk(piece)
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        for chunk in engine.result.chunks():
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        engine = self._engine(messages, stop, kwargs)
        async for piece in self._caller_pieces(engine):
            chunk = text_chunk(piece)
            if run_manager:
                await run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        for chunk in engine.result.chunks():
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
