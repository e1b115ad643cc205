#!/usr/bin/env bash
# build.sh builds kubo's `ipfs` binary for the benchmark's kubo path
# (`go run ./bench -kubo PATH`), from the Go module proxy only.
#
# `go install github.com/ipfs/kubo/cmd/ipfs@v0.43.1` is refused: kubo's go.mod
# replaces go-libp2p with a fork the proxy does not serve. The module's source
# is still downloadable, so this script copies it, drops that replace line,
# pins the released go-libp2p v0.50.0 and builds with -mod=mod. It takes
# 10-20 minutes on two busy cores.
#
# Usage: bench/kubo/build.sh [OUTPUT]   (default /work/kubo-bin/ipfs)
# The binary is written outside the repository; never commit it.
set -euo pipefail

KUBO_VERSION=${KUBO_VERSION:-v0.43.1}
LIBP2P_VERSION=${LIBP2P_VERSION:-v0.50.0}
OUT=${1:-/work/kubo-bin/ipfs}

dir=$(go mod download -json "github.com/ipfs/kubo@${KUBO_VERSION}" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z "$dir" || ! -d "$dir" ]]; then
	echo "build.sh: go mod download gave no source directory for kubo ${KUBO_VERSION}" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/kubo"
chmod -R u+w "$work/kubo"
cd "$work/kubo"

# Drop the replace of go-libp2p (a fork the proxy does not serve) and pin the release.
go mod edit -dropreplace=github.com/libp2p/go-libp2p
go mod edit -require="github.com/libp2p/go-libp2p@${LIBP2P_VERSION}"

mkdir -p "$(dirname "$OUT")"
GOFLAGS=-mod=mod nice -n 10 go build -mod=mod -trimpath -o "$OUT" ./cmd/ipfs
"$OUT" version
echo "build.sh: kubo ${KUBO_VERSION} (go-libp2p ${LIBP2P_VERSION}) at $OUT"
