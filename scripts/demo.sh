#!/bin/sh
# make demo: demo traffic, the exporter, the optimizer and, when the prometheus binary is
# installed (make deps), a real Prometheus with the repository's prometheus.yml and rules, on local
# ports, with all state under .demo/. Prints the URLs; Ctrl-C stops everything.
# The same wiring is tested in Go (internal/demo, TestDemoEndToEnd).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)/.demo
mkdir -p "$root/logs" "$root/state" "$root/prometheus/rules"
trap 'trap - INT TERM EXIT; kill 0 2>/dev/null; wait 2>/dev/null; echo; echo "demo stopped (state in .demo/; rm -rf .demo to start over)"' INT TERM EXIT

./usage-demo --dir="$root/logs" --litellm.listen-address=127.0.0.1:4000 --backfill=2h &
sleep 1
(cd "$root" && exec "$root/../usage-exporter" --config.file="$root/../examples/demo/usage-exporter.yml" \
	--state.dir="$root/state" --litellm.url=http://127.0.0.1:4000 --log.start=beginning \
	--web.listen-address=127.0.0.1:9816) &

if command -v prometheus >/dev/null 2>&1; then
	sed -e 's/usage-exporter:9816/127.0.0.1:9816/; s/usage-optimizer:9817/127.0.0.1:9817/' \
		-e 's/litellm:4000/127.0.0.1:4000/; s/alertmanager:9093/127.0.0.1:9093/' \
		prometheus/prometheus.yml >"$root/prometheus/prometheus.yml"
	cp prometheus/rules/*.yml "$root/prometheus/rules/"
	prometheus --config.file="$root/prometheus/prometheus.yml" --storage.tsdb.path="$root/prometheus/data" \
		--web.listen-address=127.0.0.1:9090 --log.level=warn &
	source=--prometheus.url=http://127.0.0.1:9090
	prom="  Prometheus      http://127.0.0.1:9090  (rules and alerts: /rules, /alerts)"
else
	source=--exporter.url=http://127.0.0.1:9816/metrics
	prom="  (no prometheus binary: make deps installs it; the optimizer reads the exporter)"
fi
./usage-optimizer --config.file=examples/usage-optimizer.yml "$source" --analysis.interval=30s \
	--web.listen-address=127.0.0.1:9817 &

cat <<MSG

usage-exporter demo (Ctrl-C stops it):
  exporter        http://127.0.0.1:9816/metrics
  optimizer       http://127.0.0.1:9817/api/v1/analytics/usage/optimization?days=1
  demo LiteLLM    http://127.0.0.1:4000/metrics
$prom
Grafana runs with docker-compose only (docker-compose up -d).
MSG
wait
