"""The one way AOC calls a language model: an OpenAI-compatible chat completion that must answer
by calling the one function it is offered.

Bounded on every side: the whole call (retries included) within LLM_TIMEOUT_SECONDS, the answer
within LLM_MAX_ANSWER_TOKENS; the OpenAI client retries 408/429/5xx and connection errors
(LLM_MAX_RETRIES, backoff with jitter, honouring Retry-After) inside that deadline. Every failure
is a `ModelUnavailable` with the status to answer (502 model error, 503 not configured, 504 no
answer in time) and a reason fit for the analyst; never an exception from the client library.
The prompt's size is the caller's to bound (aoc_api.model_input).

`openai` is imported on the first call, not with this module: its types take ~0.7 s to import,
which every `aoc run api` and `aoc mcp` paid at start (and on the way out of a failed start)
whether or not a model is configured.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aoc_common.settings import Settings

if TYPE_CHECKING:
    import openai

LLM_MAX_RETRIES = 2


class ModelUnavailable(Exception):
    """The language model could not be asked (answered with `status`, saying `reason`)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A function in the OpenAI tools format."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


class LanguageModel:
    """One client (one connection pool) per API process or MCP server, made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return self.settings.llm_model

    def _connected(self) -> openai.AsyncOpenAI:
        if self._client is None:
            key = self.settings.llm_api_key
            if key is None:
                raise ModelUnavailable(503, "LLM_API_KEY is not set: AI features cannot answer")
            import openai  # here, not at the top: see the module docstring

            self._client = openai.AsyncOpenAI(
                api_key=key.get_secret_value(),
                base_url=self.settings.llm_base_url,
                timeout=self.settings.llm_timeout_seconds,
                max_retries=LLM_MAX_RETRIES,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def call_function(
        self, messages: list[dict[str, str]], tool: dict[str, Any]
    ) -> str | None:
        """The arguments (JSON text) of the model's call of `tool`; its plain content for models
        that answer in text instead of calling; None when it did neither."""
        client = self._connected()
        import openai  # already imported by `_connected`: a lookup

        name = tool["function"]["name"]
        try:
            async with asyncio.timeout(self.settings.llm_timeout_seconds):
                completion = await client.chat.completions.create(
                    model=self.settings.llm_model,
                    messages=messages,  # type: ignore[arg-type]
                    tools=[tool],  # type: ignore[list-item]
                    tool_choice={"type": "function", "function": {"name": name}},
                    temperature=0,
                    max_completion_tokens=self.settings.llm_max_answer_tokens,
                )
        except (TimeoutError, openai.APITimeoutError):
            raise ModelUnavailable(
                504,
                f"The language model did not answer within {self.settings.llm_timeout_seconds:g} s.",
            ) from None
        except openai.APIStatusError as error:
            raise ModelUnavailable(
                502, f"The language model answered HTTP {error.status_code}."
            ) from None
        except openai.APIConnectionError:
            raise ModelUnavailable(502, "The language model could not be reached.") from None
        except (openai.OpenAIError, ValueError, TypeError):
            raise ModelUnavailable(502, "The language model's answer could not be read.") from None
        return _function_arguments(completion, name)


def _function_arguments(completion: Any, name: str) -> str | None:
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return None
    message = getattr(choices[0], "message", None)
    if message is None:
        return None
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        if function is not None and getattr(function, "name", None) == name:
            arguments = getattr(function, "arguments", None)
            return arguments if isinstance(arguments, str) else None
    content = getattr(message, "content", None)
    return content if isinstance(content, str) else None
