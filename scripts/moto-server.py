#!/usr/bin/env python3
"""Local AWS (S3, DynamoDB, STS) for tfrollback's tests and demo, served by moto.

Usage: moto-server.py --port PORT [--stock | --lean-listing] [--verbose]

Prints `ready PORT` on stdout once the server answers, then nothing more on stdout.
Exits by itself when its standard input reaches EOF, so whoever started it (a test
binary, the demo script) only has to keep a pipe open: when that process dies, for
any reason, the server goes with it.

By default moto is patched in one way that changes answers: a root element named
`<OperationName>Response`, which moto 5.x invents where its model names no root, is renamed
to AWS's for five S3 reads: GetBucketVersioning -> VersioningConfiguration, GetObjectTagging
and GetBucketTagging -> Tagging, GetBucketAcl and GetObjectAcl -> AccessControlPolicy.
With moto 5.2.1 only GetBucketVersioning is actually misnamed (`GetBucketVersioningResponse`);
the other four already answer with AWS's root, so their rename does nothing. moto 5.2.1 also
misnames ListParts, CompleteMultipartUpload and GetObjectAttributes, which this patch leaves
alone (scripts/probe-s3-server.py shows every root). Nothing else in the answers is touched.

--stock applies no patch at all: moto answers exactly as a user's `moto_server` does, so
the tests can also run against stock moto. It excludes --lean-listing. Only the launcher's
own behaviour (the `ready PORT` line, stdin EOF, 127.0.0.1, quieter request logging) stays.

--lean-listing replaces the deep copy that moto's ListObjectVersions makes of every
stored object (bodies included, never freed) by shallow views of the stored versions:
same answers, cost proportional to the number of versions rather than their bytes.
For benchmarks over big buckets; figures taken with it must say so.
"""

import argparse
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request

READY_TIMEOUT_SECONDS = 30


def die_on_stdin_eof():
    """Block reading stdin; at EOF (parent gone or pipe closed) end the whole process."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def listening_here(port):
    """Whether this process owns the socket listening on 127.0.0.1:port (Linux /proc).

    Guards against announcing another program's server: the port was free when the caller
    chose it, but someone may have taken it since; moto then fails to bind and exits.
    """
    try:
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.split(":")[1], 16) == port and inode in inodes:
                    return True
        return False
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # no /proc to ask: trust the answer


def announce_when_ready(port):
    """Poll GET / until our server answers, print `ready PORT`, then detach stdout."""
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
            answered = True
        except urllib.error.HTTPError:
            answered = True  # the server answered, even if not with 200
        except (urllib.error.URLError, OSError):
            answered = False
        if answered and listening_here(port):
            break
        time.sleep(0.05)
    else:
        print(f"moto-server: no answer on {url} after {READY_TIMEOUT_SECONDS} s", file=sys.stderr)
        os._exit(1)
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()
    # Nothing else may reach stdout: the reader may have stopped reading it, and a
    # full pipe would block the server.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def install_lean_listing():
    """Swap the deep copy in moto's list_object_versions for shallow per-call views.

    moto deep-copies every version (body buffer included) only because the listing
    then sets `is_latest` on the copies. A view shares the stored object's attributes
    (and its body buffer) but has its own `is_latest`; it bypasses moto's instance
    tracking (the leak) and never closes the shared buffer when collected.
    """
    import copy

    import moto.s3.models as models

    class LeanKeyView(models.FakeKey):
        # moto's model metaclass files classes by the service named in their module.
        __module__ = "moto.s3.lean_listing"

        def __del__(self):
            pass

        def dispose(self, garbage=False):
            pass

    def view(obj):
        cls = LeanKeyView if isinstance(obj, models.FakeKey) else type(obj)
        clone = object.__new__(cls)
        clone.__dict__.update(obj.__dict__)
        return clone

    class LeanCopy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(obj, memo=None):
            if isinstance(obj, list) and all(
                isinstance(v, (models.FakeKey, models.FakeDeleteMarker)) for v in obj
            ):
                return [view(v) for v in obj]
            return copy.deepcopy(obj, memo)

    def names(code):
        found = set(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                found |= names(const)
        return found

    if "deepcopy" not in names(models.S3Backend.list_object_versions.__code__):
        print("moto-server: --lean-listing: this moto's list_object_versions has no deepcopy; "
              "leaving it unpatched", file=sys.stderr)
        return
    models.copy = LeanCopy()


def fix_rest_xml_roots():
    """Give S3 responses AWS's XML root elements where moto 5.x invents its own.

    moto serializes some S3 operations with a root named `<Operation>Response` (for example
    `GetBucketVersioningResponse`) where AWS answers `VersioningConfiguration`. boto3 does not
    check the root; the AWS SDKs for Rust and Java do, and fail to parse the answer. The lab
    must answer as AWS does, so the names are put right here.
    """
    from moto.core import serialize

    roots = {
        "GetBucketVersioning": "VersioningConfiguration",
        "GetObjectTagging": "Tagging",
        "GetBucketTagging": "Tagging",
        "GetBucketAcl": "AccessControlPolicy",
        "GetObjectAcl": "AccessControlPolicy",
    }
    original = serialize.S3Serializer._serialized_result_to_response

    def with_aws_root(self, resp, result, shape, serialized_result):
        resp = original(self, resp, result, shape, serialized_result)
        root = roots.get(self.operation_model.name)
        body = resp.get("body")
        if root is None or not isinstance(body, (str, bytes)):
            return resp
        text = body.decode() if isinstance(body, bytes) else body
        wrong = f"{self.operation_model.name}Response"
        text = text.replace(f"<{wrong}/>", f"<{root}/>", 1)
        text = text.replace(f"<{wrong}", f"<{root}", 1).replace(f"</{wrong}>", f"</{root}>", 1)
        resp["body"] = text
        return resp

    serialize.S3Serializer._serialized_result_to_response = with_aws_root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--stock", action="store_true",
                       help="run moto unpatched: no XML root renaming, no other change")
    modes.add_argument("--lean-listing", action="store_true",
                       help="patch moto's ListObjectVersions deep copy (benchmarks)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args()

    try:
        import moto.server
    except ImportError as error:
        print(f"moto-server: cannot import moto.server ({error}); "
              "install it with: python3 -m pip install 'moto[server]' "
              "(scripts/test does this)", file=sys.stderr)
        sys.exit(2)

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not args.stock:
        fix_rest_xml_roots()
    if args.lean_listing:
        install_lean_listing()

    threading.Thread(target=die_on_stdin_eof, daemon=True).start()
    threading.Thread(target=announce_when_ready, args=(args.port,), daemon=True).start()
    code = 1
    try:
        moto.server.main(["-H", "127.0.0.1", "-p", str(args.port)])
    except SystemExit as exit_request:  # SIGTERM/SIGINT handler, or the port is taken
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    finally:
        # Whatever happened, do not linger: the stdin and readiness threads would.
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
