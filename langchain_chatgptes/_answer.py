"""The answer engine: a site's events -> what the caller sees, the same for every protocol.

Events (text, metadata, usage, end) pass through the tool-call filter (what may be shown
before the reply is parsed), then the stop / ``max_tokens`` shaper; at the end the whole
reply is parsed for tool calls and the answer format. When a tool call was required and
none came, the model is told so and asked again (``max_tool_retries`` times at most).

:class:`AnswerEngine` yields the text to show as it comes; its :attr:`AnswerEngine.result`
(an :class:`AnswerResult`) holds the rest once the answer has ended. It makes no request
itself: it is given the function that runs one call through the site's protocol.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    ToolCall,
    UsageMetadata,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_chatgptes._conversation import ChatInput, Visitor, flatten
from langchain_chatgptes._events import End, Event, Metadata, Notice, Usage
from langchain_chatgptes._output import TextShaper, estimate_usage
from langchain_chatgptes._prompt import chat_input, correction
from langchain_chatgptes._tools import (
    ParsedReply,
    ReplyFilter,
    ToolChoice,
    json_answer,
    parse_reply,
)

PROVIDER = "chatgptes"

RunCall = Callable[[ChatInput], AsyncGenerator[list[Event], None]]
"""Runs one call through the site's protocol: its events, in batches as they arrive."""


def text_chunk(text: str) -> ChatGenerationChunk:
    """A streamed chunk carrying only text."""
    return ChatGenerationChunk(message=AIMessageChunk(content=text))


@dataclass(frozen=True)
class AnswerSpec:
    """What one call asks for: model label, limits, tools, answer format, re-asks.

    Attributes:
        model_name: The label reported in metadata.
        stop: Stop sequences (client side).
        max_tokens: Limit of the answer in estimated tokens (client side).
        tool_names: The bound tools' names; ``None``: replies are not read for tool calls.
        choice: What the model must do with the tools.
        json_only: A ``response_format`` was bound: the answer is a JSON object.
        instructions: Tools, tool rule and answer format as prompt text.
        max_tool_retries: How often a required tool call is asked for again.
    """

    model_name: str
    stop: tuple[str, ...] | None = None
    max_tokens: int | None = None
    tool_names: tuple[str, ...] | None = None
    choice: ToolChoice = field(default_factory=ToolChoice)
    json_only: bool = False
    instructions: str = ""
    max_tool_retries: int = 1


@dataclass
class AnswerResult:
    """How an answer ends: its last text, its tool calls and all metadata.

    Attributes:
        lead: Text that arrived together with the end of the reply.
        text: Text held back until the reply was parsed, released now.
        tool_calls: Valid tool calls.
        invalid_tool_calls: Calls that could not be used, with the reason.
        response_metadata: Model label, provider, finish reason, site metadata, and
            whether the usage is estimated.
        usage: Token usage: the site's when it reported any, else an estimate.
    """

    lead: str
    text: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]
    response_metadata: dict[str, Any]
    usage: UsageMetadata

    def chunks(self) -> list[ChatGenerationChunk]:
        """The last chunk of a stream: the text that came with the end, and everything else.

        Text that arrived with the end of the reply (a whole JSON answer, the last words of
        a stream) rides on this chunk rather than on one of its own: langchain-core copies
        each chunk's text, and one chunk less is one copy of a long answer less. With tool
        calls, the text keeps a chunk of its own and the calls come alone on the last one.
        """
        # Valid calls' arguments are objects; an invalid call's are its raw text, which
        # json.dumps makes a JSON string, so it stays invalid when the chunks are summed.
        calls = [
            tool_call_chunk(
                name=call["name"],
                args=json.dumps(call["args"], ensure_ascii=False),
                id=call["id"],
                index=i,
            )
            for i, call in enumerate([*self.tool_calls, *self.invalid_tool_calls])
        ]
        text = self.lead + self.text
        last = AIMessageChunk(
            content="" if calls else text,
            tool_call_chunks=calls,
            chunk_position="last",
            usage_metadata=self.usage,
            response_metadata=self.response_metadata,
        )
        before = [text_chunk(text)] if calls and text else []
        return [*before, ChatGenerationChunk(message=last)]

    def message(self, shown: str) -> AIMessage:
        """The whole answer as one message, ``shown`` being the text handed out before."""
        return AIMessage(
            content=shown + self.lead + self.text,
            tool_calls=self.tool_calls,
            invalid_tool_calls=self.invalid_tool_calls,
            usage_metadata=self.usage,
            response_metadata=self.response_metadata,
        )


