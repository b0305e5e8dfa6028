import sys

from corpus_platform.demo.run import main

sys.exit(main())
