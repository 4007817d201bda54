"""Service settings: read once from the environment (and an optional `.env`)."""

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The specification asked for Claude 3.5 Sonnet, which Anthropic retired on 2025-10-28; this is
# the current model of the same Sonnet line. CHAT_MODEL pins any other.
DEFAULT_MODEL = "claude-sonnet-5-5"

ThinkingDisplay = Literal["summarized", "omitted"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]
PromptCache = Literal["5m", "1h", "off"]
RefusalFallback = Literal["off", "default"]
Compaction = Literal["auto", "off"]

# Anthropic refuses a compaction trigger below this many input tokens.
MIN_COMPACTION_TRIGGER = 50_000

# Env var that chooses the default model; quoted in errors so operators know what to change.
MODEL_SETTING = "CHAT_MODEL"
FALLBACK_SETTING = "CHAT_FALLBACK_MODELS"

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Everything configurable. Service settings use the `CHAT_` prefix; the Anthropic key and
    base URL keep the SDK's own names so existing deployments work unchanged."""

    model_config = SettingsConfigDict(env_prefix="CHAT_", env_file=".env", extra="ignore", frozen=True)

    anthropic_api_key: SecretStr = Field(
        min_length=1, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "anthropic_api_key")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "anthropic_base_url")
    )

    model: str = DEFAULT_MODEL
    allowed_models: CommaList = Field(
        default_factory=list,
        description="If non-empty, requests may only choose these models (others get 422).",
    )
    refusal_fallback: RefusalFallback = Field(
        default="off",
        description="default: ask Anthropic to retry a refused answer on the model's own fallback "
        "model (server-side fallback, beta); models without one answer as before.",
    )
    fallback_models: CommaList = Field(
        default_factory=list,
        description="Models tried in turn when the configured one is overloaded or unavailable "
        "after its retries (never for a request that names its model).",
    )
    system_prompt: str | None = None
    # Thinking counts toward max_tokens: the default leaves room for a long think and a full
    # answer; the ceiling is what current Sonnet models can write in one answer.
    max_tokens_default: int = Field(default=16000, ge=1)
    max_tokens_ceiling: int = Field(default=64000, ge=1)
    thinking: ThinkingDisplay | None = Field(
        default=None,
        description="Default thinking display (summarized or omitted); unset: the model's own default.",
    )
    prompt_cache: PromptCache = Field(
        default="5m",
        description="Anthropic's prompt cache for each conversation's prefix: its lifetime, or off.",
    )
    effort: Effort | None = Field(
        default=None, description="Default effort (low … max); unset: the model's own default (high)."
    )
    compaction: Compaction = Field(
        default="off",
        description="auto: ask Anthropic to summarise a conversation's older turns once its input "
        "passes the trigger (server-side compaction, beta), on models that can.",
    )
    compaction_trigger: int | None = Field(
        default=None,
        ge=MIN_COMPACTION_TRIGGER,
        description="Input tokens past which Anthropic compacts; unset: 80 % of the model's window, "
        "never below Anthropic's minimum of 50,000.",
    )

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(
        default=60.0, gt=0, description="Longest silence tolerated from upstream, in seconds."
    )
    retry_attempts: int = Field(default=4, ge=1, description="Attempts in all, the first included.")
    retry_max_wait: float = Field(
        default=20.0,
        ge=0,
        description="Longest single wait between attempts; a longer retry-after fails fast.",
    )
    retry_initial_wait: float = Field(default=0.5, gt=0)

    max_upstream_connections: int = Field(
        default=4096,
        ge=1,
        description="Open connections to Anthropic per worker: its most concurrent requests.",
    )
    ping_interval: float = Field(default=15.0, gt=0)
    shutdown_grace: float = Field(
        default=50.0,
        ge=0,
        description="Seconds open streams get to finish on shutdown before they end with an error "
        "event; keep it below gunicorn's GRACEFUL_TIMEOUT.",
    )
    drain_pause: float = Field(
        default=0.0,
        ge=0,
        description="Seconds a worker keeps serving after SIGTERM, with Connection: close and /readyz "
        "503, before it stops accepting: for load balancers that hold keep-alive connections (nginx).",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    model_check_interval: float = Field(
        default=21600.0,
        gt=0,
        description="Seconds between two Models API checks of the configured and fallback models.",
    )

    prometheus_multiproc_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus-client's own variable: set (gunicorn), /metrics sums every worker.",
    )

    # OpenTelemetry's own variables, so that a deployment's standard set-up switches traces on.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
        description="OTLP/HTTP collector base URL (traces go to its /v1/traces): set, traces are on.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_exporter_otlp_traces_endpoint"
        ),
        description="The full URL for traces, in place of the base URL's /v1/traces: set, traces are on.",
    )
    otel_service_name: str = Field(
        default="chat-service",
        min_length=1,
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "otel_service_name"),
    )
    otel_sdk_disabled: bool = Field(
        default=False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled"),
        description="OpenTelemetry's off switch: true, traces are off whatever the endpoint.",
    )

    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://… (or rediss://…): answers become resumable and stoppable from any "
        "worker or replica; unset: off, an answer lives as long as its connection.",
    )
    resume_grace: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a resumable answer goes on with no reader attached before it is ended.",
    )
    resume_ttl: int = Field(
        default=300, ge=1, description="Seconds a finished answer stays readable, then is deleted."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    cors_origins: CommaList = Field(default_factory=list)
    end_user_header: str = Field(
        default="X-End-User-Id",
        pattern=r"^[A-Za-z0-9-]+$",
        description="The request header, set by the gateway, whose opaque end-user id is sent to "
        "Anthropic as metadata.user_id and written on the summary line.",
    )
    demo_page: bool = Field(
        default=False, description="Serve the demo chat page at GET /, a reference client of /chat."
    )

    @field_validator("allowed_models", "fallback_models", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "thinking",
        "effort",
        "system_prompt",
        "anthropic_base_url",
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "compaction_trigger",
        "redis_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes `${CHAT_EFFORT:-}` as an empty string when the variable is not set.
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def otlp_traces_url(self) -> str | None:
        """Where spans are sent, as OpenTelemetry resolves the two variables; None: traces are off."""
        if self.otel_sdk_disabled:
            # The SDK would hand out no-op tracers: no middleware, rather than spans of zeros.
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return f"{self.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
        return None

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> "Settings":
        if self.max_tokens_default > self.max_tokens_ceiling:
            raise ValueError("CHAT_MAX_TOKENS_DEFAULT must not exceed CHAT_MAX_TOKENS_CEILING")
        if (url := self.otlp_traces_url) is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"the OTLP traces endpoint {url!r} is not an http:// or https:// URL")
        if self.allowed_models and self.model not in self.allowed_models:
            raise ValueError(f"{MODEL_SETTING}={self.model!r} is not in CHAT_ALLOWED_MODELS")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()  # filled from the environment
