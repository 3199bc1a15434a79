# One small image with the commands: usage-exporter (the entry point), usage-optimizer
# (docker run --entrypoint /usr/local/bin/usage-optimizer ...) and usage-demo (demo traffic, for
# docker-compose.yml only). Static binaries, non-root.
# The build step is scripts/build-static.sh, which CI runs as is (docker build cannot run there)
# and checks that its output is static.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
RUN VERSION="$VERSION" REVISION="$REVISION" BRANCH="$BRANCH" BUILD_USER=docker ./scripts/build-static.sh /out \
 && mkdir -p /dirs/var/lib/usage-exporter /dirs/demo/logs

FROM busybox:1.37.0-musl AS busybox

FROM gcr.io/distroless/static-debian12:nonroot
# busybox is static (musl); named wget, it is wget: the compose file's healthchecks use it.
COPY --from=busybox /bin/busybox /usr/local/bin/wget
COPY --from=build /out/usage-exporter /out/usage-optimizer /out/usage-demo /usr/local/bin/
# Directories the named volumes start from, owned by the image's user (distroless has no shell).
COPY --from=build --chown=65532:65532 /dirs/ /
COPY examples /usr/share/usage-exporter/examples
USER nonroot:nonroot
WORKDIR /var/lib/usage-exporter
EXPOSE 9816 9817
ENTRYPOINT ["/usr/local/bin/usage-exporter"]
CMD ["--state.dir=/var/lib/usage-exporter"]
