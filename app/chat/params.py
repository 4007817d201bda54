"""A request's options with this server's defaults filled in and its limits checked."""

from dataclasses import dataclass
from typing import Any, Protocol

from app.config import (
    FALLBACK_SETTING,
    MODEL_SETTING,
    Compaction,
    Effort,
    PromptCache,
    Settings,
    ThinkingDisplay,
)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model asked for, and whether the server's setting chose it (not the request): then
    `setting` names that setting, for the operator who must change it."""

    name: str
    configured: bool
    setting: str = MODEL_SETTING


@dataclass(frozen=True, slots=True)
class OptionProblem:
    """An option that this deployment's limits refuse; the HTTP side reports it as a 422."""

    option: str
    type: str
    message: str
    input: Any
    ctx: dict[str, Any] | None = None


class InvalidOptions(Exception):
    def __init__(self, problems: list[OptionProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


class Options(Protocol):
    """A request's choices (None: the server's), as every chat route takes them."""

    @property
    def model(self) -> str | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def system(self) -> str | None: ...
    @property
    def thinking(self) -> ThinkingDisplay | None: ...
    @property
    def effort(self) -> Effort | None: ...
    @property
    def compaction(self) -> Compaction | None: ...


@dataclass(frozen=True, slots=True)
class ChatParams:
    """Everything one answer is asked for: the conversation and how to answer it."""

    model: ModelChoice
    # {"role", "content"}, and on an assistant turn Anthropic compacted in, its "compaction" block.
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | None
    thinking: ThinkingDisplay | None = None
    effort: Effort | None = None
    prompt_cache: PromptCache = "off"
    # Tried in turn when the model is unavailable: only for the server's choice of model, since
    # a request that names its model asked for exactly that one.
    fallbacks: tuple[str, ...] = ()
    refusal_fallback: bool = False  # Anthropic's server-side fallback after a refusal
    end_user_id: str | None = None  # the gateway's opaque id of the person asking
    compaction: bool = False  # ask Anthropic to compact, on a model that can
    compaction_trigger: int | None = None  # None: from the model's window

    @property
    def models(self) -> list[ModelChoice]:
        """The model, then its fallbacks, as the service would call them in turn."""
        return [
            self.model,
            *(ModelChoice(name, configured=True, setting=FALLBACK_SETTING) for name in self.fallbacks),
        ]

    @property
    def summarized(self) -> bool:
        return self.thinking == "summarized"

    @classmethod
    def with_defaults(
        cls,
        settings: Settings,
        messages: list[dict[str, Any]],
        options: Options,
        end_user_id: str | None = None,
    ) -> "ChatParams":
        """The request's choices, else the server's; `system=""` means no system prompt at all."""
        model, max_tokens = options.model, options.max_tokens
        problems: list[OptionProblem] = []
        if model is not None and settings.allowed_models and model not in settings.allowed_models:
            problems.append(
                OptionProblem(
                    "model",
                    "value_error",
                    f"Value error, model must be one of: {', '.join(settings.allowed_models)}",
                    model,
                )
            )
        if max_tokens is not None and max_tokens > settings.max_tokens_ceiling:
            problems.append(
                OptionProblem(
                    "max_tokens",
                    "less_than_equal",
                    f"Input should be less than or equal to {settings.max_tokens_ceiling}",
                    max_tokens,
                    {"le": settings.max_tokens_ceiling},
                )
            )
        if problems:
            raise InvalidOptions(problems)
        return cls(
            model=ModelChoice(model or settings.model, configured=model is None),
            messages=messages,
            max_tokens=max_tokens or settings.max_tokens_default,
            system=options.system if options.system is not None else settings.system_prompt,
            thinking=options.thinking or settings.thinking,
            effort=options.effort or settings.effort,
            prompt_cache=settings.prompt_cache,
            refusal_fallback=settings.refusal_fallback == "default",
            fallbacks=()
            if model is not None
            else tuple(name for name in settings.fallback_models if name != settings.model),
            end_user_id=end_user_id,
            compaction=(options.compaction or settings.compaction) == "auto",
            compaction_trigger=settings.compaction_trigger,
        )
