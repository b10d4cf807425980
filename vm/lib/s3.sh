# shellcheck shell=bash
# Minimal S3 client on curl --aws-sigv4, used by vm/run.sh on the host and by the
# scenarios in the guest to look at the bucket independently of zrb.
# Needs: S3_ENDPOINT (e.g. http://127.0.0.1:7480), AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1). Path-style addressing.

_s3() {
  : "${S3_ENDPOINT:?S3_ENDPOINT is not set}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
  # radosgw rejects curl's signature without an explicit payload hash header
  curl -sS --fail-with-body -m 60 --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
       --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
       -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# percent-encode everything but unreserved characters (sigv4 canonical form);
# _s3_enc_path also keeps '/'. (ASCII keys only, which is all zrb writes.)
_s3_enc() {
  local s=$1 keep=${2:-} out='' c i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case $c in [A-Za-z0-9._~-]) out+=$c ;; *) if [ "$c" = "$keep" ]; then out+=$c; else out+=$(printf '%%%02X' "'$c"); fi ;; esac
  done
  printf '%s' "$out"
}
_s3_enc_path() { _s3_enc "$1" /; }

s3_make_bucket() { _s3 -X PUT "$S3_ENDPOINT/$1" -o /dev/null || { echo "s3: cannot create bucket $1 at $S3_ENDPOINT" >&2; return 1; }; }

# s3_keys BUCKET PREFIX -> "KEY SIZE" per line, sorted by key (up to 1000 objects)
s3_keys() {
  local xml
  xml=$(_s3 "$S3_ENDPOINT/$1?list-type=2&prefix=$(_s3_enc "$2")") || { echo "s3: cannot list $1/$2" >&2; return 1; }
  if grep -q '<IsTruncated>true' <<<"$xml"; then echo "s3: listing of $1/$2 is truncated (>1000 keys)" >&2; return 1; fi
  grep -o '<Contents>.*</Contents>' <<<"$xml" | sed 's#</Contents>#\n#g' \
    | sed -n 's#.*<Key>\([^<]*\)</Key>.*<Size>\([0-9]*\)</Size>.*#\1 \2#p' | LC_ALL=C sort
}

# s3_get BUCKET KEY FILE
s3_get() { _s3 -o "$3" "$S3_ENDPOINT/$1/$(_s3_enc_path "$2")" || { echo "s3: cannot get $1/$2" >&2; return 1; }; }

# s3_put BUCKET KEY FILE
s3_put() { _s3 -T "$3" "$S3_ENDPOINT/$1/$(_s3_enc_path "$2")" -o /dev/null || { echo "s3: cannot put $1/$2" >&2; return 1; }; }

# s3_delete_bucket BUCKET: abort its multipart uploads, delete every object page by page, then
# the bucket (the rig's radosgw keeps its data in memory: a run's bucket must not outlive it)
s3_delete_bucket() {
  local xml k u
  xml=$(_s3 "$S3_ENDPOINT/$1?uploads=") || return 1
  while read -r k u; do
    [ -n "$u" ] && { _s3 -X DELETE "$S3_ENDPOINT/$1/$(_s3_enc_path "$k")?uploadId=$(_s3_enc "$u")" -o /dev/null || return 1; }
  done < <(grep -o '<Upload>.*</Upload>' <<<"$xml" | sed 's#</Upload>#\n#g' | sed -n 's#.*<Key>\([^<]*\)</Key>.*<UploadId>\([^<]*\)</UploadId>.*#\1 \2#p')
  while :; do
    xml=$(_s3 "$S3_ENDPOINT/$1?list-type=2&max-keys=1000") || return 1
    k=$(grep -o '<Key>[^<]*</Key>' <<<"$xml" | sed 's#</\?Key>##g')
    [ -n "$k" ] || break
    while IFS= read -r u; do _s3 -X DELETE "$S3_ENDPOINT/$1/$(_s3_enc_path "$u")" -o /dev/null || return 1; done <<<"$k"
  done
  _s3 -X DELETE "$S3_ENDPOINT/$1" -o /dev/null
}
