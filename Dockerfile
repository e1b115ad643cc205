# syntax=docker/dockerfile:1
# Build: docker build -t p2pd --build-arg COMMIT=$(git rev-parse HEAD) --build-arg VERSION=0.1.0 .
# Run:   docker run -v p2pd-repo:/data -p 4001:4001/tcp -p 4001:4001/udp p2pd
# (.git stays out of the build context, so the commit comes in as an argument;
# `docker run p2pd version` shows both.)
FROM golang:1.26-bookworm AS build
ARG VERSION=
ARG COMMIT=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN set -e; pkg=github.com/p2pd/p2pd/version; ld="-s -w"; \
    if [ -n "$VERSION" ]; then ld="$ld -X $pkg.Version=$VERSION"; fi; \
    if [ -n "$COMMIT" ]; then ld="$ld -X $pkg.Commit=$COMMIT"; fi; \
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o /out/p2pd ./cmd/p2pd && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/p2pd /usr/local/bin/p2pd
# An empty, nonroot-owned /data so a fresh named volume is writable (mode 0700 is set by p2pd).
COPY --from=build --chown=65532:65532 /out/data /data
# The repo (identity, token, tunnels) lives on a volume so the peer ID survives
# container restarts.
ENV P2PD_REPO=/data
VOLUME ["/data"]
EXPOSE 4001/tcp 4001/udp
USER nonroot:nonroot
# The API listens on loopback inside the container; use `docker exec <c> p2pd ...`.
ENTRYPOINT ["/usr/local/bin/p2pd"]
CMD ["daemon"]
