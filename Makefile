# The two commands a newcomer needs: `make serve` (demo on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := $(wildcard packages/*)
STAMP := $(VENV)/.installed

.PHONY: serve test fuzz lint typecheck bench docs dist clean

$(STAMP): $(foreach p,$(PACKAGES),$(p)/pyproject.toml) requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet $(foreach p,$(PACKAGES),-e $(p))
	touch $(STAMP)

DEMO_SECRET := examples/demo/.debug-secret

serve: $(STAMP) $(DEMO_SECRET)
	$(BIN)/genro-asgi serve examples/demo

# the demo's remote debugger needs a secret: a random one, readable only by you, never committed
$(DEMO_SECRET):
	umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > $@

test: $(STAMP)
	$(BIN)/python -m pytest

# the fuzz suite at length (make test runs it with a bounded number of examples per property),
# Schemathesis against the OpenAPI documents of the demo and the openapi test site, and the
# MCP endpoint's fuzz
fuzz: $(STAMP)
	GENRO_FUZZ_PROFILE=long $(BIN)/python -m pytest tests/fuzz tests/test_openapi_demo.py \
		packages/genro-asgi-openapi/tests/test_openapi_e2e.py tests/test_mcp_fuzz.py -q

lint: $(STAMP)
	$(BIN)/ruff check packages tests bench examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py

# the docs site (MkDocs + Material, API reference by mkdocstrings) into site/; strict, so a broken
# link or a page missing from the navigation fails (never -q: it hides warnings from --strict)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# an sdist and a wheel of every package under packages/ into dist/ (each wheel built from
# its sdist), checked by twine; see RELEASING.md
dist: $(STAMP)
	rm -rf dist
	for p in $(PACKAGES); do $(BIN)/python -m build --outdir dist $$p || exit 1; done
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
