# Flowline build and test entry points. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build run test test-short bench fuzz lint deps clean proto

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

## test: the whole suite (unit, corpus, integration, end to end). The servers
## the integration tests need run on loopback, each of its own, started by
## its script (scripts/<server>.sh: MariaDB for outputs.mysql, RabbitMQ for
## the AMQP plugins, InfluxDB 1.8.10 (built once and cached) and
## VictoriaMetrics for outputs.influxdb) and stopped afterwards by pid, also
## when a test fails; a server that ran before is left running. Under CI=true
## every one must start. Packages run one at a time (-p 1): the end-to-end
## tests push UDP over loopback and count every flow, and two of them side by
## side on a 2-core machine would starve each other into socket drops.
SERVERS = mariadb rabbitmq influxdb victoriametrics
test: lint deps
	@started=; rc=0; \
	for s in $(SERVERS); do \
		./scripts/$$s.sh status >/dev/null 2>&1 && continue; \
		if ./scripts/$$s.sh start; then started="$$started $$s"; \
		elif [ "$$CI" = true ]; then echo "make test: $$s did not start" >&2; rc=1; break; fi; \
	done; \
	[ $$rc -ne 0 ] || { $(GO) test -p 1 -count=1 -timeout 45m ./...; rc=$$?; }; \
	for s in $$started; do ./scripts/$$s.sh stop; done; exit $$rc

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
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecords -fuzztime $(FUZZTIME) ./core/wire
	$(GO) test -run '^$$' -fuzz FuzzDecodePackets -fuzztime $(FUZZTIME) ./core/wire
	$(GO) test -run '^$$' -fuzz FuzzReadFile -fuzztime $(FUZZTIME) ./plugins/common/spool
	$(GO) test -run '^$$' -fuzz FuzzLoadTotals -fuzztime $(FUZZTIME) ./plugins/outputs/influxdb
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./plugins/common/pmacct
	$(GO) test -run '^$$' -fuzz FuzzDecodeMessage -fuzztime $(FUZZTIME) ./plugins/inputs/amqp

clean:
	rm -rf $(BIN)

## proto: regenerate internal/pluginpb from proto/flowline/plugin/v1 (needs
## protoc from Debian's protobuf-compiler; the generated code is committed).
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I proto --go_out=. --go_opt=module=github.com/flowline/flowline \
		--go-grpc_out=. --go-grpc_opt=module=github.com/flowline/flowline proto/flowline/plugin/v1/plugin.proto
