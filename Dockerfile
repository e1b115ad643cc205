# syntax=docker/dockerfile:1
# Build: docker build -t p2pd .
# Run:   docker run -v p2pd-repo:/data -p 4001:4001/tcp -p 4001:4001/udp p2pd
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/p2pd ./cmd/p2pd && mkdir -p /out/data

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
