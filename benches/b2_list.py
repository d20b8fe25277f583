#!/usr/bin/env python3
"""Baseline B2 for `tfrollback list`: the strongest simple alternative.

One Python process: list the versions of the state key with boto3, then download every
version whole on a 16-thread pool and parse it with `json` to print its serial and outputs
(sensitive values hidden), newest first, as one JSON document.

Usage: b2_list.py BUCKET KEY [LIMIT]   (LIMIT > 0: only the newest LIMIT versions)
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

THREADS = 16


def version_ids(s3, bucket, key):
    ids = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
    for page in pages:
        ids.extend(v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key)
    return ids


def main():
    bucket, key = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    s3 = boto3.client("s3", config=Config(max_pool_connections=THREADS))
    ids = version_ids(s3, bucket, key)
    if limit > 0:
        ids = ids[:limit]

    def summary(version_id):
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
        state = json.loads(body)
        outputs = {
            name: "(sensitive)" if out.get("sensitive") else out.get("value")
            for name, out in (state.get("outputs") or {}).items()
        }
        return {"version_id": version_id, "serial": state.get("serial"), "outputs": outputs}

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        versions = list(pool.map(summary, ids))
    json.dump({"versions": versions}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
