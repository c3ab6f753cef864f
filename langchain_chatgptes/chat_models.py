"""ChatChatGptEs: the LangChain chat model over chatgpt.es.

A thin adapter: messages become the prompt text (``_prompt``), ``_transport`` sends it and
returns events, and this module turns events into LangChain messages and chunks.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, ModelProfile
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from langchain_chatgptes._output import TextShaper, estimate_usage, tokens_for_chars
from langchain_chatgptes._prompt import build_message
from langchain_chatgptes._protocol import Event, StreamEnd
from langchain_chatgptes.errors import InvalidInputError

if TYPE_CHECKING:
    from langchain_chatgptes._transport import Transport, TransportConfig

KNOWN_MODELS = ("gpt-4", "gpt-4o", "gpt-4o-mini")
"""Model labels accepted; the site itself decides which model answers."""

PROVIDER = "chatgptes"
_TRANSPORT_LOCK = threading.Lock()  # first calls from several threads build one transport
DEFAULT_BASE_URL = "https://chatgpt.es"
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def _check_model(name: str) -> str:
    if name not in KNOWN_MODELS:
        raise InvalidInputError(
            f"Unknown model {name!r}: use one of {', '.join(KNOWN_MODELS)}. "
            "(chatgpt.es chooses the model that answers; the label is what metadata reports.)"
        )
    return name


@dataclass
class _Answer:
    """One call's answer as it is built from transport events."""

    prompt: str
    model_name: str
    shaper: TextShaper
    site_finish_reason: str = "stop"
    chars: int = 0

    @property
    def done(self) -> bool:
        """Whether stop or max_tokens ended the answer on the client side."""
        return self.shaper.finish_reason is not None

    def take(self, event: Event) -> ChatGenerationChunk | None:
        """The chunk to hand to the caller for one event, if any."""
        if isinstance(event, StreamEnd):
            self.site_finish_reason = event.finish_reason
            return None
        return self._chunk(self.shaper.feed(event.text))

    def finish(self) -> list[ChatGenerationChunk]:
        """The last chunks: held-back text, then the one chunk with all metadata."""
        chunks = [chunk for chunk in [self._chunk(self.shaper.flush())] if chunk is not None]
        finish_reason = self.shaper.finish_reason or self.site_finish_reason
        last = AIMessageChunk(
            content="",
            chunk_position="last",
            usage_metadata=estimate_usage(self.prompt, self.chars),
            response_metadata={
                "model_name": self.model_name,
                "model_provider": PROVIDER,
                "finish_reason": finish_reason,
                "usage_is_estimate": True,
            },
        )
        return [*chunks, ChatGenerationChunk(message=last)]

    def _chunk(self, text: str) -> ChatGenerationChunk | None:
        if not text:
            return None
        self.chars += len(text)
        return ChatGenerationChunk(message=AIMessageChunk(content=text))


