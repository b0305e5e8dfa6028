"""A minimal OpenAI-compatible server for one local causal LM: `/v1/chat/completions` and `/v1/models`.

Why: the distillation pass (and anything else that speaks the OpenAI API: the judge, the synthetic
source) must run offline in the demo, so the embedded SmolLM2 is put behind the same wire format as
api.openai.com, vLLM or llama.cpp. The real `openai` client talks to it unchanged.

What it does: renders the messages with the model's chat template, generates with `transformers`
(greedy at temperature 0, sampling otherwise; `seed` honoured), applies `stop` strings, and answers a
`chat.completion` object whose `usage` counts the prompt and generated tokens. A `response_format`
of type `json_schema` is enforced by constrained decoding (`serving.structured`), so a small model
still answers in the exact shape a caller parses; `json_object` is accepted but only asked for.
Errors use OpenAI's `{"error": {message, type, param, code}}` shape. One request generates at a time
(a lock: one model, one CPU budget). Streaming and `n > 1` are refused with a 400 rather than half-supported.

It binds 127.0.0.1 by default and refuses a non-loopback host unless an API key is required.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

LOOPBACK = ("127.0.0.1", "::1", "localhost")
DEFAULT_MAX_TOKENS = 256


class RequestError(Exception):
    """An OpenAI-shaped client error."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length


@dataclass
class LocalModel:
    """A causal LM and its tokenizer, generating one request at a time."""

    name: str
    model: Any
    tokenizer: Any
    max_tokens_limit: int = 1024  # the most new tokens a request may ask for
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path | str, name: str | None = None, **kwargs: Any) -> "LocalModel":
        from corpus_platform.training.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(path)
        model.eval()
        return cls(name=name or Path(str(path)).name, model=model, tokenizer=tokenizer, **kwargs)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int = DEFAULT_MAX_TOKENS,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 stop: list[str] | None = None, schema: dict[str, Any] | None = None) -> Generation:
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if schema is not None:
            return self._structured(text, schema, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        prompt_tokens = int(enc["input_ids"].shape[1])
        if prompt_tokens + max_tokens > self.context_length:
            raise RequestError(400, f"This model's maximum context length is {self.context_length} tokens. However, "
                                    f"you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                                    f"messages, {max_tokens} in the completion).",
                               param="messages", code="context_length_exceeded")
        eos = self.tokenizer.eos_token_id
        sample = temperature > 0
        kwargs: dict[str, Any] = dict(max_new_tokens=max_tokens, do_sample=sample, eos_token_id=eos,
                                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos)
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:  # greedy: clear the checkpoint's sampling defaults so transformers does not warn about them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**enc, **kwargs)
        new = out[0, prompt_tokens:].tolist()
        ended = bool(new) and new[-1] == eos
        if ended:
            new = new[:-1]
        completion = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = "stop" if ended or len(new) < max_tokens else "length"
        for s in stop or []:
            cut = completion.find(s)
            if s and cut >= 0:
                completion, finish = completion[:cut], "stop"
        return Generation(completion, prompt_tokens, len(new) + int(ended), finish)

    def _structured(self, prompt: str, schema: dict[str, Any], *, max_tokens: int, temperature: float, top_p: float,
                    seed: int | None) -> Generation:
        import torch

        from corpus_platform.serving.structured import SchemaDecoder, UnsupportedSchema

        prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if prompt_tokens + max_tokens > self.context_length:
            raise RequestError(400, f"This model's maximum context length is {self.context_length} tokens; the "
                                    f"messages hold {prompt_tokens}", param="messages", code="context_length_exceeded")
        decoder = SchemaDecoder(self.model, self.tokenizer, prompt, max_tokens=max_tokens, temperature=temperature,
                                top_p=top_p)
        with self._lock:
            if seed is not None:
                torch.manual_seed(seed)
            try:
                text = decoder.run(schema)
            except UnsupportedSchema as exc:
                raise RequestError(400, f"response_format.json_schema: {exc}", param="response_format") from None
        return Generation(text, prompt_tokens, decoder.used_tokens(), "length" if decoder.truncated else "stop")


def _content(message: Any, i: int) -> dict[str, str]:
    if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant"):
        raise RequestError(400, f"messages[{i}] must be an object with role system, developer, user or assistant",
                           param=f"messages[{i}]")
    content = message.get("content")
    if isinstance(content, list):  # content parts: only text is understood here
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(400, f"messages[{i}].content: only text parts are supported",
                                   param=f"messages[{i}].content")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise RequestError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content")
    role = "system" if message["role"] == "developer" else message["role"]
    return {"role": role, "content": content}


