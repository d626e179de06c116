"""RoutingService: the data plane (chat, embeddings, rerank) and the model registry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from services import call_context
from services.billing.ledger import amount_in_range
from services.billing.metering import Metering, chat_prompt_text, prompt_token_bound
from services.config import ProviderConfig
from services.errors import Reason, ServiceError, invalid_request
from services.health.monitor import HealthMonitor
from services.routing import audio as audio_length
from services.routing.adapters.base import estimate_tokens
from services.routing.cooldown import CooldownTracker
from services.routing.catalogue import PriceCatalogue
from services.routing.registry import ModelRegistry, apply_defaults
from services.routing.router import Router
from switchyard.routing.v1 import chat_pb2, routing_pb2, routing_pb2_grpc

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MODES = frozenset({"chat", "embedding", "rerank", "image", "speech", "transcription"})
_TRANSCRIPTION_TASKS = frozenset({"", "transcribe", "translate"})
_TRANSCRIPTION_FORMATS = frozenset({"", "json", "text", "verbose_json", "srt", "vtt"})


def validate_chat(chat: chat_pb2.ChatRequest, model: routing_pb2.Model) -> None:
    """Checks every caller gets, whichever dialect (or gRPC client) built the request."""
    if not chat.messages:
        raise invalid_request("messages must not be empty.", "messages")
    for i, message in enumerate(chat.messages):
        if message.role not in _ROLES:
            raise invalid_request(f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}.", f"messages[{i}].role")
    if chat.HasField("max_tokens"):
        if chat.max_tokens < 1:
            raise invalid_request("max_tokens must be at least 1.", "max_tokens")
        if chat.max_tokens > model.max_output_tokens:
            raise invalid_request(
                f"max_tokens is too large: {chat.max_tokens}. Model '{model.id}' supports at most "
                f"{model.max_output_tokens} output tokens.",
                "max_tokens",
            )
    if chat.HasField("n") and chat.n < 1:
        raise invalid_request("n must be at least 1.", "n")


def validate_model(model: routing_pb2.Model, providers: dict[str, ProviderConfig]) -> None:
    if not model.id or len(model.id) > 200 or any(c.isspace() for c in model.id):
        raise invalid_request("model id must be 1–200 characters without spaces.", "id")
    if model.mode not in _MODES:
        raise invalid_request(f"mode must be one of {', '.join(sorted(_MODES))}.", "mode")
    if not model.deployments:
        raise invalid_request("a model needs at least one deployment.", "deployments")
    for i, deployment in enumerate(model.deployments):
        if deployment.provider not in providers:
            raise invalid_request(f"deployments[{i}].provider '{deployment.provider}' is not a configured provider.", f"deployments[{i}].provider")
        if not deployment.upstream_model:
            raise invalid_request(f"deployments[{i}].upstream_model is required.", f"deployments[{i}].upstream_model")
        if deployment.weight < 1:
            raise invalid_request(f"deployments[{i}].weight must be at least 1.", f"deployments[{i}].weight")
    if model.context_window < 1 or model.max_output_tokens < 1:
        raise invalid_request("context_window and max_output_tokens must be positive.", "context_window")
    for field, price in model.pricing.ListFields():
        name = "pricing." + field.name.replace("nano_usd", "usd")  # as the REST body and the config spell it
        amount_in_range(price, name, allow_zero=True)


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        router: Router,
        providers: dict[str, ProviderConfig],
        monitor: HealthMonitor,
        cooldown: CooldownTracker,
        metering: Metering,
        catalogue: PriceCatalogue | None = None,
    ) -> None:
        self._catalogue = catalogue or PriceCatalogue.empty()
        self._metering = metering
        self._registry = registry
        self._router = router
        self._providers = providers
        self._monitor = monitor
        self._cooldown = cooldown

    def _model(self, model_id: str, mode: str) -> routing_pb2.Model:
        if not model_id:
            raise invalid_request("model is required.", "model")
        principal = call_context.current().principal
        model = self._registry.get(model_id)
        if model is None:
            raise _no_model(model_id, "does not exist.", field="model")
        if not principal.may_use(model_id):
            # The documented 400 "model not allowed": the key is restricted, the model is real.
            raise ServiceError(
                Reason.ERROR_REASON_MODEL_NOT_ALLOWED, f"This API key is not allowed to use the model '{_shown(model_id)}'.",
                metadata={"field": "model", "model": model_id},
            )
        if model.mode != mode:
            article = "an" if model.mode[0] in "aeiou" else "a"
            raise invalid_request(f"Model '{model_id}' is {article} {model.mode} model and cannot serve this endpoint.", "model")
        return model

    def output_limit(self, model_id: str) -> int | None:
        """The model's output token limit, None for a model not in the registry."""
        model = self._registry.get(model_id)
        return model.max_output_tokens if model is not None else None

    async def CreateChatCompletion(self, request, context) -> AsyncIterator[routing_pb2.CreateChatCompletionResponse]:
        chat = request.chat
        if chat.stream:
            model, meter = await self._admit_chat(chat, "chat")
            async for batch in _coalesce(meter.watch(chat, self._router.stream_chat(model, chat))):
                yield routing_pb2.CreateChatCompletionResponse(chunks=batch)
            return
        yield routing_pb2.CreateChatCompletionResponse(completion=await self.complete_chat(chat))

    async def _admit_chat(self, chat: chat_pb2.ChatRequest, endpoint: str, template: str = ""):
        model = self._model(chat.model, "chat")
        validate_chat(chat, model)
        meter = self._metering.start(call_context.current(), model, endpoint, streamed=chat.stream)
        meter.template = template
        output_bound = (chat.max_tokens if chat.HasField("max_tokens") else model.max_output_tokens) * max(chat.n, 1)
        await meter.admit(lambda: prompt_token_bound(chat_prompt_text(chat), len(chat.messages) + len(chat.tools)), output_bound)
        return model, meter

    async def complete_chat(self, chat: chat_pb2.ChatRequest, endpoint: str = "chat", template: str = "") -> chat_pb2.ChatCompletion:
        """A whole (non-streamed) completion for the current caller: admitted, routed and charged.
        Other services of this process (the templated API) build on it."""
        model, meter = await self._admit_chat(chat, endpoint, template)
        completion = await _metered(meter, self._router.chat(model, chat))
        meter.provider, meter.upstream_model = completion.provider, completion.upstream_model
        _ensure_usage(completion.usage, lambda: chat_prompt_text(chat), lambda: "".join(
            c.message.text + "".join(t.function.arguments for t in c.message.tool_calls) for c in completion.choices
        ))
        await meter.settle(completion.usage)
        return completion

    async def CountTokens(self, request, context) -> routing_pb2.CountTokensResponse:
        """Free (nothing is held or charged) and routed like the chat it counts: the key's model
        restrictions apply, and deployments are tried with the same retries and fallback."""
        chat = request.chat
        model = self._model(chat.model, "chat")
        if not chat.messages:
            raise invalid_request("messages must not be empty.", "messages")
        return await self._router.call(model, "count_tokens", chat)

    async def CreateEmbeddings(self, request, context) -> routing_pb2.CreateEmbeddingsResponse:
        model = self._model(request.model, "embedding")
        if not request.input:
            raise invalid_request("input must not be empty.", "input")
        meter = self._metering.start(call_context.current(), model, "embeddings")
        await meter.admit(lambda: prompt_token_bound("".join(request.input), len(request.input)), 0)
        response = await _metered(meter, self._router.call(model, "embed", request))
        meter.provider = response.provider
        _ensure_usage(response.usage, lambda: "\n".join(request.input), str)
        await meter.settle(response.usage)
        return response

    async def Rerank(self, request, context) -> routing_pb2.RerankResponse:
        model = self._model(request.model, "rerank")
        if not request.query:
            raise invalid_request("query must not be empty.", "query")
        if not request.documents:
            raise invalid_request("documents must not be empty.", "documents")
        if request.HasField("top_n") and request.top_n < 1:
            raise invalid_request("top_n must be at least 1.", "top_n")
        meter = self._metering.start(call_context.current(), model, "rerank")
        await meter.admit(lambda: prompt_token_bound(request.query + "".join(request.documents), len(request.documents) + 1), 0)
        response = await _metered(meter, self._router.call(model, "rerank", request))
        meter.provider = response.provider
        _ensure_usage(response.usage, lambda: request.query + "\n" + "\n".join(request.documents), str)
        await meter.settle(response.usage)
        return response

    async def CreateImage(self, request, context) -> routing_pb2.CreateImageResponse:
        model = self._model(request.model, "image")
        if not request.prompt:
            raise invalid_request("prompt must not be empty.", "prompt")
        return await self._images(model, request, "image", "images")

    async def CreateImageEdit(self, request, context) -> routing_pb2.CreateImageEditResponse:
        model = self._model(request.model, "image")
        if not request.images or not all(image.data for image in request.images):
            raise invalid_request("image is required and must not be empty.", "image")
        if not request.prompt:
            raise invalid_request("prompt must not be empty.", "prompt")
        return await self._images(model, request, "image_edit", "image_edits")

    async def CreateImageVariation(self, request, context) -> routing_pb2.CreateImageVariationResponse:
        model = self._model(request.model, "image")
        if not request.image.data:
            raise invalid_request("image is required and must not be empty.", "image")
        return await self._images(model, request, "image_variation", "image_variations")

    async def _images(self, model: routing_pb2.Model, request, operation: str, endpoint: str):
        count = request.n if request.HasField("n") else 1
        if not 1 <= count <= 10:
            raise invalid_request("n must be between 1 and 10.", "n")
        meter = self._metering.start(call_context.current(), model, endpoint)
        await meter.admit_amount(count * model.pricing.nano_usd_per_image)
        response = await _metered(meter, self._router.call(model, operation, request))
        meter.provider = response.provider
        # Charged per image actually returned.
        response.usage.output_tokens = len(response.data)
        await meter.settle(response.usage, cost=len(response.data) * model.pricing.nano_usd_per_image)
        return response

    async def CreateTranscription(self, request, context) -> routing_pb2.CreateTranscriptionResponse:
        model = self._model(request.model, "transcription")
        if not request.file.data:
            raise invalid_request("file is required and must not be empty.", "file")
        if request.task not in _TRANSCRIPTION_TASKS:
            raise invalid_request("task must be 'transcribe' or 'translate'.", "task")
        if request.response_format not in _TRANSCRIPTION_FORMATS:
            raise invalid_request(f"response_format must be one of {', '.join(sorted(_TRANSCRIPTION_FORMATS - {''}))}.", "response_format")
        audio = request.file.data
        price = model.pricing.nano_usd_per_audio_second
        meter = self._metering.start(call_context.current(), model, "translations" if request.task == "translate" else "transcriptions")
        await meter.admit_amount(audio_length.seconds_bound(audio) * price)
        response = await _metered(meter, self._router.call(model, "transcription", request))
        meter.provider = response.provider
        seconds = response.duration or audio_length.wav_seconds(audio)
        if not seconds:
            seconds = audio_length.estimated_seconds(audio)
            response.usage.estimated = True
        response.duration = response.duration or seconds
        billed = audio_length.billed_seconds(seconds)
        response.usage.input_tokens = billed  # seconds of audio: what transcription is priced by
        response.usage.total_tokens = billed
        await meter.settle(response.usage, cost=billed * price)
        return response

    async def CreateSpeech(self, request, context) -> routing_pb2.CreateSpeechResponse:
        model = self._model(request.model, "speech")
        if not request.input:
            raise invalid_request("input must not be empty.", "input")
        if not request.voice:
            raise invalid_request("voice is required.", "voice")
        if len(request.input) > 4096:
            raise invalid_request("input must be at most 4096 characters.", "input")
        price = -(-len(request.input) * model.pricing.nano_usd_per_million_characters // 1_000_000)
        meter = self._metering.start(call_context.current(), model, "speech")
        await meter.admit_amount(price)
        response = await _metered(meter, self._router.call(model, "speech", request))
        meter.provider = response.provider
        response.usage.input_tokens = len(request.input)  # characters: what speech is priced by
        await meter.settle(response.usage, cost=price)
        return response

    def _visible(self, model: routing_pb2.Model) -> routing_pb2.Model | None:
        ctx = call_context.current()
        if not ctx.principal.may_use(model.id):
            return None
        if ctx.operator:
            return model
        shown = routing_pb2.Model()
        shown.CopyFrom(model)
        del shown.deployments[:]  # where a model runs is the operator's business
        return shown

    async def ListModels(self, request, context) -> routing_pb2.ListModelsResponse:
        shown = [m for m in map(self._visible, self._registry.all()) if m is not None]
        return routing_pb2.ListModelsResponse(object="list", data=shown)

    async def GetModel(self, request, context) -> routing_pb2.GetModelResponse:
        model = self._registry.get(request.model_id)
        shown = self._visible(model) if model is not None else None
        if shown is None:
            raise _no_model(request.model_id, "does not exist or you do not have access to it.")
        return routing_pb2.GetModelResponse(model=shown)

    async def ListProviders(self, request, context) -> routing_pb2.ListProvidersResponse:
        ctx = call_context.current()
        snapshot = await self._monitor.snapshot()
        cooling = provider_cooldowns(await self._cooldown.cooling())
        models_by_provider: dict[str, list[str]] = {name: [] for name in self._providers}
        for model in self._registry.all():
            if not ctx.principal.may_use(model.id):
                continue
            for provider in dict.fromkeys(d.provider for d in model.deployments):
                models_by_provider.setdefault(provider, []).append(model.id)
        data = []
        for name, provider in self._providers.items():
            entry = routing_pb2.Provider(name=name, kind=provider.kind, models=models_by_provider.get(name, []))
            probed = snapshot.providers.get(name)
            if name in cooling:
                # Which upstream models are cooling is where models run: the operator's business.
                entry.status = "cooling_down"
                entry.detail = cooling[name] if ctx.operator else "cooling down after repeated failures"
            elif probed is not None:
                entry.status = probed.status
                if probed.detail:
                    entry.detail = probed.detail
            data.append(entry)
        return routing_pb2.ListProvidersResponse(object="list", data=data)

    async def PutModel(self, request, context) -> routing_pb2.PutModelResponse:
        kinds = {name: p.kind for name, p in self._providers.items()}
        model = apply_defaults(request.model, self._catalogue, kinds)
        validate_model(model, self._providers)
        return routing_pb2.PutModelResponse(model=await self._registry.put(model))

    async def DeleteModel(self, request, context) -> routing_pb2.DeleteModelResponse:
        if not await self._registry.delete(request.model_id):
            raise _no_model(request.model_id, "does not exist.")
        return routing_pb2.DeleteModelResponse()


def _shown(model_id: str) -> str:
    """A model id as an error quotes it: a client's 100 KB "model" is not echoed back whole."""
    return model_id if len(model_id) <= 200 else model_id[:200] + "…"


def _no_model(model_id: str, says: str, *, field: str | None = None) -> ServiceError:
    shown = _shown(model_id)
    metadata = {"field": field, "model": shown} if field else {"model": shown}
    return ServiceError(Reason.ERROR_REASON_MODEL_NOT_FOUND, f"The model '{shown}' {says}", metadata=metadata)


def _ensure_usage(usage, prompt, output) -> None:
    """An upstream that reports no usage is billed by the documented estimate (~4 characters a
    token), and the request's log row says so (usage_estimated). prompt/output: text thunks."""
    if usage.input_tokens or usage.output_tokens:
        return
    usage.input_tokens = estimate_tokens(prompt())
    usage.output_tokens = estimate_tokens(output())
    usage.total_tokens = usage.input_tokens + usage.output_tokens
    usage.estimated = True


async def _metered(meter, call):
    """Await an upstream call; a failure (or cancellation) releases the request's hold uncharged."""
    try:
        return await call
    except BaseException as exc:
        await asyncio.shield(meter.fail(exc))
        raise


def provider_cooldowns(cooling: dict[str, float]) -> dict[str, str]:
    """Provider name -> why it is cooling down, from the deployments ("provider/model") that are."""
    out: dict[str, list[str]] = {}
    for deployment, seconds in cooling.items():
        provider, _, upstream_model = deployment.partition("/")
        out.setdefault(provider, []).append(f"{upstream_model} ({seconds:.0f}s left)")
    return {p: "cooling down after repeated failures: " + ", ".join(models) for p, models in out.items()}


async def _coalesce(chunks: AsyncIterator[chat_pb2.ChatCompletionChunk]) -> AsyncIterator[list]:
    """Batches of the chunks that are ready whenever the consumer can take more.

    Every gRPC stream message costs real CPU in Python; a fast upstream often delivers many chunks in
    one read, and they then travel as one message. A slow one still gets each chunk out at once.
    """
    ready: list = []
    wake = asyncio.Event()
    failure: list[BaseException] = []
    finished = False

    async def pump() -> None:
        nonlocal finished
        try:
            async for chunk in chunks:
                ready.append(chunk)
                wake.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            failure.append(exc)
        finally:
            finished = True
            wake.set()

    task = asyncio.create_task(pump())
    try:
        while True:
            await wake.wait()
            wake.clear()
            if ready:
                batch = ready[:]
                ready.clear()
                yield batch
            if finished and not ready:
                break
        if failure and not isinstance(failure[0], asyncio.CancelledError):
            raise failure[0]
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
