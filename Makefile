# Flowline build and test entry points. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build run test test-short bench fuzz lint deps clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/flowline ./cmd/flowline
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/flowgen ./cmd/flowgen

## run: the collector on its embedded default config (UDP 9995, no external server).
run: build
	./$(BIN)/flowline run

## deps: the system packages the integration tests use (pmacct for the drop-in check).
deps:
	./scripts/deps.sh

## test: the whole suite (unit, corpus, integration, end to end). A MariaDB of
## its own (scripts/mariadb.sh) runs on loopback for the MySQL tests and is
## stopped afterwards, also when a test fails (unless it ran before); so does
## a RabbitMQ broker of its own (scripts/rabbitmq.sh) for the AMQP tests. Under
## CI=true both must start. Packages run one at a time (-p 1): the end-to-end
## tests push UDP over loopback and count every flow, and two of them side by
## side on a 2-core machine would starve each other into socket drops.
test: lint deps
	@ran=$$(./scripts/mariadb.sh status >/dev/null 2>&1 && echo yes); \
	rmq=$$(./scripts/rabbitmq.sh status >/dev/null 2>&1 && echo yes); \
	./scripts/mariadb.sh start || [ "$$CI" != true ] || exit 1; \
	./scripts/rabbitmq.sh start || [ "$$CI" != true ] || { [ -n "$$ran" ] || ./scripts/mariadb.sh stop; exit 1; }; \
	$(GO) test -p 1 -count=1 -timeout 45m ./...; rc=$$?; \
	[ -n "$$rmq" ] || ./scripts/rabbitmq.sh stop; \
	[ -n "$$ran" ] || ./scripts/mariadb.sh stop; exit $$rc

## test-short: the quick loop (skips integration and end-to-end tests).
test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeV5 -fuzztime $(FUZZTIME) ./plugins/common/netflow
	$(GO) test -run '^$$' -fuzz FuzzDecodeV9 -fuzztime $(FUZZTIME) ./plugins/common/netflow
	$(GO) test -run '^$$' -fuzz FuzzDecodeIPFIX -fuzztime $(FUZZTIME) ./plugins/common/netflow

clean:
	rm -rf $(BIN)
