# variance-sync: `make run` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIBS := var/kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.copied

.DEFAULT_GOAL := help
.PHONY: help install kafka kafka-if-possible run test unit lint bench clean clean-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install variance-sync with its dev tools

# Maven keeps what it downloads in ~/.m2: a second run downloads nothing.
$(KAFKA_STAMP): streams/devstack/kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f streams/devstack/kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	touch $@

kafka: $(KAFKA_STAMP) ## fetch Apache Kafka 4 from Maven Central into var/kafka/libs (dev --broker kafka, tests)

# `make run KAFKA_PORT=19092 SFTP_PORT=2223 DATA_DIR=/tmp/vs BROKER=kafka`
KAFKA_PORT ?= 9092
SFTP_PORT ?= 2222
DATA_DIR ?= var
BROKER ?= tansu

run: $(STAMP) ## run the embedded stack: broker, SFTP, worker and sample traffic (Ctrl-C stops)
	$(BIN)/variance-sync dev --broker $(BROKER) --kafka-port $(KAFKA_PORT) --sftp-port $(SFTP_PORT) --data-dir $(DATA_DIR)

# Three at a time: the broker and fault tiers mostly wait on real servers and processes.
TEST_WORKERS ?= 3

# Kafka's jars when Maven and Java are there; without them the Kafka tests skip, except
# under CI=true, where they fail.
kafka-if-possible:
	@if command -v mvn >/dev/null && command -v java >/dev/null; then $(MAKE) --no-print-directory kafka; \
	else echo "no mvn or java: the Apache Kafka tests will skip (see docs/kafka.md)"; fi

test: $(STAMP) kafka-if-possible ## run every test on Tansu and Apache Kafka (needs /usr/sbin/sshd, Java 17, Maven, chromium and chromedriver, prometheus)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

unit: $(STAMP) ## run the unit tests only (no servers)
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

BENCH_BROKER ?= tansu

bench: $(STAMP) ## run the benchmarks (not part of the tests); BENCH_BROKER=kafka for Apache Kafka
	BENCH_BROKER=$(BENCH_BROKER) $(BIN)/python -m bench

clean: ## remove the virtualenv, caches, build output and Kafka's jars (never data: see clean-data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info var/kafka

# Everything else under var/ is data someone may need: the seal ledger on the SFTP servers
# decides what is published again after a rebuild. So it is named, and it asks.

clean-data: ## delete var/: dev and compose SFTP data (CSVs, seal ledger), table state, simulator ledger; asks, or CONFIRM=yes
	@echo "This deletes, for good:"
	@echo "  var/sftp/          make run's SFTP folder: published CSVs and the seal ledger"
	@echo "  var/compose-sftp/  docker compose's SFTP folder: published CSVs and the seal ledger"
	@echo "  var/worker/        the worker's RocksDB table state"
	@echo "  var/netsuite-sim.sqlite and everything else under var/"
	@echo "(docker compose's volumes stay: 'docker compose down -v' removes those.)"
	@if [ "$(CONFIRM)" != yes ]; then \
		printf 'Type yes to delete them: '; read answer; [ "$$answer" = yes ] || { echo "nothing deleted"; exit 1; }; \
	fi
	rm -rf var

.PHONY: help install kafka run test unit lint bench clean clean-data
