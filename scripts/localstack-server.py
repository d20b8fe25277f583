#!/usr/bin/env python3
"""Local S3 and STS (and KMS) for tfrollback's tests, served by LocalStack without Docker.

Usage: localstack-server.py --port PORT [--services s3,sts,kms] [--verbose]

The same contract as moto-server.py: prints `ready PORT` on stdout once S3 answers, then
nothing more on stdout (LocalStack's own output goes to stderr); exits by itself, taking
every process it started with it, when its standard input reaches EOF; listens on
127.0.0.1 only. Exit code 2 means retrying on another port cannot help (LocalStack is not
installed, or it listened on an address other than loopback).

Run it with any python3, as moto-server.py is run: it finds the LocalStack virtualenv that
scripts/install-test-servers makes (.venv-localstack at the top of the repository, or the
directory named by TFR_LOCALSTACK_VENV) and re-executes itself with that venv's Python
(LocalStack needs Python 3.13 here; the tests' python3 may be older). The pid stays the
same, so the caller's handle on the child is LocalStack's own process.

LocalStack is run as users run it, with two changes that do not touch any answer:
- its HTTP server binds 127.0.0.1. LocalStack's twisted gateway listens on every IPv4
  interface whatever GATEWAY_LISTEN says; the endpoint it creates is given the loopback
  interface. After startup the launcher checks, in /proc, that none of its sockets listens
  on another address, and exits (code 2) if one does.
- each server keeps its files in a private directory removed at exit: FILESYSTEM_ROOT
  (LocalStack's state, caches, certificates) and the temporary directory (TMPDIR) point
  into it, and so does the S3 object store (the directory of a server killed by SIGKILL is
  removed by the next server that starts). The store (bodies over 512 KiB and multipart
  parts spill to files there) is a fixed machine-wide /tmp/localstack-s3-storage that no
  setting moves (`DEFAULT_S3_TMP_DIR` in localstack/services/s3/provider.py; TMPDIR and
  FILESYSTEM_ROOT do not reach it), shared by every server on the machine, and deleting a
  bucket removes that bucket's directory there for all of them; the constant is
  reassigned before the S3 provider is created.
DNS, persistence and analytics events are off. DynamoDB is not offered: LocalStack's needs a
Java download.
"""

import argparse
import ctypes
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

READY_TIMEOUT_SECONDS = 60
DEFAULT_SERVICES = "s3,sts,kms"
LOOPBACK = "127.0.0.1"
PR_SET_CHILD_SUBREAPER = 36
PRIVATE_PREFIX = "tfr-localstack-"


class Fatal(Exception):
    """A failure that another port would not cure (exit code 2)."""


def fail(message, code):
    print(f"localstack-server: {message}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)


def venv_dir():
    configured = os.environ.get("TFR_LOCALSTACK_VENV")
    if configured:
        return os.path.abspath(configured)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, ".venv-localstack")


def reexec_in_venv(venv):
    """Replace this process by the same script under the venv's Python (same pid, same fds)."""
    python = os.path.join(venv, "bin", "python")
    if not os.access(python, os.X_OK):
        fail(f"no LocalStack virtualenv at {venv} (missing bin/python); "
             "install it with scripts/install-test-servers", 2)
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


# --- the process tree -------------------------------------------------------------------------

