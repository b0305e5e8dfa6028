import sys

from corpus_platform.serving.openai_server import main

sys.exit(main())
