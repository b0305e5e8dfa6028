"""A local OpenAI-compatible endpoint for a causal LM on disk (the embedded SmolLM2 by default).

`serve_in_thread` runs it inside the calling process (the demo, tests); `python -m corpus_platform.serving`
runs it on its own. It listens on 127.0.0.1 only.
"""

from corpus_platform.serving.openai_server import LocalModel, ServerHandle, create_app, serve_in_thread

__all__ = ["LocalModel", "ServerHandle", "create_app", "serve_in_thread"]
