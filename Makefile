# usage-exporter: `make run` runs the exporter on the sample logs, `make test` runs every test.
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
FUZZTIME    ?= 10s
BENCH_DATA  := bench/data
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run run-optimizer test deps lint unit fuzz fuzz-long bench bench-harness bench-scale bench-history dashboards manifests demo clean

all: build

# Static binaries with their version from git (scripts/build-static.sh, as the Dockerfile builds them).
build:
	GO=$(GO) ./scripts/build-static.sh .

# The exporter on the sample logs shipped in examples/: http://localhost:9816/metrics
run: build
	./usage-exporter --config.file=examples/usage-exporter.yml --state.dir=.state --log.start=beginning

# Demo traffic, the exporter, the optimizer and Prometheus (when installed) on local ports, state in
# .demo/: scripts/demo.sh prints the URLs; Ctrl-C stops it all.
demo: build
	./scripts/demo.sh

# The optimizer reading the exporter of `make run` (start that first): http://localhost:9817/
run-optimizer: build
	./usage-optimizer --config.file=examples/usage-optimizer.yml --exporter.url=http://localhost:9816/metrics

# Every test: lint, unit and integration tests (race detector on), and a short fuzz run per parser.
test: deps lint unit fuzz

# grafana/dashboards/*.json from grafana/*.go (committed; a test fails when they differ).
# 90 days of 1,000 users backfilled into a real Prometheus, then the optimizer's 90-day window
# through it, raw and with the recording rules (docs/benchmarks.md).
bench-history: build deps
	$(GO) run ./bench/history -exporter ./usage-exporter -dir $(BENCH_DATA)/history

dashboards:
	cd grafana && $(GO) generate ./...
	$(MAKE) manifests

# deploy/kubernetes from prometheus/rules and grafana/dashboards (committed; a test fails when they differ).
manifests:
	cd deploy && $(GO) generate ./...

# System packages the integration tests start for real.
deps:
	@missing=""; \
	for c in prometheus:prometheus promtool:prometheus redis-server:redis-server docker-compose:docker-compose; do \
		command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c##*:}"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...
	# Allocation guards run without -race, whose sync.Pool drops items on purpose.
	$(GO) test -count=1 -run 'NoAllocation' ./exporter/

# Seed corpora live in testdata/fuzz; FUZZTIME=10m make fuzz-long for a longer run.
fuzz:
	$(GO) test ./exporter/logparse -run '^$$' -fuzz '^FuzzParseJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/logparse -run '^$$' -fuzz '^FuzzParseNginx$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/litellm -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/litellm -run '^$$' -fuzz '^FuzzScannerMatchesExpfmt$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/litellm -run '^$$' -fuzz '^FuzzProcessesUnmarshal$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/series -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME)
	$(GO) test ./exporter/rollup -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)

fuzz-long:
	$(MAKE) fuzz FUZZTIME=10m

# The anchors' 1,000,000-line nginx file (sha256 4d6351a5...) and its JSON twin.
$(BENCH_DATA)/access-1m.log:
	mkdir -p $(BENCH_DATA)
	python3 bench/gen_nginx_log.py --lines 1000000 --seed 42 -o $@
$(BENCH_DATA)/access-1m.json.log:
	mkdir -p $(BENCH_DATA)
	python3 bench/gen_nginx_log.py --lines 1000000 --seed 42 --format json -o $@

# Go benchmarks: per-line cost and allocations, the end-to-end backlog path
# (file -> tailer -> parse -> series) on the 1M-line files, a 10k-user scrape.
bench: $(BENCH_DATA)/access-1m.log $(BENCH_DATA)/access-1m.json.log
	$(GO) test ./exporter/logparse ./exporter/classify ./exporter/dedup -run '^$$' -bench . -benchmem -count 3
	$(GO) test ./exporter/litellm -run '^$$' -bench . -benchmem -benchtime 3x
	$(GO) test ./exporter -run '^$$' -bench 'IngestLine|Scrape' -benchmem -count 3
	$(GO) test ./optimizer -run '^$$' -bench . -benchmem -count 3
	USAGE_BENCH_NGINX=$(CURDIR)/$(BENCH_DATA)/access-1m.log USAGE_BENCH_JSON=$(CURDIR)/$(BENCH_DATA)/access-1m.json.log \
		$(GO) test ./exporter -run '^$$' -bench 'Backlog|Follow' -benchtime 3x -count 3

# The anchors' harness (ANCHORS.md "append" mode) on the built binary.
bench-harness: build $(BENCH_DATA)/access-1m.log
	rm -rf $(BENCH_DATA)/run $(BENCH_DATA)/state
	bash bench/consume_rate.sh -s $(BENCH_DATA)/access-1m.log -l $(CURDIR)/$(BENCH_DATA)/run/access.log \
		-u http://127.0.0.1:19816/metrics -m usage_requests_total -e 1000000 -r 7 -n usage-exporter -- \
		$(CURDIR)/usage-exporter --log.path=$(CURDIR)/$(BENCH_DATA)/run/access.log --log.format=nginx --log.start=end \
		--state.dir=$(CURDIR)/$(BENCH_DATA)/state --web.listen-address=127.0.0.1:19816

# The built binaries at 1,000, 10,000 and 50,000 users (500,000 JSON lines each): series, scrape
# time and size, RSS, the state file, the optimizer's overview (docs/benchmarks.md).
bench-scale: build
	$(GO) run ./bench/scale -exporter ./usage-exporter -optimizer ./usage-optimizer -dir $(BENCH_DATA)/scale

clean:
	rm -rf usage-exporter usage-optimizer usage-demo .state .demo $(BENCH_DATA)