class ChatChatGptEs(BaseChatModel):
    """Chat model over chatgpt.es, a free WordPress chat site (AI Power / wpaicg plugin).

    Unofficial: the site is a third party that may change, rate-limit or block clients at
    any time. It chooses the model that answers, takes no temperature, stop sequences or
    token limit (stop and ``max_tokens`` are applied on the client side) and reports no
    token counts (``usage_metadata`` is an estimate). Text only.

    Setup:
        ```bash
        pip install langchain-chatgptes
        export CHATGPTES_PROXY="socks5://user:pass@host:1080"  # optional
        ```

    Key init args:
        model: Label reported in metadata: ``gpt-4o`` (default), ``gpt-4o-mini``, ``gpt-4``.
        base_url: The site (env ``CHATGPTES_BASE_URL``, default ``https://chatgpt.es``);
            any site running the same plugin works, e.g. the bundled emulator.
        proxy: http(s):// or socks5:// proxy URL (env ``CHATGPTES_PROXY``).
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

    Token usage:
        ```python
        model.invoke("Hello").usage_metadata  # estimated: response_metadata["usage_is_estimate"]
        ```

    Response metadata:
        ```python
        model.invoke("Hello").response_metadata
        # {"model_name": "gpt-4o", "model_provider": "chatgptes", "finish_reason": "stop",
        #  "usage_is_estimate": True}
        ```
    """

    # hide_input_in_errors: a rejected proxy URL may hold credentials.
    model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

    model_name: str = Field(default="gpt-4o", alias="model")
    """Model label (``gpt-4o``, ``gpt-4o-mini`` or ``gpt-4``); the site picks the model."""
    base_url: str = Field(default_factory=from_env("CHATGPTES_BASE_URL", default=DEFAULT_BASE_URL))
    """The site's address (env ``CHATGPTES_BASE_URL``)."""
    proxy: SecretStr | None = Field(
        default_factory=secret_from_env("CHATGPTES_PROXY", default=None)
    )
    """Proxy URL (http, https, socks5) for every request (env ``CHATGPTES_PROXY``)."""
    impersonate: str = "chrome"
    """curl_cffi browser target; its TLS fingerprint and headers, User-Agent included."""
    timeout: float | None = 60.0
    """Seconds: total for a non-streamed call; for streams, per wait for the next bytes."""
    max_retries: int = 2
    """Retries after transport errors, HTTP 429 and 5xx (a rejected nonce is always
    refetched once, on top)."""
    streaming: bool = False
    """Let ``invoke`` stream internally (callbacks then see each token)."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences, applied on the client side."""
    temperature: float | None = None
    """Accepted for compatibility; **not sent**: the site has no such setting."""
    max_tokens: int | None = None
    """Truncate answers at this many estimated tokens (client side, ``finish_reason="length"``)."""
    verify: bool = True
    """Verify TLS certificates (turn off only for a site you trust on a network you trust)."""

    _client_id: str = PrivateAttr(default_factory=lambda: secrets.token_hex(5))
    _transport: Transport | None = PrivateAttr(default=None)

    @field_validator("model_name")
    @classmethod
    def _validate_model(cls, value: str) -> str:
        return _check_model(value)

    @field_validator("base_url")
    @classmethod
    def _validate_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}")
        return value.rstrip("/")

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

    @field_validator("timeout")
    @classmethod
    def _validate_timeout(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("timeout must be a positive number of seconds, or None for none")
        return value

    @field_validator("max_retries")
    @classmethod
    def _validate_max_retries(cls, value: int) -> int:
        if value < 0:
            raise ValueError("max_retries must be 0 or more")
        return value

    @field_validator("max_tokens")
    @classmethod
    def _validate_max_tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("max_tokens must be at least 1, or None for no limit")
        return value

    @property
    def model(self) -> str:
        """The model label (same as ``model_name``)."""
        return self.model_name

    @property
    def _llm_type(self) -> str:
        return f"{PROVIDER}-{self.model_name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_url": self.base_url,
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
            tool_calling=False,
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

    # --- the transport --------------------------------------------------------------------

    def _transport_config(self) -> TransportConfig:
        from langchain_chatgptes._transport import TransportConfig

        return TransportConfig(
            base_url=self.base_url,
            proxy=self.proxy.get_secret_value() if self.proxy else None,
            impersonate=self.impersonate,
            timeout=self.timeout,
            max_retries=self.max_retries,
            verify=self.verify,
        )

    def _get_transport(self) -> Transport:
        # Built on first use (construction does no I/O), and again if a field it uses changed.
        from langchain_chatgptes._transport import Transport

        config = self._transport_config()
        with _TRANSPORT_LOCK:
            old = self._transport
            if old is not None and old.config == config:
                return old
            self._transport = Transport(config)
        if old is not None:
            old.close()  # its async sessions go with their loops
        return self._transport

    def close(self) -> None:
        """Close the sync HTTP session (connections are kept alive between calls)."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the HTTP sessions of the running event loop and the sync one."""
        if self._transport is not None:
            await self._transport.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- calls ----------------------------------------------------------------------------

    def _start(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Answer:
        model_name = _check_model(kwargs.get("model", self.model_name))
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        return _Answer(
            prompt=build_message(messages),
            model_name=model_name,
            shaper=TextShaper(stop if stop is not None else self.stop, max_tokens),
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # One path for every call; tokens reach callbacks only when streaming was asked for.
        manager = run_manager if self.streaming else None
        return generate_from_stream(self._stream(messages, stop, manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        manager = run_manager if self.streaming else None
        chunks = [chunk async for chunk in self._astream(messages, stop, manager, **kwargs)]
        return generate_from_stream(iter(chunks))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._start(messages, stop, kwargs)
        with closing(self._get_transport().stream(answer.prompt, self._client_id)) as events:
            for event in events:
                chunk = answer.take(event)
                if chunk is not None:
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                if answer.done:
                    break  # a stop sequence or max_tokens ended it: drop the rest
        for chunk in answer.finish():
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
        answer = self._start(messages, stop, kwargs)
        transport = self._get_transport()
        async with aclosing(transport.astream(answer.prompt, self._client_id)) as events:
            async for event in events:
                chunk = answer.take(event)
                if chunk is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                if answer.done:
                    break
        for chunk in answer.finish():
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
