#!/bin/bash
# The native-tool equivalent of zrb's backup pipeline (network excluded), for `bun run bench`.
# Same work as zrb: BLAKE3 of the whole stream, the stream cut into chunk files on disk,
# each chunk age-encrypted to the recipient and the ciphertext SHA-256'd, <workers> chunks
# encrypted in parallel, each plaintext chunk deleted once encrypted.
#
#   native.sh <scratch dir> <source file> <chunk bytes> <workers> <age recipient> <sha tool>
#
# <sha tool> is a command reading stdin, e.g. "sha256sum" or "openssl sha256".
# Writes <dir>/stream.b3 (b3sum of the stream) and <dir>/part-NNNNNN.sha256 per chunk.
# Disk use is not bounded here: split runs ahead of the encryptions if they are slower.
set -euo pipefail
D=$1 SRC=$2 CHUNK=$3 P=$4
export R=$5 SHA=$6
mkdir -p "$D"
mkfifo "$D/b3.fifo"
b3sum <"$D/b3.fifo" >"$D/stream.b3" &
b3=$!
# The `zfs send`-like source is `cat`; tee feeds b3sum through the fifo and split through the pipe.
# split's filter writes each chunk to disk, then prints its name; xargs encrypts <workers> at a time.
cat "$SRC" |
  tee "$D/b3.fifo" |
  split -b "$CHUNK" -a 6 -d --filter 'cat >"$FILE.tmp" && mv "$FILE.tmp" "$FILE" && echo "$FILE"' - "$D/part-" |
  xargs -P "$P" -n 1 sh -c 'age -r "$R" "$1" | $SHA >"$1.sha256" && rm -f "$1"' sh
wait "$b3"
