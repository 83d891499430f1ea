# Schulhof developer commands. Quick start: `make serve` (demo school), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: install serve demo test test-sqlite test-postgres lint bench-import postgres clean-demo \
        node-deps browser peers synapse webmail-catalog admin-catalog properties fuzz fuzz-smoke \
        soak

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# A demo school in ./demo with the example pupils, teachers and parents.
$(DEMO)/schulhof.toml: | install
	$(BIN)/schulhof init $(DEMO) --domain schule.example --name "Demo-Schule"
	$(BIN)/schulhof --config $(DEMO)/schulhof.toml import conf/examples/demo-school.csv \
	    --passwords-out $(DEMO)/initial-passwords.csv
	@echo "initial passwords: $(DEMO)/initial-passwords.csv"

demo: $(DEMO)/schulhof.toml

serve: demo
	$(BIN)/schulhof --config $(DEMO)/schulhof.toml serve

clean-demo:
	rm -rf $(DEMO)

# mypy checks these packages (settings in pyproject.toml): all of them.
MYPY_TARGETS := directory federation conf mailserver messenger

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(MYPY_TARGETS)

# PostgreSQL for the second half of the suite (started if it is installed but down).
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@pg_isready -h 127.0.0.1 -p 5432

# matrix-js-sdk (Element Web's engine) for tests/e2e/test_matrix_js_sdk.py, from the registry.
node-deps:
	cd tests/node && npm ci --no-audit --no-fund

# The browser tests (tests/browser) drive Debian's Chromium through Playwright
# (never Playwright's own browser download).  As root (CI) a missing Chromium
# is installed with apt and the browser tests must run; otherwise they skip
# with a message when there is no Chromium.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
	    apt-get update && apt-get install -y chromium; fi
	@[ -x /usr/bin/chromium ] || echo "no /usr/bin/chromium: the browser tests will skip"
	@# pdftotext reads the password letters back (tests/conf/test_letters.py).
	@if [ ! -x /usr/bin/pdftotext ] && [ "$$(id -u)" = 0 ]; then \
	    apt-get update && apt-get install -y poppler-utils; fi

REQUIRE_BROWSER := $(shell [ "$$(id -u)" = 0 ] && echo 1)

# The real components other tests talk to, from Debian (as root, as in CI): rspamd for
# the spam-filter tests (tests/e2e/test_spam.py), pdftotext (poppler-utils) to read the
# password letters back, redis-server for rspamd's own statistics, clamd (clamav-daemon)
# for the virus test, dovecot for the IMAP comparison.  Without root they
# skip with a message when missing.
PEER_PACKAGES := rspamd:rspamd pdftotext:poppler-utils redis-server:redis-server clamd:clamav-daemon \
    dovecot:dovecot-imapd
peers:
	@if [ "$$(id -u)" = 0 ]; then missing=""; \
	    for pair in $(PEER_PACKAGES); do command -v $${pair%%:*} >/dev/null || \
	        missing="$$missing $${pair#*:}"; done; \
	    if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi; fi

# Synapse from PyPI for the interop tests (tests/e2e/matrix_synapse, root only), installed
# once into ~/.cache/schulhof before pytest starts, so no test waits out its timeout on pip.
synapse: install
	@if [ "$$(id -u)" = 0 ]; then \
	    $(BIN)/python -c "from tests.support.synapse import ensure_synapse; print(ensure_synapse())"; fi

test-sqlite: install node-deps browser peers synapse
	SCHULHOF_REQUIRE_BROWSER=$(REQUIRE_BROWSER) $(BIN)/pytest -n 2 --dist loadgroup -q

test-postgres: install postgres node-deps browser peers synapse
	SCHULHOF_REQUIRE_BROWSER=$(REQUIRE_BROWSER) SCHULHOF_TEST_DATABASE_URL=$(PG_URL) \
	    $(BIN)/pytest -n 2 --dist loadgroup -q

# The whole suite, on both storage backends, plus lint, plus a 60-second fuzz smoke.
test: lint node-deps test-sqlite test-postgres fuzz-smoke

# The property tests (hypothesis; pytest marks them `hypothesis`) with all their
# examples: the thorough profile (tests/support/properties.py).  `make test` runs
# a quarter of the examples of each.
properties: install
	HYPOTHESIS_PROFILE=thorough $(BIN)/pytest -n 2 -q -m 'hypothesis and not slow'

# Fuzzing IMAP, SMTP and Matrix of a real `schulhof serve` (tests/fuzz): FUZZ_SECONDS
# in all, split between the three; FUZZ_SEED=... replays a run (the seed is printed).
# The thorough property tests (`make properties`) run first.
FUZZ_SECONDS ?= 600
fuzz: install properties
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/pytest -m fuzz -n 0 -q -s tests/fuzz

fuzz-smoke: install
	FUZZ_SECONDS=60 $(BIN)/pytest -m fuzz -n 0 -q -s tests/fuzz

# kill -9 under SMTP and Matrix load, SOAK_CYCLES times; then nothing acknowledged
# may be missing or doubled (tests/soak).
SOAK_CYCLES ?= 100
soak: install
	SOAK_CYCLES=$(SOAK_CYCLES) $(BIN)/pytest -m soak -n 0 -q -s tests/soak

# The webmail's English catalog: new German texts from the code and templates are
# added to locale/en/.../messages.po (untranslated: fill in their msgstr).
WEBMAIL_PO := mailserver/webmail/locale/en/LC_MESSAGES/messages.po
# The admin pages' and password letters' English catalog (German is the source).
ADMIN_PO := conf/admin_web/locale/en/LC_MESSAGES/messages.po
admin-catalog: install
	$(BIN)/pybabel extract -F conf/admin_web/babel.cfg --no-location --sort-output \
	    --project=Schulhof -w 100 -o conf/admin_web/locale/messages.pot .
	$(BIN)/pybabel update -i conf/admin_web/locale/messages.pot \
	    -d conf/admin_web/locale -l en -w 100 --no-fuzzy-matching --ignore-obsolete
	rm conf/admin_web/locale/messages.pot

webmail-catalog: install
	$(BIN)/pybabel extract -F mailserver/webmail/babel.cfg --no-location --sort-output \
	    --project=Schulhof -w 100 -o mailserver/webmail/locale/messages.pot .
	@[ -f $(WEBMAIL_PO) ] || $(BIN)/pybabel init -i mailserver/webmail/locale/messages.pot \
	    -d mailserver/webmail/locale -l en
	$(BIN)/pybabel update -i mailserver/webmail/locale/messages.pot \
	    -d mailserver/webmail/locale -l en -w 100 --no-fuzzy-matching --ignore-obsolete
	rm mailserver/webmail/locale/messages.pot

bench-import: install
	$(BIN)/python -m tests.bench.import_school
