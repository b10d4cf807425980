#!/bin/bash
# The native-tool equivalents of zrb's backup pipeline (network excluded), for `bun run bench`.
# Same work as zrb: BLAKE3 of the whole stream, the stream cut into chunks on disk, each chunk
# age-encrypted to the recipient and the ciphertext SHA-256'd, each chunk deleted once done.
#
#   native.sh <scratch dir> <source file> <chunk bytes> <workers> <age recipient> <sha tool> [files|stream]
#
# files (default): split writes each plaintext chunk to a file; xargs encrypts <workers> chunks
#   at a time (`age | <sha tool>`), then deletes the chunk. Disk use is not bounded: split runs
#   ahead of the encryptions if they are slower.
# stream: encrypt while cutting: split hands each chunk straight to `age | tee <part> | <sha
#   tool>`, so the ciphertext is what goes to disk (as in zrb) and every tool of the pipe runs at
#   once in its own process; one chunk at a time (<workers> is not used).
# <sha tool> is a command reading stdin, e.g. "sha256sum" or "openssl sha256".
# Writes <dir>/stream.b3 (b3sum of the stream) and <dir>/part-NNNNNN.sha256 per chunk.
set -euo pipefail
D=$1 SRC=$2 CHUNK=$3 P=$4 MODE=${7:-files}
export R=$5 SHA=$6
mkdir -p "$D"
mkfifo "$D/b3.fifo"
b3sum <"$D/b3.fifo" >"$D/stream.b3" &
b3=$!
# The `zfs send`-like source is `cat`; tee feeds b3sum through the fifo and split through the pipe.
case $MODE in
  files)
    # split's filter writes each chunk to disk, then prints its name; xargs encrypts <workers> at a time.
    cat "$SRC" |
      tee "$D/b3.fifo" |
      split -b "$CHUNK" -a 6 -d --filter 'cat >"$FILE.tmp" && mv "$FILE.tmp" "$FILE" && echo "$FILE"' - "$D/part-" |
      xargs -P "$P" -n 1 sh -c 'age -r "$R" "$1" | $SHA >"$1.sha256" && rm -f "$1"' sh
    ;;
  stream)
    cat "$SRC" |
      tee "$D/b3.fifo" |
      split -b "$CHUNK" -a 6 -d --filter 'age -r "$R" | tee "$FILE.age" | $SHA >"$FILE.sha256" && rm -f "$FILE.age"' - "$D/part-"
    ;;
  *) echo "native.sh: unknown mode $MODE (files or stream)" >&2; exit 2 ;;
esac
wait "$b3"
