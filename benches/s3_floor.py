#!/usr/bin/env python3
"""The bare S3 requests behind a benchmark, timed inside one process (interpreter start-up
and imports excluded), to tell when the local S3 server itself is the bound.

Usage: s3_floor.py [--range-bytes N] [--count N] BUCKET KEY THREADS [VERSION_ID...]
  Lists the versions of KEY (boto3, paginated), then GETs every listed version (or only the
  VERSION_IDs given, or only the newest --count listed) on THREADS threads, reading each
  body whole and parsing nothing. --range-bytes N reads only the first N bytes of each
  version (a ranged GET, `Range: bytes=0-(N-1)`): what reading a state's head costs.
Prints {"list_s": ..., "get_s": ..., "objects": N, "bytes": B} on stdout.
"""

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bucket")
    parser.add_argument("key")
    parser.add_argument("threads", type=int)
    parser.add_argument("version_ids", nargs="*")
    parser.add_argument("--range-bytes", type=int, default=0, help="read only the first N bytes")
    parser.add_argument("--count", type=int, default=0, help="GET only the newest N listed versions")
    args = parser.parse_args()
    bucket, key = args.bucket, args.key
    s3 = boto3.client("s3", config=Config(max_pool_connections=max(args.threads, 10)))
    # One request first so connection set-up and credential resolution are not timed.
    s3.head_bucket(Bucket=bucket)

    started = time.perf_counter()
    ids = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        ids.extend(v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key)
    listed = time.perf_counter()
    wanted = args.version_ids or (ids[:args.count] if args.count else ids)
    extra = {"Range": f"bytes=0-{args.range_bytes - 1}"} if args.range_bytes else {}

    def get(version_id):
        return len(s3.get_object(Bucket=bucket, Key=key, VersionId=version_id, **extra)["Body"].read())

    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        sizes = list(pool.map(get, wanted))
    done = time.perf_counter()
    json.dump({"list_s": listed - started, "get_s": done - listed,
               "objects": len(sizes), "bytes": sum(sizes)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
