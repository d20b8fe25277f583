#!/usr/bin/env bash
# Baseline B1 for `tfrollback list`: what people script today. One `aws s3api
# list-object-versions`, then, one version after another, `aws s3api get-object --version-id`
# and `jq` to print the version's serial and outputs (sensitive values hidden).
#
# Usage: b1_list.sh BUCKET KEY [LIMIT]   (LIMIT > 0: only the newest LIMIT versions)
# Needs the aws CLI and jq on PATH and the AWS environment of the benchmark (endpoint, keys).
set -euo pipefail

bucket=$1
key=$2
limit=${3:-0}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfr-b1.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

aws s3api list-object-versions --bucket "$bucket" --prefix "$key" --output json >"$tmp/versions.json"
# A prefix listing also returns other keys that start with the state key (e.g. `.tflock`).
jq -r --arg key "$key" '.Versions // [] | .[] | select(.Key == $key) | .VersionId' \
    "$tmp/versions.json" >"$tmp/ids"
if (( limit > 0 )); then
    head -n "$limit" "$tmp/ids" >"$tmp/ids.limited"
    mv "$tmp/ids.limited" "$tmp/ids"
fi

while read -r id; do
    aws s3api get-object --bucket "$bucket" --key "$key" --version-id "$id" "$tmp/body" >/dev/null
    jq -c --arg id "$id" \
        '{version_id: $id, serial, outputs: (.outputs // {} | map_values(if .sensitive then "(sensitive)" else .value end))}' \
        "$tmp/body"
done <"$tmp/ids"