def descendants(root):
    """Pids of every live process below `root` (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name (field 2) may hold spaces or parentheses: split after it.
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Shutdown:
    """Ends the server once: kills what it started, removes its private directory, exits."""

    def __init__(self, private_dir):
        self.private_dir = private_dir
        self.lock = threading.Lock()

    def __call__(self, code):
        with self.lock:
            # A few rounds: a child may fork while we kill its parent. As a subreaper we
            # also adopt (and so see) grandchildren whose parent died first.
            for _ in range(3):
                pids = descendants(os.getpid())
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.05)
            shutil.rmtree(self.private_dir, ignore_errors=True)
            sys.stderr.flush()
            os._exit(code)


def lock_private_dir(private_dir):
    """Hold an exclusive lock on the private directory for the life of this process: the
    kernel drops it when the process ends, however it ends."""
    unnamed = os.path.join(private_dir, ".lock-new")
    fd = os.open(unnamed, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # Named only once locked, so that no sweeper can take the lock first.
    os.rename(unnamed, os.path.join(private_dir, ".lock"))
    return fd


def remove_stale_private_dirs():
    """Remove the private directories of servers that were killed before they could clean up
    (SIGKILL): those whose lock nobody holds any more."""
    base = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(PRIVATE_PREFIX)]
    except OSError:
        return
    for name in names[:100]:
        path = os.path.join(base, name)
        try:
            fd = os.open(os.path.join(path, ".lock"), os.O_RDWR)
        except OSError:
            continue  # not ours, or still being created: leave it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live server holds it
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


def die_on_stdin_eof(shutdown):
    try:
        while os.read(0, 4096):
            pass
    finally:
        shutdown(0)


# --- sockets ------------------------------------------------------------------------------------

def socket_inodes(pids):
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    return inodes


def decode_address(hex_address):
    """'0100007F:1F90' (or the 32-digit IPv6 form) -> ('127.0.0.1', 8080)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc prints each 32-bit word in host order (little-endian here).
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        text = ".".join(str(b) for b in words)
    else:
        import ipaddress
        text = str(ipaddress.IPv6Address(words))
    return text, int(port, 16)


def bound_sockets():
    """(protocol, address, port) of every socket of this process tree that listens (TCP) or is
    bound (UDP)."""
    inodes = socket_inodes([os.getpid(), *descendants(os.getpid())])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{proto}") as table:
                lines = table.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes:
                continue
            # TCP: only listening sockets (0A); UDP: every bound socket (07 = unconnected).
            if proto.startswith("tcp") and state != "0A":
                continue
            address, port = decode_address(local)
            if proto.startswith("udp") and port == 0:
                continue
            found.append((proto, address, port))
    return found


def is_loopback(address):
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") \
        or address.startswith("::ffff:127.")


# --- readiness ----------------------------------------------------------------------------------