@dataclass
class _Attempt:
    """One request for the answer, built from the site's events."""

    spec: AnswerSpec
    chat: ChatInput
    shaper: TextShaper
    filter: ReplyFilter | None
    site_finish_reason: str = "stop"
    site_metadata: dict[str, Any] = field(default_factory=dict)
    site_usage: Usage | None = None
    raw: list[str] = field(default_factory=list)  # kept only when replies are parsed
    filtered: list[str] = field(default_factory=list)
    shown_chars: int = 0  # the text itself is the caller's: a long stream is not kept here
    ended: bool = False  # the site's reply ended
    notices: list[Warning] = field(default_factory=list)  # the engine's: read by the caller

    @classmethod
    def start(
        cls,
        spec: AnswerSpec,
        messages: Sequence[BaseMessage],
        visitor: Visitor,
        notices: list[Warning],
        *,
        follow_up: bool = False,
    ) -> _Attempt:
        """A fresh attempt at this conversation (``follow_up``: a re-ask)."""
        parses = spec.tool_names is not None or spec.json_only
        return cls(
            notices=notices,
            spec=spec,
            chat=chat_input(messages, spec.instructions, visitor, follow_up=follow_up),
            shaper=TextShaper(spec.stop, spec.max_tokens),
            filter=ReplyFilter(hold=spec.choice.forces_call or spec.json_only) if parses else None,
        )

    @property
    def done(self) -> bool:
        """Whether stop or ``max_tokens`` ended the answer on the client side."""
        return self.shaper.finish_reason is not None

    def take(self, event: Event) -> str:
        """The text to hand to the caller now for one event (may be empty)."""
        if self.done:
            return ""
        if isinstance(event, End):
            self.site_finish_reason = event.finish_reason
            self.ended = True
            return ""
        if isinstance(event, Metadata):
            self.site_metadata.update(event.values)
            return ""
        if isinstance(event, Usage):
            self.site_usage = event
            return ""
        if isinstance(event, Notice):
            # (a re-ask is another call to the site: it may bring the same notice again)
            if not any(str(seen) == str(event.warning) for seen in self.notices):
                self.notices.append(event.warning)
            return ""
        text = event.text
        if self.filter is not None:
            self.raw.append(text)
            text = self.filter.feed(text)
            self.filtered.append(text)
        shown = self.shaper.feed(text)
        self.shown_chars += len(shown)
        return shown

    def reply_text(self) -> str:
        """Everything the site answered (when replies are parsed)."""
        return "".join(self.raw)

    def follow_up(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The conversation that asks again for the tool call this answer lacked."""
        correct = HumanMessage(correction(self.spec.choice))
        return [*messages, AIMessage(self.reply_text()), correct]

    def finish(self, lead: str) -> tuple[AnswerResult, bool]:
        """Parse the reply: the result, and whether a required tool call is missing."""
        spec = self.spec
        if self.filter is None:
            parsed, rest = ParsedReply(""), ""
        else:
            text, filtered = self.reply_text(), "".join(self.filtered)
            if spec.tool_names is not None:
                parsed = parse_reply(text, spec.tool_names)
            else:
                parsed = ParsedReply(text.strip())
            if spec.json_only and not parsed.tool_calls:
                parsed.content = json_answer(parsed.content)
            # What was shown is a prefix of the content; the rest goes out now.
            rest = parsed.content[len(filtered) :] if parsed.content.startswith(filtered) else ""
        tail = self.shaper.feed(rest) + self.shaper.flush()
        calls = parsed.tool_calls
        finish_reason = (
            "tool_calls" if calls else self.shaper.finish_reason or self.site_finish_reason
        )
        result = AnswerResult(
            lead=lead,
            text=tail,
            tool_calls=calls,
            invalid_tool_calls=parsed.invalid_tool_calls,
            response_metadata={
                **self.site_metadata,
                "model_name": spec.model_name,
                "model_provider": PROVIDER,
                "finish_reason": finish_reason,
                "usage_is_estimate": self.site_usage is None,
            },
            usage=self._usage(tail, calls),
        )
        return result, spec.choice.forces_call and not calls

    def _usage(self, tail: str, calls: list[ToolCall]) -> UsageMetadata:
        if self.site_usage is not None:  # the site counted: its figures replace ours
            usage = self.site_usage
            total = usage.input_tokens + usage.output_tokens
            return UsageMetadata(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=total,
            )
        output_chars = self.shown_chars + len(tail)
        output_chars += sum(len(json.dumps(call["args"], ensure_ascii=False)) for call in calls)
        return estimate_usage(flatten(self.chat), output_chars)


class AnswerEngine:
    """One call's answer: text as it comes, then :attr:`result`; re-asks when needed."""

    def __init__(self, spec: AnswerSpec, messages: Sequence[BaseMessage], visitor: Visitor) -> None:
        """Prepare the answer to ``messages`` (nothing is sent until :meth:`pieces`)."""
        self.spec = spec
        self.messages = messages
        self.visitor = visitor
        self.notices: list[Warning] = []
        """Warnings for the caller, appended as they come (from any thread): see
        :class:`~langchain_chatgptes._events.Notice`."""
        self._taken = 0
        self._result: AnswerResult | None = None

    def take_notices(self) -> list[Warning]:
        """The notices that came since the last call (for the caller's thread to raise)."""
        new = self.notices[self._taken :]
        self._taken += len(new)
        return new

    @property
    def result(self) -> AnswerResult:
        """The end of the answer, once :meth:`pieces` has run to its end."""
        if self._result is None:
            raise RuntimeError("The answer has not ended: iterate AnswerEngine.pieces() first.")
        return self._result

    async def pieces(self, run: RunCall) -> AsyncGenerator[str, None]:
        """The text to show, as the site sends it; :attr:`result` is set at the end.

        Args:
            run: Runs one call through the site's protocol (``Pipeline.chat``).
        """
        conversation = self.messages
        for retry in range(self.spec.max_tool_retries + 1):
            attempt = _Attempt.start(
                self.spec, conversation, self.visitor, self.notices, follow_up=retry > 0
            )
            lead = ""
            async with aclosing(run(attempt.chat)) as batches:
                async for batch in batches:
                    pieces = [text for event in batch if (text := attempt.take(event))]
                    # (one piece is used as is: a long answer is not copied)
                    shown = pieces[0] if len(pieces) == 1 else "".join(pieces)
                    if attempt.done or attempt.ended:
                        lead = shown  # goes out with the end, on the last chunk
                        break  # (stop or max_tokens may end it early: the rest is dropped)
                    if shown:
                        yield shown
            result, missing_call = attempt.finish(lead)
            if not missing_call or retry == self.spec.max_tool_retries:
                self._result = result
                return
            if lead:
                yield lead  # shown text of an answer that is asked again
            conversation = attempt.follow_up(self.messages)
