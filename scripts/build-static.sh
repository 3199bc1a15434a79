#!/bin/sh
# Builds usage-exporter, usage-optimizer and usage-demo into $1 (default: the current directory) as static
# binaries (CGO off, -trimpath) with their version from git, or from VERSION, REVISION and BRANCH
# when git is not there (the Docker build passes them as build arguments).
# Used by `make build`, the Dockerfile, and a test that checks the result is static.
set -eu
out=${1:-.}
cd "$(dirname "$0")/.."
git_or() { git "$@" 2>/dev/null || true; }
: "${VERSION:=$(git_or describe --tags --always --dirty)}"
: "${REVISION:=$(git_or rev-parse HEAD)}"
: "${BRANCH:=$(git_or rev-parse --abbrev-ref HEAD)}"
: "${VERSION:=dev}" "${REVISION:=unknown}" "${BRANCH:=unknown}"
pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Revision=$REVISION -X $pkg.Branch=$BRANCH
 -X $pkg.BuildUser=${BUILD_USER:-$(id -un 2>/dev/null || echo unknown)}@$(hostname 2>/dev/null || echo unknown)
 -X $pkg.BuildDate=${BUILD_DATE:-$(date -u +%Y%m%d-%H:%M:%S)}"
for cmd in usage-exporter usage-optimizer usage-demo; do
	CGO_ENABLED=0 ${GO:-go} build -trimpath -ldflags "$ldflags" -o "$out/$cmd" "./cmd/$cmd"
done
