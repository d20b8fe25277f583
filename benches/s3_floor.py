#!/usr/bin/env python3
"""The bare S3 requests behind a benchmark, timed inside one process (interpreter start-up
and imports excluded), to tell when the local S3 server itself is the bound.

Usage: s3_floor.py BUCKET KEY THREADS [VERSION_ID...]
  Lists the versions of KEY (boto3, paginated), then GETs every listed version (or only the
  VERSION_IDs given) on THREADS threads, reading each body whole and parsing nothing.
Prints {"list_s": ..., "get_s": ..., "objects": N, "bytes": B} on stdout.
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main():
    bucket, key, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    wanted = sys.argv[4:]
    s3 = boto3.client("s3", config=Config(max_pool_connections=max(threads, 10)))
    # One request first so connection set-up and credential resolution are not timed.
    s3.head_bucket(Bucket=bucket)

    started = time.perf_counter()
    ids = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        ids.extend(v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key)
    listed = time.perf_counter()

    def get(version_id):
        return len(s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read())

    with ThreadPoolExecutor(max_workers=threads) as pool:
        sizes = list(pool.map(get, wanted or ids))
    done = time.perf_counter()
    json.dump({"list_s": listed - started, "get_s": done - listed,
               "objects": len(sizes), "bytes": sum(sizes)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
