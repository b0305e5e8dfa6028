"""`python -m corpus_platform.api` (`make api`): serve the capture API with uvicorn.

Binds 127.0.0.1:8000 unless CORPUS_API_HOST / CORPUS_API_PORT say otherwise; CORPUS_API_WORKERS sets
the number of worker processes (idempotency holds across them; rate buckets are per worker).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from corpus_platform.api.config import ApiConfig

    try:
        ApiConfig.from_env()  # fail before binding, with a message that names no secret
    except ValueError as e:
        print(f"corpus_platform.api: {e}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(
        "corpus_platform.api.app:create_app",
        factory=True,
        host=os.environ.get("CORPUS_API_HOST", "127.0.0.1"),
        port=int(os.environ.get("CORPUS_API_PORT", "8000")),
        workers=int(os.environ.get("CORPUS_API_WORKERS", "1")),
        log_level=os.environ.get("CORPUS_API_LOG_LEVEL", "info"),
        access_log=os.environ.get("CORPUS_API_ACCESS_LOG", "1") != "0",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