def s3_answers(port):
    """Whether a signed S3 ListBuckets on our port gets an S3 answer (any status).

    LocalStack routes a request to a service by its signature's credential scope: an
    unsigned `GET /` gets an empty 200 from the gateway, long before S3 is loaded.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"http://{LOOPBACK}:{port}/"
    signed = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(signed)
    request = urllib.request.Request(url, headers=dict(signed.headers.items()))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except (urllib.error.URLError, OSError):
        return False
    return b"ListAllMyBucketsResult" in body


def announce_when_ready(port, announce_fd, shutdown):
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        ours = any(proto == "tcp" and p == port for proto, _, p in bound_sockets())
        if ours and s3_answers(port):
            break
        time.sleep(0.1)
    else:
        print(f"localstack-server: S3 did not answer on http://{LOOPBACK}:{port}/ "
              f"after {READY_TIMEOUT_SECONDS} s", file=sys.stderr)
        shutdown(1)
    exposed = [s for s in bound_sockets() if not is_loopback(s[1])]
    if exposed:
        listing = ", ".join(f"{proto} {address}:{p}" for proto, address, p in exposed)
        print(f"localstack-server: LocalStack listens beyond loopback ({listing}); "
              "refusing to serve", file=sys.stderr)
        shutdown(2)
    os.write(announce_fd, f"ready {port}\n".encode())
    os.close(announce_fd)


# --- LocalStack ---------------------------------------------------------------------------------

def configure_environment(port, services, private_dir, verbose):
    tmp = os.path.join(private_dir, "tmp")
    os.makedirs(tmp)
    os.environ.update({
        "OVERRIDE_IN_DOCKER": "0",
        "GATEWAY_LISTEN": f"{LOOPBACK}:{port}",
        "LOCALSTACK_HOST": f"{LOOPBACK}:{port}",
        "SERVICES": services,
        "EAGER_SERVICE_LOADING": "1",
        "DNS_ADDRESS": "0",
        "PERSISTENCE": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "FILESYSTEM_ROOT": os.path.join(private_dir, "filesystem"),
        # LocalStack logs a deprecation warning for TMPDIR; it is set anyway so that anything
        # it runs keeps its temporary files in the private directory too.
        "TMPDIR": tmp,
    })
    if verbose:
        os.environ["DEBUG"] = "1"
    tempfile.tempdir = tmp


def bind_loopback_only(shutdown):
    """Make LocalStack's twisted gateway listen on 127.0.0.1 instead of every interface, and
    end the server at once when it cannot listen (LocalStack logs it and carries on)."""
    import localstack.runtime.server.twisted as gateway_server
    from twisted.internet import endpoints

    def cannot_listen(failure):
        print(f"localstack-server: {failure.getErrorMessage()}", file=sys.stderr)
        shutdown(1)

    class LoopbackEndpoint:
        def __init__(self, endpoint):
            self.endpoint = endpoint

        def listen(self, factory):
            return self.endpoint.listen(factory).addErrback(cannot_listen)

    class LoopbackEndpoints:
        def __getattr__(self, name):
            return getattr(endpoints, name)

        @staticmethod
        def TCP4ServerEndpoint(reactor, port, backlog=50, interface=""):
            return LoopbackEndpoint(
                endpoints.TCP4ServerEndpoint(reactor, port, backlog, interface or LOOPBACK))

    gateway_server.endpoints = LoopbackEndpoints()


def private_s3_store(private_dir):
    import localstack.services.s3.provider as s3_provider

    if not hasattr(s3_provider, "DEFAULT_S3_TMP_DIR"):
        raise Fatal("this LocalStack has no DEFAULT_S3_TMP_DIR: cannot give S3 a private store; "
                    "install the pinned version with scripts/install-test-servers")
    s3_provider.DEFAULT_S3_TMP_DIR = os.path.join(private_dir, "s3-storage")


def serve(args):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # without it, only descendants whose parents are alive are found at exit

    remove_stale_private_dirs()
    private_dir = tempfile.mkdtemp(prefix=PRIVATE_PREFIX)
    lock_private_dir(private_dir)
    shutdown = Shutdown(private_dir)
    # `ready PORT` goes to the original stdout; everything else, LocalStack's banner
    # included, to stderr.
    announce_fd = os.dup(1)
    os.dup2(2, 1)
    threading.Thread(target=die_on_stdin_eof, args=(shutdown,), daemon=True).start()

    code = 1
    try:
        configure_environment(args.port, args.services, private_dir, args.verbose)
        try:
            import localstack.runtime.main as runtime_main
        except ImportError as error:
            raise Fatal(f"cannot import LocalStack ({error}); reinstall it with "
                        "scripts/install-test-servers") from error
        bind_loopback_only(shutdown)
        private_s3_store(private_dir)
        threading.Thread(target=announce_when_ready, args=(args.port, announce_fd, shutdown),
                         daemon=True).start()
        runtime_main.main()
        code = 0
    except Fatal as error:
        print(f"localstack-server: {error}", file=sys.stderr)
        code = 2
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    except BaseException as error:  # noqa: BLE001 - report, then clean up whatever it was
        print(f"localstack-server: LocalStack failed: {error!r}", file=sys.stderr)
    finally:
        shutdown(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--services", default=DEFAULT_SERVICES,
                        help=f"LocalStack SERVICES (default {DEFAULT_SERVICES})")
    parser.add_argument("--verbose", action="store_true", help="LocalStack debug logging")
    args = parser.parse_args()

    venv = venv_dir()
    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        reexec_in_venv(venv)
    serve(args)


if __name__ == "__main__":
    main()
