#!/usr/bin/env python3
"""Ask a local S3 server the questions tfrollback depends on and show its raw answers.

Usage: probe-s3-server.py --endpoint http://127.0.0.1:PORT [--raw FILE.json] [--only NAME...]

Runs a fixed list of S3 (and STS) calls through boto3 against a fresh bucket, and prints a
Markdown table: for each call, the HTTP status, the XML root element of the body with its
namespace, the headers that matter, and whether that differs from what AWS documents.
botocore's parser ignores the root element, so the raw body is captured from the
`after-call` event, before any parsing. --raw writes every exchange (request headers,
response headers and body) to a JSON file. Only loopback endpoints are accepted.

Meant for comparing moto (scripts/moto-server.py, with or without --stock) and LocalStack
(scripts/localstack-server.py); needs boto3 (moto[server] brings it).
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
BIG = 600_000  # above LocalStack's 512 KiB in-memory limit, so its body lives in a file
SMALL_BODY = b"0123456789"
HEADERS_SHOWN = (
    "content-range", "content-length", "etag", "x-amz-version-id", "x-amz-delete-marker",
    "x-amz-checksum-sha256", "x-amz-copy-source-version-id", "x-amz-server-side-encryption",
    "allow", "last-modified",
)


class Recorder:
    """Keeps the raw HTTP exchange of the last call of each client."""

    def __init__(self):
        self.last = None

    def request(self, request, **_):
        self.pending = {
            "method": request.method,
            "url": request.url,
            "request_headers": {k: (v.decode() if isinstance(v, bytes) else v)
                                for k, v in request.headers.items()
                                if k.lower() != "authorization"},
        }

    def response(self, http_response, **_):
        exchange = dict(getattr(self, "pending", {}))
        exchange["status"] = http_response.status_code
        exchange["headers"] = {k.lower(): v for k, v in http_response.headers.items()}
        exchange["body"] = http_response.content
        self.last = exchange


def xml_root(body):
    """('Name', 'namespace' or '') of an XML body, or None when it is empty or not XML."""
    if not body or not body.lstrip().startswith(b"<"):
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ("(unparsable XML)", "")
    if root.tag.startswith("{"):
        ns, name = root.tag[1:].split("}", 1)
        return (name, ns)
    return (root.tag, "")


def error_code(body):
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, TypeError):
        return None
    for element in root.iter():
        if element.tag.split("}")[-1] == "Code":
            return element.text
    return None


class Probe:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        config = Config(
            retries={"total_max_attempts": 1},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        self.recorder = Recorder()
        self.s3 = session.client("s3", endpoint_url=endpoint, config=config)
        self.sts = session.client("sts", endpoint_url=endpoint, config=config)
        for client in (self.s3, self.sts):
            client.meta.events.register("before-send", self.recorder.request)
            client.meta.events.register("after-call", self.recorder.response)
        self.rows = []
        self.exchanges = []
        self.bucket = f"tfr-probe-{uuid.uuid4().hex[:12]}"

    def call(self, name, aws, client, operation, headers=None, **params):
        """Run one call; record its raw answer against AWS's documented one.

        aws: (status, (root name, namespace) or None for an empty body, {header: value});
        headers: extra request headers, added before signing.
        """
        self.recorder.last = None
        parsed, error = None, None

        def add_headers(request, **_):
            for header, value in headers.items():
                request.headers[header] = value

        event = f"before-sign.{client.meta.service_model.service_id.hyphenize()}"
        if headers:
            client.meta.events.register(event, add_headers)
        try:
            parsed = getattr(client, operation)(**params)
        except ClientError as failure:
            error = failure
        finally:
            if headers:
                client.meta.events.unregister(event, add_headers)
        exchange = self.recorder.last or {"status": None, "headers": {}, "body": b""}
        body = exchange["body"] or b""
        root = xml_root(body)
        want_status, want_root, want_headers = aws
        notes = []
        if exchange["status"] != want_status:
            notes.append(f"status {exchange['status']} (AWS {want_status})")
        got_name = root[0] if root else None
        want_name = want_root[0] if want_root else None
        if got_name != want_name:
            notes.append(f"root {got_name or 'empty body'} (AWS {want_name or 'empty body'})")
        elif root and want_root and root[1] != want_root[1]:
            notes.append(f"namespace {root[1] or 'none'!r} (AWS {want_root[1] or 'none'!r})")
        for header, want in (want_headers or {}).items():
            got = exchange["headers"].get(header)
            if callable(want):
                problem = want(got)
                if problem:
                    notes.append(f"{header}: {problem}")
            elif got != want:
                notes.append(f"{header}: {got!r} (AWS {want!r})")
        code = error_code(body) if exchange["status"] and exchange["status"] >= 300 else None
        row = {
            "name": name,
            "status": exchange["status"],
            "root": f"{root[0]}" + (f" xmlns={root[1]}" if root and root[1] else "") if root else "(empty)",
            "code": code,
            "headers": {h: exchange["headers"][h] for h in HEADERS_SHOWN if h in exchange["headers"]
                        and h not in ("last-modified", "content-length")},
            "differs": "; ".join(notes),
        }
        self.rows.append(row)
        shown = dict(exchange)
        shown["name"] = name
        shown["body"] = body.decode("utf-8", "replace") if xml_root(body) else f"<{len(body)} bytes>"
        self.exchanges.append(shown)
        return parsed, error, exchange

    # --- the scenario ------------------------------------------------------------------------

    def run(self, only):
        s3, b = self.s3, self.bucket
        want = lambda name: not only or any(o.lower() in name.lower() for o in only)  # noqa: E731
        s3.create_bucket(Bucket=b)
        try:
            self.scenario(s3, b, want)
        finally:
            self.cleanup()

    def scenario(self, s3, b, want):
        V = ("VersioningConfiguration", S3_NS)
        if want("GetBucketVersioning"):
            self.call("GetBucketVersioning (never enabled)", (200, V, {}), s3, "get_bucket_versioning", Bucket=b)
        self.call("PutBucketVersioning Enabled", (200, None, {}), s3, "put_bucket_versioning",
                  Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        if want("GetBucketVersioning"):
            self.call("GetBucketVersioning (Enabled)", (200, V, {}), s3, "get_bucket_versioning", Bucket=b)

        big = bytes((i * 7 + 3) % 251 for i in range(BIG))
        key, small_key = "app/terraform.tfstate", "small.txt"
        v1 = s3.put_object(Bucket=b, Key=key, Body=big)["VersionId"]
        v2 = s3.put_object(Bucket=b, Key=key, Body=big[::-1])["VersionId"]
        marker = s3.delete_object(Bucket=b, Key=key)["VersionId"]
        v3 = s3.put_object(Bucket=b, Key=key, Body=big)["VersionId"]
        s3.put_object(Bucket=b, Key=small_key, Body=SMALL_BODY)
        s3.put_object(Bucket=b, Key="gone.txt", Body=b"x")
        s3.delete_object(Bucket=b, Key="gone.txt")
        etag_v3 = s3.head_object(Bucket=b, Key=key)["ETag"]

        L = ("ListVersionsResult", S3_NS)
        if want("ListObjectVersions"):
            self.call("ListObjectVersions (all)", (200, L, {}), s3, "list_object_versions", Bucket=b)
            # 4 entries under app/ (3 versions, 1 delete marker), 2 a page: AWS needs 2 pages.
            markers = {}
            for number in range(1, 5):
                _, _, page = self.call(
                    f"ListObjectVersions Prefix=app/ MaxKeys=2, page {number}", (200, L, {}), s3,
                    "list_object_versions", Bucket=b, Prefix="app/", MaxKeys=2, **markers)
                root = ET.fromstring(page["body"])
                find = lambda tag: root.findtext(f"{{{S3_NS}}}{tag}")  # noqa: E731
                if find("IsTruncated") != "true":
                    break
                markers = {"KeyMarker": find("NextKeyMarker") or "",
                           "VersionIdMarker": find("NextVersionIdMarker") or ""}
            self.call("ListObjectVersions KeyMarker=state key, no VersionIdMarker", (200, L, {}), s3,
                      "list_object_versions", Bucket=b, KeyMarker=key)

        size = f"/{BIG}"
        if want("GetObject"):
            self.call("GetObject versionId", (200, None, {"x-amz-version-id": v1}), s3, "get_object",
                      Bucket=b, Key=key, VersionId=v1)
            self.call("GetObject versionId Range bytes=0-65535", (206, None, {
                "content-range": f"bytes 0-65535{size}", "x-amz-version-id": v2}),
                s3, "get_object", Bucket=b, Key=key, VersionId=v2, Range="bytes=0-65535")
            self.call("GetObject versionId Range bytes=-4096", (206, None, {
                "content-range": f"bytes {BIG - 4096}-{BIG - 1}{size}"}),
                s3, "get_object", Bucket=b, Key=key, VersionId=v2, Range="bytes=-4096")
            n = len(SMALL_BODY)
            self.call(f"GetObject {n}-byte object Range bytes=0-65535", (206, None, {
                "content-range": f"bytes 0-{n - 1}/{n}"}),
                s3, "get_object", Bucket=b, Key=small_key, Range="bytes=0-65535")
            self.call(f"GetObject {n}-byte object Range bytes=-4096", (206, None, {
                "content-range": f"bytes 0-{n - 1}/{n}"}),
                s3, "get_object", Bucket=b, Key=small_key, Range="bytes=-4096")
            self.call("GetObject delete marker's versionId", (405, ("Error", ""), {
                "x-amz-delete-marker": "true", "x-amz-version-id": marker}),
                s3, "get_object", Bucket=b, Key=key, VersionId=marker)
            self.call("GetObject key whose latest is a delete marker", (404, ("Error", ""), {
                "x-amz-delete-marker": "true"}), s3, "get_object", Bucket=b, Key="gone.txt")
        if want("HeadObject"):
            self.call("HeadObject", (200, None, {"x-amz-version-id": v3, "etag": etag_v3}), s3,
                      "head_object", Bucket=b, Key=key)
            self.call("HeadObject versionId", (200, None, {"x-amz-version-id": v1}), s3,
                      "head_object", Bucket=b, Key=key, VersionId=v1)
            self.call("HeadObject delete marker's versionId", (405, None, {"x-amz-delete-marker": "true"}),
                      s3, "head_object", Bucket=b, Key=key, VersionId=marker)

        E = ("Error", "")
        if want("PutObject"):
            self.call("PutObject If-None-Match: * (key exists)", (412, E, {}), s3, "put_object",
                      Bucket=b, Key=key, Body=b"{}", IfNoneMatch="*")
            self.call("PutObject If-None-Match: * (new key)", (200, None, {}), s3, "put_object",
                      Bucket=b, Key="fresh.txt", Body=b"{}", IfNoneMatch="*")
            self.call("PutObject If-Match: wrong etag", (412, E, {}), s3, "put_object",
                      Bucket=b, Key=key, Body=b"{}", IfMatch='"0123456789abcdef0123456789abcdef"')
            body = b'{"version": 4}'
            right = base64.b64encode(hashlib.sha256(body).digest()).decode()
            wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
            put, _, _ = self.call("PutObject ChecksumSHA256 right", (200, None, {"x-amz-checksum-sha256": right}),
                                  s3, "put_object", Bucket=b, Key="sum.json", Body=body, ChecksumSHA256=right)
            self.call("PutObject ChecksumSHA256 wrong", (400, E, {}), s3, "put_object",
                      Bucket=b, Key="sum.json", Body=body, ChecksumSHA256=wrong)
            self.call("PutObject ChecksumSHA256 wrong + x-amz-sdk-checksum-algorithm: SHA256", (400, E, {}),
                      s3, "put_object", Bucket=b, Key="sum.json", Body=body, ChecksumSHA256=wrong,
                      headers={"x-amz-sdk-checksum-algorithm": "SHA256"})
            self.call("GetObject ChecksumMode=ENABLED, the right put's version", (200, None, {
                "x-amz-checksum-sha256": right}), s3, "get_object", Bucket=b, Key="sum.json",
                VersionId=(put or {}).get("VersionId", "null"), ChecksumMode="ENABLED")
            self.call("GetObject ChecksumMode=ENABLED, latest (AWS: still the right put)", (200, None, {
                "x-amz-checksum-sha256": right}), s3, "get_object", Bucket=b, Key="sum.json",
                ChecksumMode="ENABLED")
            wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
            self.call("PutObject Content-MD5 wrong", (400, E, {}), s3, "put_object",
                      Bucket=b, Key="md5.json", Body=body, ContentMD5=wrong_md5)
        if want("CopyObject"):
            source = {"Bucket": b, "Key": key, "VersionId": v1}
            C = ("CopyObjectResult", S3_NS)
            self.call("CopyObject versionId CopySourceIfMatch right", (200, C, {
                "x-amz-copy-source-version-id": v1}), s3, "copy_object", Bucket=b, Key="copy.json",
                CopySource=source, CopySourceIfMatch=s3.head_object(Bucket=b, Key=key, VersionId=v1)["ETag"])
            self.call("CopyObject CopySourceIfMatch wrong", (412, E, {}), s3, "copy_object",
                      Bucket=b, Key="copy.json", CopySource=source,
                      CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
            self.call("CopyObject CopySourceIfNoneMatch = its etag", (412, E, {}), s3, "copy_object",
                      Bucket=b, Key="copy.json", CopySource=source,
                      CopySourceIfNoneMatch=s3.head_object(Bucket=b, Key=key, VersionId=v1)["ETag"])
            # AWS refuses a copy onto itself only when no source version is named.
            self.call("CopyObject older versionId onto its own key (a restore)", (200, C, {
                "x-amz-copy-source-version-id": v1}), s3, "copy_object", Bucket=b, Key=key,
                CopySource=source)
            self.call("CopyObject older versionId onto its own key, MetadataDirective=REPLACE", (200, C, {
                "x-amz-copy-source-version-id": v1}), s3, "copy_object", Bucket=b, Key=key,
                CopySource=source, MetadataDirective="REPLACE", ContentType="application/json")
            self.call("CopyObject onto its own key, no versionId", (400, E, {}), s3, "copy_object",
                      Bucket=b, Key=key, CopySource={"Bucket": b, "Key": key})
            copy_input = s3.meta.service_model.operation_model("CopyObject").input_shape.members
            if "IfMatch" in copy_input:  # conditions on the destination: newer botocore only
                self.call("CopyObject If-Match (destination) wrong", (412, E, {}), s3, "copy_object",
                          Bucket=b, Key="copy.json", CopySource=source,
                          IfMatch='"0123456789abcdef0123456789abcdef"')

        T = ("Tagging", S3_NS)
        if want("Tagging"):
            self.call("PutObjectTagging versionId", (200, None, {"x-amz-version-id": v1}), s3,
                      "put_object_tagging", Bucket=b, Key=key, VersionId=v1,
                      Tagging={"TagSet": [{"Key": "tfrollback", "Value": "kept"}]})
            self.call("GetObjectTagging versionId", (200, T, {"x-amz-version-id": v1}), s3,
                      "get_object_tagging", Bucket=b, Key=key, VersionId=v1)
            self.call("GetObjectTagging versionId (no tags)", (200, T, {"x-amz-version-id": v2}), s3,
                      "get_object_tagging", Bucket=b, Key=key, VersionId=v2)
            self.call("GetBucketTagging (no tags)", (404, E, {}), s3, "get_bucket_tagging", Bucket=b)
            s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "team", "Value": "infra"}]})
            self.call("GetBucketTagging (tagged)", (200, T, {}), s3, "get_bucket_tagging", Bucket=b)
        A = ("AccessControlPolicy", S3_NS)
        if want("Acl"):
            self.call("GetBucketAcl", (200, A, {}), s3, "get_bucket_acl", Bucket=b)
            self.call("GetObjectAcl versionId", (200, A, {}), s3,
                      "get_object_acl", Bucket=b, Key=key, VersionId=v1)
        if want("Lifecycle"):
            self.call("GetBucketLifecycleConfiguration (no rules)", (404, E, {}), s3,
                      "get_bucket_lifecycle_configuration", Bucket=b)
            s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [{
                "ID": "expire-old-states", "Status": "Enabled", "Filter": {"Prefix": "app/"},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]})
            self.call("GetBucketLifecycleConfiguration (one rule)", (200, ("LifecycleConfiguration", S3_NS), {}),
                      s3, "get_bucket_lifecycle_configuration", Bucket=b)
        S = ("ServerSideEncryptionConfiguration", S3_NS)
        if want("Encryption"):
            # AWS has encrypted every bucket with SSE-S3 by default since January 2023.
            self.call("GetBucketEncryption (default)", (200, S, {}), s3, "get_bucket_encryption", Bucket=b)
            s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
            self.call("GetBucketEncryption (aws:kms set)", (200, S, {}), s3, "get_bucket_encryption", Bucket=b)
        if want("extra"):
            self.extras(s3, b, key)
        if want("GetCallerIdentity"):
            self.call("STS GetCallerIdentity", (200, ("GetCallerIdentityResponse", STS_NS), {}),
                      self.sts, "get_caller_identity")

    def extras(self, s3, b, key):
        """Other reads and writes whose XML answer an SDK parses, to find other root names."""
        self.call("extra: ListBuckets", (200, ("ListAllMyBucketsResult", S3_NS), {}), s3, "list_buckets")
        self.call("extra: ListObjectsV2", (200, ("ListBucketResult", S3_NS), {}), s3, "list_objects_v2",
                  Bucket=b, Prefix="app/")
        self.call("extra: GetBucketLocation", (200, ("LocationConstraint", S3_NS), {}), s3,
                  "get_bucket_location", Bucket=b)
        _, _, created = self.call("extra: CreateMultipartUpload", (200, ("InitiateMultipartUploadResult", S3_NS), {}),
                                  s3, "create_multipart_upload", Bucket=b, Key="multi.bin")
        upload = ET.fromstring(created["body"]).findtext(f"{{{S3_NS}}}UploadId")
        part = s3.upload_part(Bucket=b, Key="multi.bin", UploadId=upload, PartNumber=1, Body=b"p" * 1024)
        self.call("extra: ListParts", (200, ("ListPartsResult", S3_NS), {}), s3, "list_parts",
                  Bucket=b, Key="multi.bin", UploadId=upload)
        self.call("extra: CompleteMultipartUpload", (200, ("CompleteMultipartUploadResult", S3_NS), {}), s3,
                  "complete_multipart_upload", Bucket=b, Key="multi.bin", UploadId=upload,
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.call("extra: GetObjectAttributes", (200, ("GetObjectAttributesResponse", S3_NS), {}), s3,
                  "get_object_attributes", Bucket=b, Key=key, ObjectAttributes=["ETag", "ObjectSize"])
        self.call("extra: DeleteObjects", (200, ("DeleteResult", S3_NS), {}), s3, "delete_objects",
                  Bucket=b, Delete={"Objects": [{"Key": "multi.bin"}]})

    def cleanup(self):
        """Delete every version, marker and the bucket (bounded: 20 pages)."""
        s3, b = self.s3, self.bucket
        try:
            for _ in range(20):
                page = s3.list_object_versions(Bucket=b)
                items = page.get("Versions", []) + page.get("DeleteMarkers", [])
                for item in items:
                    s3.delete_object(Bucket=b, Key=item["Key"], VersionId=item["VersionId"])
                if not page.get("IsTruncated") and not items:
                    break
            s3.delete_bucket(Bucket=b)
        except ClientError as error:
            print(f"probe: could not remove bucket {b}: {error}", file=sys.stderr)


def markdown(rows):
    lines = ["| call | status | XML root (namespace) | error code | headers | differs from AWS |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        headers = ", ".join(f"{k}: {v}" for k, v in row["headers"].items())
        lines.append(f"| {row['name']} | {row['status']} | {row['root']} | {row['code'] or ''} "
                     f"| {headers} | {row['differs'] or 'no'} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--raw", help="write every raw exchange to this JSON file")
    parser.add_argument("--only", nargs="*", default=[], help="only calls whose name contains one of these")
    args = parser.parse_args()
    host = urllib.parse.urlparse(args.endpoint).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        parser.error("only loopback endpoints (127.0.0.0/8, localhost, ::1) are probed")

    probe = Probe(args.endpoint)
    started = time.monotonic()
    probe.run(args.only)
    print(markdown(probe.rows))
    print(f"\n{len(probe.rows)} calls in {time.monotonic() - started:.1f} s against {args.endpoint}",
          file=sys.stderr)
    if args.raw:
        with open(args.raw, "w") as out:
            json.dump(probe.exchanges, out, indent=1, default=str)


if __name__ == "__main__":
    main()