def parse_request(body: Any, model: LocalModel) -> dict[str, Any]:
    """Validate a chat-completions body into generate() arguments; RequestError says what is wrong."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object")
    if body.get("model") != model.name:
        raise RequestError(404, f"The model `{body.get('model')}` does not exist; this server serves `{model.name}`",
                           param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty array", param="messages")
    if body.get("stream"):
        raise RequestError(400, "stream=true is not supported by this server", param="stream")
    if body.get("n") not in (None, 1):
        raise RequestError(400, "only n=1 is supported by this server", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError(400, "max_tokens must be a positive integer", param="max_tokens")
    max_tokens = min(max_tokens, model.max_tokens_limit)
    temperature = body.get("temperature", 1.0)
    top_p = body.get("top_p", 1.0)
    for name, value, hi in (("temperature", temperature, 2.0), ("top_p", top_p, 1.0)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= hi:
            raise RequestError(400, f"{name} must be a number between 0 and {hi}", param=name)
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise RequestError(400, "stop must be a string or an array of strings", param="stop")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, "seed must be an integer", param="seed")
    return dict(messages=[_content(m, i) for i, m in enumerate(messages)], max_tokens=max_tokens,
                temperature=float(temperature), top_p=float(top_p) if top_p else 1.0, seed=seed, stop=stop,
                schema=_schema(body.get("response_format")))


def _schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema to enforce, from OpenAI's response_format. `text` and `json_object` are accepted and not
    enforced (the model is only asked, by the caller's prompt); `json_schema` is enforced."""
    from corpus_platform.serving.structured import UnsupportedSchema, check_schema

    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return None
    if kind != "json_schema":
        raise RequestError(400, "response_format.type must be text, json_object or json_schema", param="response_format")
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    try:
        check_schema(schema)
    except UnsupportedSchema as exc:
        raise RequestError(400, f"response_format.json_schema: {exc}", param="response_format") from None
    return schema


def completion_body(model: LocalModel, g: Generation) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": model.name, "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text, "refusal": None},
                     "logprobs": None, "finish_reason": g.finish_reason}],
        "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                  "total_tokens": g.prompt_tokens + g.completion_tokens},
    }


def create_app(model: LocalModel, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app. With `api_key`, requests need `Authorization: Bearer <api_key>`."""
    app = FastAPI(title="corpus-platform local OpenAI-compatible server", docs_url=None, redoc_url=None)
    app.state.requests = 0

    def _auth(request: Request) -> None:
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            raise RequestError(401, "Incorrect API key provided.", code="invalid_api_key")

    @app.exception_handler(RequestError)
    async def _error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model.name}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _auth(request)
        return {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0,
                                            "owned_by": "corpus-platform"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        _auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise RequestError(400, "The request body is not valid JSON") from None
        args = parse_request(body, model)
        app.state.requests += 1
        generation = await run_in_threadpool(model.generate, **args)
        return JSONResponse(completion_body(model, generation))

    return app


@dataclass
class ServerHandle:
    """A server running in a thread of this process; `base_url` ends in /v1 (what openai.OpenAI wants)."""

    host: str
    port: int
    model: LocalModel
    app: Any
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _sock: socket.socket = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> int:
        return self.app.state.requests

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_host(host: str, api_key: str | None) -> None:
    if host not in LOOPBACK and not api_key:
        raise ValueError(f"refusing to serve on {host} without an API key: use 127.0.0.1, or set one")


def serve_in_thread(model: LocalModel | Path | str, *, host: str = "127.0.0.1", port: int = 0,
                    name: str | None = None, api_key: str | None = None, start_timeout_s: float = 60.0) -> ServerHandle:
    """Load (if given a path) and serve `model` on host:port (0 = any free port) from a daemon thread."""
    import uvicorn

    _check_host(host, api_key)
    local = model if isinstance(model, LocalModel) else LocalModel.load(model, name)
    app = create_app(local, api_key=api_key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="openai-server")
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the local OpenAI-compatible server did not start on {host}:{port}")
        time.sleep(0.02)
    return ServerHandle(host, sock.getsockname()[1], local, app, server, thread, sock)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from corpus_platform.settings import Layout
    from corpus_platform.training.models import EMBEDDED_SMOLLM2, resolve_base_model

    p = argparse.ArgumentParser(prog="python -m corpus_platform.serving", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=EMBEDDED_SMOLLM2, help="embedded:smollm2 (default) or a local HF model folder")
    p.add_argument("--name", default=None, help="the model id clients send (default: the folder name)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--api-key-env", default="", help="require the key held in this environment variable")
    args = p.parse_args(argv)
    import os

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        p.error(f"--api-key-env names {args.api_key_env}, which is not set")
    _check_host(args.host, api_key)
    path = resolve_base_model(args.model, Layout.from_env().models)
    local = LocalModel.load(path, args.name)
    print(f"Serving {local.name} at http://{args.host}:{args.port}/v1 (OpenAI-compatible)", flush=True)
    uvicorn.run(create_app(local, api_key=api_key), host=args.host, port=args.port, log_level="warning")
    return 0
