# Two entry points (see README): `make demo` runs the main job, `make test` runs the tests.
# Both create or reuse .venv, install the pinned dependencies, and build what is missing
# (libopus releases are fetched and built once into the cache, ~/.cache/opus-dred or $OPUS_DRED_CACHE).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/opus-dred

.PHONY: demo test setup upstream clean-venv

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[test,scale]'
	touch $@

# System tools the tests use, installed only when missing: opus-tools (opusenc/opusinfo check the Ogg reader),
# chromium (the HTML report is loaded in a real headless browser), tshark (Wireshark's CLI cross-checks the RTP
# reader) and tcpdump (records the tests' loopback RTP captures); debconf is not asked (no non-root capture).
SYSPKGS := opus-tools chromium tshark tcpdump
$(VENV)/.sysdeps:
	@command -v opusenc >/dev/null && command -v opusinfo >/dev/null && command -v chromium >/dev/null && \
	  command -v tshark >/dev/null && command -v tcpdump >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSPKGS) || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSPKGS); }
	@mkdir -p $(VENV) && touch $@

setup: $(VENV)/.installed $(VENV)/.sysdeps

upstream: setup
	$(CLI) upstream build

# The main job: check the canonical vector suite (integrity and byte-identical regeneration of the expected
# values), then run it on the reference and on every libopus build; prints the pass table and the report's path.
demo: upstream
	$(CLI) upstream list
	$(CLI) vectors verify
	$(CLI) conform --impl all --fingerprint --report reports/conform

test: upstream
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
