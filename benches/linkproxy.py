#!/usr/bin/env python3
"""A network-link emulator for the benchmark: a TCP proxy on 127.0.0.1 that adds a one-way
delay and a shared bandwidth limit between its clients and one upstream server (the local S3
server), and counts the HTTP requests and bytes that cross it.

This machine's kernel has no netem, so the link is emulated here, in user space:

- Delay: every chunk read from one side is held for the one-way delay before it is written to
  the other side. The delay is latency, not a throughput limit: a connection may have many
  chunks in flight at once (up to WINDOW bytes per direction, like a TCP window), and chunks
  keep their order within a connection.
- Rate: all connections' bytes go through ONE serializer per direction (a token bucket
  BURST_S deep): a chunk occupies the link for len/rate seconds, connections take turns chunk
  by chunk (round robin), and its delay starts when it has been serialized. Chunks are sized
  to ~2 ms of link time (50 kB at 200 Mbit/s, 250 kB at 1 Gbit/s).
- Cost: the proxy is Python on the same cores as the client and the server; each hop adds
  a fraction of a millisecond beyond the emulated delay (the self-test prints it).
- Connection set-up: the first bytes of a new connection are held for --connect-rtts round
  trips more (default 1: the TCP handshake a real link costs before a client may send).
  TLS (HTTPS to real S3 costs 1-2 more round trips per new connection) and TCP slow start are
  not emulated: figures through this proxy are optimistic for fresh connections.
- HTTP: the proxy frames the requests and responses it forwards (Content-Length, chunked,
  HEAD, 1xx interim responses such as `100 Continue`). The client's connection over the link
  stays open for as many requests as the client sends on it (keep-alive), as S3 keeps its
  connections open. Behind the proxy, the upstream server may close its connection after
  every response (moto's werkzeug server always sends `Connection: close`): the proxy then
  opens a new upstream connection on loopback for the next request, at no link cost, and
  drops that header from the response. Without this, every request over the emulated link
  would pay a new connection's handshake, which S3 clients do not pay.

Counting: every request is counted by kind (`list`, `get_whole`, `get_ranged` for a GET with
a Range header, `head`, `put`, `post`, `delete`, `other`; path-style S3 requests assumed), and
bytes in each direction when they are delivered across the link: `bytes_up` (client to
server) and `bytes_down` (server to client), HTTP heads included.

Usage:
  linkproxy.py --upstream 127.0.0.1:PORT --profile wan|region [--delay-ms MS] [--rate-mbit R]
  linkproxy.py --self-test

Profiles: `wan` = 20 ms each way (40 ms round trip), 200 Mbit/s shared; `region` = 1 ms each
way, 1 Gbit/s. --delay-ms (one way) and --rate-mbit (0: unlimited) override the profile.

Prints `ready PORT CONTROL_PORT` on stdout once both ports listen, then nothing more on
stdout, and exits when its standard input reaches EOF (so it dies with whoever started it).

Stats interface: a control port on 127.0.0.1, separate from the proxied one so that reading
stats never adds to the counts. Connect, send one line, read one JSON line back:
  `stats`      the counts so far
  `reset`      the counts so far, then zero them (read and reset in one step)
  `stats log` / `reset log`   the same, plus `log`: [[method, target, range or null], ...]
              for the requests counted (the most recent LOG_MAX)
Before answering it waits (at most QUIESCE_S) until no bytes are in flight in the proxy, so a
reader that asks after its client process has exited gets every byte that client exchanged.
The answer also has `connections` (client connections accepted since start),
`open_connections`, `parse_errors` (connections closed because a request or response could
not be framed), `cpu_s` (the proxy's own CPU time) and the link's parameters.

--self-test runs the proxy against an HTTP server of its own on loopback and checks the
delay, the shared rate and the counts (about 10 seconds); it prints what it measured.
"""

import argparse
import asyncio
import collections
import ipaddress
import json
import os
import resource
import select
import signal
import socket
import subprocess
import statistics
import sys
import threading
import time

PROFILES = {
    "wan": {"delay_ms": 20.0, "rate_mbit": 200.0},
    "region": {"delay_ms": 1.0, "rate_mbit": 1000.0},
}
CHUNK_S = 0.002               # a chunk read from a socket takes about this long on the link,
CHUNK_MIN, CHUNK_MAX = 16 * 1024, 256 * 1024   # within these sizes
WINDOW = 4 * 1024 * 1024      # bytes one direction of a connection may hold in flight
HORIZON_S = 0.002             # how far ahead of the link's free time a chunk may be scheduled
BURST_S = 0.004               # link time an idle or late serializer may make up (bucket depth)
QUIESCE_S = 2.0               # stats wait at most this long for in-flight bytes to land
LOG_MAX = 20_000              # requests kept for `stats log`
MAX_HEAD = 64 * 1024          # a request head longer than this ends parsing on that connection
LIST_PARAMS = {"versions", "list-type", "prefix", "delimiter", "max-keys", "key-marker",
               "version-id-marker", "continuation-token", "start-after", "marker",
               "encoding-type", "fetch-owner"}


# ------------------------------------------------------------------------------------------
# Counting
# ------------------------------------------------------------------------------------------

def request_kind(method, target, range_header):
    """The kind of a path-style S3 request, for the counts."""
    path, _, query = target.partition("?")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    _, _, key = path.lstrip("/").partition("/")
    has_key = key != ""
    if method == "GET":
        if has_key:
            return "get_ranged" if range_header else "get_whole"
        return "list" if params <= LIST_PARAMS else "other"
    if method in ("HEAD", "PUT", "POST", "DELETE"):
        return method.lower()
    return "other"


class Stats:
    """The counts the control port reports."""

    def __init__(self):
        self.reset()
        self.connections = 0
        self.open_connections = 0
        self.in_flight = 0          # bytes read from one side and not yet written to the other

    def reset(self):
        self.requests = 0
        self.by_kind = collections.Counter()
        self.bytes_up = 0
        self.bytes_down = 0
        self.parse_errors = 0
        self.log = collections.deque(maxlen=LOG_MAX)

    def request(self, method, target, range_header):
        self.requests += 1
        self.by_kind[request_kind(method, target, range_header)] += 1
        self.log.append([method, target, range_header])

    def snapshot(self, with_log):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        answer = {
            "requests": self.requests,
            "by_kind": dict(sorted(self.by_kind.items())),
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "connections": self.connections,
            "open_connections": self.open_connections,
            "in_flight_bytes": self.in_flight,
            "parse_errors": self.parse_errors,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }
        if with_log:
            answer["log"] = list(self.log)
        return answer


class BadMessage(Exception):
    """A request or response the proxy cannot frame (it then closes the connection)."""


def parse_head(head):
    """(start line split in three, headers with lower-case names) of an HTTP/1.x head."""
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    if len(start) != 3:
        raise BadMessage(f"bad start line {lines[0][:200]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadMessage(f"bad header line {line[:200]!r}")
        headers[name.strip().lower()] = value.strip()
    return start, headers


def without_connection_header(head):
    """The response head without its Connection header: over the link the client's connection
    stays open (HTTP/1.1's default), whatever the server does behind the proxy."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"connection:")]
    return b"\r\n".join(kept)


class Pipe:
    """A byte stream between two tasks of this process, with the writer interface Direction
    uses (write, drain, write_eof) and the reads the HTTP framing needs. Its buffer is
    bounded: drain() waits while it holds `limit` bytes or more."""

    def __init__(self, limit=WINDOW):
        self.buf = bytearray()
        self.eof = False
        self.limit = limit
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def write(self, data):
        self.buf += data
        self.readable.set()
        if len(self.buf) >= self.limit:
            self.writable.clear()

    async def drain(self):
        await self.writable.wait()

    def can_write_eof(self):
        return True

    def write_eof(self):
        self.eof = True
        self.readable.set()

    async def _fill(self):
        """Waits for more bytes (or EOF)."""
        self.readable.clear()
        await self.readable.wait()

    def _take(self, count):
        data = bytes(self.buf[:count])
        del self.buf[:count]
        if len(self.buf) < self.limit:
            self.writable.set()
        return data

    async def read(self, limit):
        """Up to `limit` bytes; b"" at EOF."""
        while not self.buf and not self.eof:
            await self._fill()
        return self._take(limit)

    async def read_until(self, separator, limit):
        """Bytes up to and including `separator`; b"" at EOF before any byte; BadMessage if
        `limit` bytes come without it or EOF cuts it short."""
        while True:
            end = self.buf.find(separator)
            if end >= 0:
                return self._take(end + len(separator))
            if len(self.buf) > limit:
                raise BadMessage(f"no {separator!r} in {limit} bytes")
            if self.eof:
                if self.buf:
                    raise BadMessage("the stream ended inside a message")
                return b""
            await self._fill()


async def read_exactly(reader, count, sink):
    """Copies exactly `count` bytes from `reader` (a Pipe or StreamReader) to `sink(bytes)`."""
    while count > 0:
        data = await reader.read(min(count, CHUNK_MAX))
        if not data:
            raise BadMessage("the stream ended inside a body")
        count -= len(data)
        await sink(data)


async def copy_chunked(reader, sink):
    """Copies a chunked body verbatim (sizes, data, last chunk, trailers) to `sink(bytes)`."""
    for _ in range(10_000_000):  # chunks: a bound only
        line = await read_line(reader)
        await sink(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadMessage(f"bad chunk size line {line[:100]!r}")
        if size == 0:
            for _ in range(10_000):  # trailer lines, up to the empty one
                line = await read_line(reader)
                await sink(line)
                if line == b"\r\n":
                    return
            raise BadMessage("too many trailers")
        await read_exactly(reader, size + 2, sink)  # the data and its CRLF
    raise BadMessage("too many chunks")


async def read_line(reader):
    """One CRLF-terminated line from a Pipe or StreamReader."""
    if isinstance(reader, Pipe):
        line = await reader.read_until(b"\r\n", MAX_HEAD)
    else:
        line = await reader.readuntil(b"\r\n")
    if not line:
        raise BadMessage("the stream ended inside a chunked body")
    return line


# ------------------------------------------------------------------------------------------
# The link
# ------------------------------------------------------------------------------------------

class Link:
    """One direction of the emulated link, shared by every connection: a serializer at the
    link rate, then the one-way delay.

    Connections queue their chunks here one at a time (each waits for its chunk's turn
    before reading the next), so the serializer serves them round robin. It schedules a chunk
    only when the link is about to be free (HORIZON_S ahead, which absorbs timer lateness
    without losing link time), so a busy connection cannot book the link far ahead of others.
    """

    def __init__(self, delay_s, rate_bytes_s):
        self.delay_s = delay_s
        self.rate = rate_bytes_s or None
        # Reads big enough to keep the per-chunk cost low at high rates, small enough that a
        # chunk holds the link only ~CHUNK_S (a small request behind it waits little).
        self.chunk = int(min(max((rate_bytes_s or 1e12) * CHUNK_S, CHUNK_MIN), CHUNK_MAX))
        self.free_at = 0.0
        self.waiters = collections.deque()
        self.wakeup = asyncio.Event()

    async def send(self, size):
        """Waits for `size` bytes' turn; returns the loop time at which they reach the far end."""
        loop = asyncio.get_running_loop()
        if self.rate is None:
            return loop.time() + self.delay_s
        turn = loop.create_future()
        self.waiters.append((size, turn))
        self.wakeup.set()
        return await turn

    async def serve(self):
        loop = asyncio.get_running_loop()
        while True:
            if not self.waiters:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            size, turn = self.waiters.popleft()
            if turn.done():  # its connection went away
                continue
            now = loop.time()
            # A token bucket BURST_S deep: link time lost while this process was not scheduled
            # (a loaded machine) is made up, so the rate holds; an idle link bursts that much.
            start = max(now - BURST_S, self.free_at)
            if start - now > HORIZON_S:
                await asyncio.sleep(start - now - HORIZON_S)
            self.free_at = start + size / self.rate
            if not turn.done():
                # Made-up time lets a chunk go at once, never before it was read.
                turn.set_result(max(self.free_at, now) + self.delay_s)


async def first_error(tasks):
    """Waits for all the tasks; if one fails, cancels the others and raises its error."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Direction:
    """One direction of one proxied connection: reads chunks from `src`, passes them through
    the link, and writes each to `dst` when it arrives, in order."""

    def __init__(self, proxy, link, src, dst, up, not_before=0.0):
        self.proxy, self.link, self.src, self.dst, self.up = proxy, link, src, dst, up
        self.not_before = not_before   # loop time before which nothing arrives (handshake)
        self.queue = asyncio.Queue()
        self.held = 0                  # bytes of this direction in flight
        self.room = asyncio.Event()
        self.room.set()

    async def run(self):
        """Forwards until EOF has been delivered; raises if either side fails."""
        tasks = [self.proxy.spawn(self._read()), self.proxy.spawn(self._deliver())]
        try:
            await first_error(tasks)
        finally:
            self.proxy.stats.in_flight -= self.held
            self.held = 0

    async def _read(self):
        loop = asyncio.get_running_loop()
        while True:
            data = await self.src.read(self.link.chunk)
            # EOF travels the link too (as an empty chunk, after the data before it).
            arrive = await self.link.send(len(data)) if data else loop.time() + self.link.delay_s
            self.held += len(data)
            self.proxy.stats.in_flight += len(data)
            self.queue.put_nowait((max(arrive, self.not_before), data))
            if not data:
                return
            # A full window stops reading: the sender then waits, as over TCP.
            if self.held >= WINDOW:
                self.room.clear()
                await self.room.wait()

    async def _deliver(self):
        loop = asyncio.get_running_loop()
        while True:
            arrive, data = await self.queue.get()
            wait = arrive - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                return
            self.dst.write(data)
            await self.dst.drain()
            if self.up:
                self.proxy.stats.bytes_up += len(data)
            else:
                self.proxy.stats.bytes_down += len(data)
            self.held -= len(data)
            self.proxy.stats.in_flight -= len(data)
            if self.held < WINDOW:
                self.room.set()


class Proxy:
    def __init__(self, upstream, delay_s, rate_mbit, connect_rtts):
        self.upstream = upstream
        self.delay_s = delay_s
        self.rate_mbit = rate_mbit
        self.connect_rtts = connect_rtts
        rate = rate_mbit * 1e6 / 8 if rate_mbit else 0
        self.up_link = Link(delay_s, rate)
        self.down_link = Link(delay_s, rate)
        self.stats = Stats()
        self.tasks = set()

    async def start(self):
        """Listens on ephemeral ports; returns (proxy port, control port)."""
        for link in (self.up_link, self.down_link):
            self.spawn(link.serve())
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.control = await asyncio.start_server(self._control, "127.0.0.1", 0)
        return (self.server.sockets[0].getsockname()[1], self.control.sockets[0].getsockname()[1])

    def spawn(self, coroutine):
        """A task kept referenced until it ends: the event loop holds tasks only weakly, and
        a connection's tasks wait on each other, so without this a cycle of them could be
        collected while pending."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def parameters(self):
        return {"delay_ms_one_way": self.delay_s * 1000, "rate_mbit": self.rate_mbit,
                "connect_rtts": self.connect_rtts, "chunk_bytes": self.down_link.chunk,
                "burst_s": BURST_S, "window_bytes": WINDOW}

    async def _connection(self, client_reader, client_writer):
        """One client connection: its two directions over the link, and between them the
        exchange of its requests with the upstream server."""
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.stats.connections += 1
        self.stats.open_connections += 1
        requests, responses = Pipe(), Pipe()
        # The client may send at once on loopback; over a real link its first bytes leave only
        # after the handshake's round trip(s), and then take the one-way delay.
        first = accepted + self.connect_rtts * 2 * self.delay_s + self.delay_s
        up = Direction(self, self.up_link, client_reader, requests, True, first)
        down = Direction(self, self.down_link, responses, client_writer, False)
        try:
            # Each direction ends at EOF (half-close passes through); an error anywhere (a
            # reset, a broken pipe, a message that cannot be framed) ends the connection.
            await first_error([self.spawn(up.run()), self.spawn(down.run()),
                               self.spawn(self._exchange(requests, responses))])
        except BadMessage as error:
            self.stats.parse_errors += 1
            print(f"linkproxy: connection closed: {error}", file=sys.stderr, flush=True)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.stats.open_connections -= 1
            client_writer.close()

    async def _exchange(self, requests, responses):
        """Forwards the requests that came over the link to the upstream server one at a time,
        and each response back into `responses`, which goes down the link.

        The server behind the proxy may close its connection after every response (moto's
        werkzeug server does: `Connection: close`); real S3 keeps connections open. So the
        client's connection over the link is kept open, and a new upstream connection (on
        loopback, no link cost) is opened whenever the last one was closed."""
        upstream = None
        try:
            for _ in range(1_000_000):  # requests on one connection: a bound only
                head = await requests.read_until(b"\r\n\r\n", MAX_HEAD)
                if not head:
                    break  # the client closed its connection between requests
                (method, target, _), headers = parse_head(head.lstrip(b"\r\n"))
                self.stats.request(method, target, headers.get("range"))
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream)
                reader, writer = upstream
                writer.write(head)
                # The body goes up while the response is read: a client that sent
                # `Expect: 100-continue` waits for the interim response before its body.
                body = self.spawn(self._request_body(requests, writer, headers))
                try:
                    keep, closes_client = await self._response(reader, responses, method)
                    await body
                finally:
                    body.cancel()
                if not keep:
                    writer.close()
                    upstream = None
                if closes_client:
                    break
        finally:
            if upstream is not None:
                upstream[1].close()
            responses.write_eof()

    async def _request_body(self, requests, writer, headers):
        async def sink(data):
            writer.write(data)
            await writer.drain()

        if "chunked" in headers.get("transfer-encoding", "").lower():
            await copy_chunked(requests, sink)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise BadMessage(f"bad Content-Length {headers.get('content-length')!r}")
            await read_exactly(requests, length, sink)

    async def _response(self, reader, responses, method):
        """Relays one response (after any 1xx interim ones) from `reader` into `responses`.
        Returns (the upstream connection may serve another request, the client's connection
        must close: the response's body ran to the server's EOF)."""
        async def sink(data):
            responses.write(data)
            await responses.drain()

        for _ in range(100):  # interim (1xx) responses before the final one: a bound only
            head = await reader.readuntil(b"\r\n\r\n")
            (_, status, _), headers = parse_head(head)
            code = int(status) if status.isdigit() else 0
            if 100 <= code < 200:
                await sink(head)
                continue
            server_closes = "close" in headers.get("connection", "").lower()
            if method == "HEAD" or code in (204, 304):
                await sink(without_connection_header(head))
                return not server_closes, False
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await sink(without_connection_header(head))
                await copy_chunked(reader, sink)
                return not server_closes, False
            if "content-length" in headers:
                await sink(without_connection_header(head))
                await read_exactly(reader, int(headers["content-length"]), sink)
                return not server_closes, False
            # No framing: the body runs to the server's EOF, and the client learns where it
            # ends only when its connection closes too.
            await sink(head)
            for _ in range(10_000_000):
                data = await reader.read(CHUNK_MAX)
                if not data:
                    break
                await sink(data)
            return False, True
        raise BadMessage("too many interim responses")

    async def _control(self, reader, writer):
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode().split()
            command, with_log = (line[0] if line else ""), "log" in line[1:]
            if command not in ("stats", "reset"):
                answer = {"error": "commands: stats, reset (optionally followed by `log`)"}
            else:
                await self._quiesce()
                answer = self.stats.snapshot(with_log)
                answer["link"] = self.parameters()
                if command == "reset":
                    self.stats.reset()
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def _quiesce(self):
        """Waits (bounded) until no bytes are in flight, so counts include what was sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIESCE_S
        while self.stats.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.005)


# ------------------------------------------------------------------------------------------
# Running as a server
# ------------------------------------------------------------------------------------------

def loopback_address(text):
    """HOST:PORT of the upstream; only a loopback host is accepted."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: the upstream must be a loopback address and port")


def link_settings(args):
    """(one-way delay in seconds, rate in Mbit/s or 0) from the profile and explicit flags."""
    chosen = dict(PROFILES[args.profile]) if args.profile else {"delay_ms": 0.0, "rate_mbit": 0.0}
    if args.delay_ms is not None:
        chosen["delay_ms"] = args.delay_ms
    if args.rate_mbit is not None:
        chosen["rate_mbit"] = args.rate_mbit
    return chosen["delay_ms"] / 1000, chosen["rate_mbit"]


async def serve(args):
    delay_s, rate_mbit = link_settings(args)
    proxy = Proxy(args.upstream, delay_s, rate_mbit, args.connect_rtts)
    port, control = await proxy.start()
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def watch_stdin():
        # A thread, not loop.add_reader: stdin may be a file or /dev/null, which epoll refuses.
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(stdin_closed.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write(f"ready {port} {control}\n")
    sys.stdout.flush()
    # Nothing more goes to stdout: the reader may have stopped reading it.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    await stdin_closed.wait()
    # Exit at once: open connections have nobody left to serve, and cancelling them one by
    # one would only print noise.
    sys.stderr.flush()
    os._exit(0)


# ------------------------------------------------------------------------------------------
# Self-test
# ------------------------------------------------------------------------------------------

class Origin:
    """A small HTTP/1.1 server for the self-test. GET /size/N answers N bytes (a Range
    `bytes=A-B` gets 206 and that slice); GET /chunked/N answers N bytes in chunked encoding;
    PUT reads the body (Content-Length or chunked; `Expect: 100-continue` gets its interim
    response first) and answers 200; HEAD answers the headers only. With `close_each`, it
    closes every connection after one response, as moto's werkzeug server does. Counts the
    bytes it reads and writes and the connections it accepts, to check the proxy against."""

    def __init__(self, close_each):
        self.close_each = close_each
        self.bytes_in = 0
        self.bytes_out = 0
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            for _ in range(10_000):  # requests per connection: a bound, never reached here
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.bytes_in += len(head)
                (method, target, _), headers = parse_head(head)
                if headers.get("expect", "").lower() == "100-continue":
                    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
                    writer.write(interim)
                    self.bytes_out += len(interim)
                if "chunked" in headers.get("transfer-encoding", ""):
                    for _ in range(100_000):
                        size_line = await reader.readuntil(b"\r\n")
                        self.bytes_in += len(size_line)
                        size = int(size_line.split(b";")[0], 16)
                        if size == 0:
                            self.bytes_in += len(await reader.readuntil(b"\r\n"))
                            break
                        self.bytes_in += len(await reader.readexactly(size + 2))
                else:
                    self.bytes_in += len(await reader.readexactly(int(headers.get("content-length", "0"))))
                status, body, framing = "200 OK", b"", None
                if target.startswith("/size/"):
                    body = b"x" * int(target.split("/")[2].split("?")[0])
                    wanted = headers.get("range", "")
                    if wanted.startswith("bytes="):
                        first, _, last = wanted[6:].partition("-")
                        body = body[int(first):int(last) + 1]
                        status = "206 Partial Content"
                elif target.startswith("/chunked/"):
                    body = b"c" * int(target.split("/")[2])
                    framing = b"Transfer-Encoding: chunked\r\n"
                if framing is None:
                    framing = f"Content-Length: {len(body)}\r\n".encode()
                else:  # two chunks and the last one
                    half = len(body) // 2
                    body = (f"{half:x}\r\n".encode() + body[:half] + f"\r\n{len(body) - half:x}\r\n".encode()
                            + body[half:] + b"\r\n0\r\n\r\n")
                close = b"Connection: close\r\n" if self.close_each else b""
                answer = f"HTTP/1.1 {status}\r\n".encode() + framing + close + b"\r\n"
                if method != "HEAD":
                    answer += body
                writer.write(answer)
                await writer.drain()
                self.bytes_out += len(answer)
                if self.close_each:
                    break
        finally:
            writer.close()


class Client:
    """A blocking HTTP/1.1 client on one kept-alive connection."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(1 << 20)
        self.pending = bytearray()

    def raw(self, data, method="GET", body_after_continue=None):
        """Sends one request, reads its response; returns (seconds, body bytes received).
        Sets `head_at`, when the response's first bytes came (perf_counter). With
        body_after_continue, sends those bytes once a `100 Continue` has come.

        The body is counted, not kept, so that a big one costs this process little CPU."""
        started = time.perf_counter()
        self.sock.sendall(data)
        self.head_at = None
        for _ in range(10):  # interim responses, then the final one
            head = self._head()
            if not head.split(b" ", 2)[1].startswith(b"1"):
                break
            if body_after_continue is not None:
                self.sock.sendall(body_after_continue)
        else:
            raise ConnectionError("no final response")
        if method == "HEAD":
            return time.perf_counter() - started, 0
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            received = 0
            for _ in range(1_000_000):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                received += self._count(size)
                self._line()
            return time.perf_counter() - started, received
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        return time.perf_counter() - started, self._count(length)

    def get(self, path, range_header=None):
        extra = f"Range: {range_header}\r\n" if range_header else ""
        return self.raw(f"GET {path} HTTP/1.1\r\nHost: origin\r\n{extra}\r\n".encode())

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        if self.head_at is None:
            self.head_at = time.perf_counter()
        self.pending += data

    def _head(self):
        for _ in range(10_000):
            end = self.pending.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.pending[:end])
                del self.pending[:end + 4]
                return head
            self._fill()
        raise ConnectionError("no response head")

    def _line(self):
        for _ in range(10_000):
            end = self.pending.find(b"\r\n")
            if end >= 0:
                line = bytes(self.pending[:end])
                del self.pending[:end + 2]
                return line
            self._fill()
        raise ConnectionError("no line")

    def _count(self, length):
        """Reads and counts `length` body bytes without keeping them."""
        received = min(length, len(self.pending))
        del self.pending[:received]
        for _ in range(length + 1):
            if received >= length:
                break
            count = self.sock.recv_into(self.buf, min(len(self.buf), length - received))
            if not count:
                raise ConnectionError("the server closed the connection")
            received += count
        return received

    def close(self):
        self.sock.close()


def control(port, command):
    """One command on the proxy's control port; its JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(command.encode() + b"\n")
        data = b""
        for _ in range(100_000):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    return json.loads(data)


def start_origin(close_each):
    """An Origin on its own event loop in a daemon thread; returns it (with .port)."""
    origin = Origin(close_each)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        origin.port = loop.run_until_complete(origin.start())
        started.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    if not started.wait(10):
        raise RuntimeError("the self-test's origin server did not start")
    return origin


def start_proxy(upstream_port, profile):
    """This script as a separate process (so that the clients here do not compete with it
    for the interpreter lock); returns (process, port, control port)."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--upstream",
                             f"127.0.0.1:{upstream_port}", "--profile", profile],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    words = proc.stdout.readline().split() if ready else []
    if len(words) != 3 or words[0] != b"ready":
        proc.kill()
        raise RuntimeError(f"the proxy did not start (it printed {words})")
    return proc, int(words[1]), int(words[2])


def stop_proxy(proc):
    """Closes the proxy's stdin; its exit status (or a note that it had to be killed)."""
    proc.stdin.close()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "none (killed)"


def self_test():
    """Checks delay, rate, keep-alive, counts and exit-on-EOF against local origins; prints
    what it measured; returns 0 if every check passes."""
    signal.alarm(180)  # a bound on the whole self-test, whatever hangs
    # Closing after every response, as moto does: what the benchmark runs against.
    origin = start_origin(close_each=True)
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def round_trips(port, count=20):
        """(first request on a new connection, median of `count` more on it), in seconds."""
        client = Client(port)
        first, _ = client.get("/size/100")
        times = [client.get("/size/100")[0] for _ in range(count)]
        client.close()
        return first, statistics.median(times)

    def direct_round_trip(port, count=20):
        """Median time of a request on a new connection each (the origin closes them)."""
        times = []
        for _ in range(count):
            client = Client(port)
            times.append(client.get("/size/100")[0])
            client.close()
        return statistics.median(times)

    def transfer(port, size, connections):
        """`connections` clients GET `size` bytes each at once; returns (seconds from the
        first response bytes to the last, bytes). Timing from the first bytes leaves out the
        origin's time to build the body (tens of ms for 100 MB) and the request's way up."""
        clients = [Client(port) for _ in range(connections)]
        for c in clients:
            c.get("/size/1")  # connections set up before timing
        got = [0] * connections
        barrier = threading.Barrier(connections + 1)

        def one(i):
            barrier.wait(timeout=10)
            got[i] = clients[i].get(f"/size/{size}")[1]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(connections)]
        for t in threads:
            t.start()
        barrier.wait(timeout=10)
        for t in threads:
            t.join(timeout=60)
        elapsed = time.perf_counter() - min(c.head_at for c in clients)
        for c in clients:
            c.close()
        return elapsed, sum(got)

    def upload(port, size):
        client = Client(port)
        client.get("/size/1")
        elapsed, _ = client.raw(f"PUT /bucket/up HTTP/1.1\r\nHost: origin\r\nContent-Length: {size}\r\n\r\n"
                                .encode() + b"u" * size)
        client.close()
        return elapsed

    direct = direct_round_trip(origin.port)
    big = int(PROFILES["region"]["rate_mbit"] * 1e6 / 8 * 0.8)
    elapsed, _ = transfer(start_origin(close_each=False).port, big, 1)
    print(f"     direct, no proxy: a request takes {direct * 1000:.2f} ms; {big / 1e6:.0f} MB in "
          f"{elapsed * 1000:.0f} ms from the first byte ({big * 8 / elapsed / 1e6:.0f} Mbit/s)", flush=True)
    for name, profile in PROFILES.items():
        proc, port, control_port = start_proxy(origin.port, name)
        try:
            rtt = 2 * profile["delay_ms"] / 1000
            rate_mbit = profile["rate_mbit"]
            control(control_port, "reset")
            connections0 = control(control_port, "stats")["connections"]
            first, through = round_trips(port)
            added = through - direct
            connections = control(control_port, "stats")["connections"] - connections0
            check(f"{name} round trip", rtt <= added <= rtt + 0.015 and connections == 1,
                  f"{through * 1000:.1f} ms through the proxy, {direct * 1000:.2f} ms direct: "
                  f"+{added * 1000:.1f} ms (link round trip {rtt * 1000:.0f} ms); 21 requests on "
                  f"{connections} client connection(s) though the origin closes after each")
            check(f"{name} new connection", first >= 2 * rtt,
                  f"first request on a new connection {first * 1000:.1f} ms (>= handshake + request "
                  f"= {2 * rtt * 1000:.0f} ms)")
            size = int(rate_mbit * 1e6 / 8 * 0.8)  # 0.8 s of link time
            # Rates: best of up to 3 attempts. Other load on the machine can only slow the
            # proxy (it is Python, on the same cores as the origin and the clients), so the
            # best attempt is the emulator's own figure.
            for connections in (1, 4):
                for attempt in range(1, 4):
                    elapsed, got = transfer(port, size // connections, connections)
                    mbit = got * 8 / elapsed / 1e6
                    ok = got == connections * (size // connections) and 0.9 <= mbit / rate_mbit <= 1.05
                    if ok:
                        break
                check(f"{name} rate down, {connections} connection(s)", ok,
                      f"{got / 1e6:.1f} MB in {elapsed * 1000:.0f} ms from the first byte: {mbit:.0f} "
                      f"Mbit/s on a {rate_mbit:.0f} Mbit/s link (attempt {attempt})")
            up_size = size // 4
            for attempt in range(1, 4):
                elapsed = upload(port, up_size)
                mbit = up_size * 8 / (elapsed - rtt) / 1e6
                if 0.9 <= mbit / rate_mbit <= 1.05:
                    break
            check(f"{name} rate up", 0.9 <= mbit / rate_mbit <= 1.05,
                  f"PUT of {up_size / 1e6:.1f} MB in {elapsed * 1000:.0f} ms: {mbit:.0f} Mbit/s, one round "
                  f"trip deducted (attempt {attempt})")
            if name == "wan":
                count_checks(check, origin, port, control_port)
        finally:
            code = stop_proxy(proc)
        check(f"{name} exits at stdin EOF", code == 0, f"exit status {code}")

    # An origin that keeps its connections open: the proxy reuses its upstream connection.
    keeping = start_origin(close_each=False)
    proc, port, _ = start_proxy(keeping.port, "region")
    try:
        client = Client(port)
        sizes = [client.get(f"/size/{n}")[1] for n in (10, 20, 30)]
        client.close()
    finally:
        stop_proxy(proc)
    check("keep-alive origin", sizes == [10, 20, 30] and keeping.connections == 1,
          f"3 requests, bodies {sizes}, on {keeping.connections} upstream connection(s)")
    print(f"self-test: {results.count(True)}/{len(results)} checks passed", flush=True)
    return 0 if all(results) else 1


def count_checks(check, origin, port, control_port):
    """A known mix of requests on kept-alive connections, checked against the control port."""
    control(control_port, "reset")
    in0, out0 = origin.bytes_in, origin.bytes_out
    client = Client(port)
    for _ in range(3):
        client.get("/bucket/key?versionId=v1")
    client.get("/bucket/key", "bytes=0-65535")
    ranged = client.get("/size/200000", "bytes=0-65535")[1]
    client.get("/bucket?versions&prefix=key")
    chunked = client.get("/chunked/1001")[1]
    client.raw(b"HEAD /bucket/key HTTP/1.1\r\nHost: origin\r\n\r\n", method="HEAD")
    client.raw(b"PUT /bucket/key HTTP/1.1\r\nHost: origin\r\nContent-Length: 5\r\n\r\nhello")
    # A chunked body that contains what looks like a request: it must not be counted.
    body = b"GET /not/a/request HTTP/1.1\r\n\r\n"
    client.raw(b"PUT /bucket/chunked HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    client.raw(b"PUT /bucket/expect HTTP/1.1\r\nHost: origin\r\nContent-Length: 4\r\n"
               b"Expect: 100-continue\r\n\r\n", body_after_continue=b"body")
    client.close()
    second = Client(port)
    second.get("/bucket/key?versionId=v2")
    second.close()
    got = control(control_port, "stats log")
    want = {"get_ranged": 2, "get_whole": 5, "head": 1, "list": 1, "put": 3}
    check("request counts", got["requests"] == 12 and got["by_kind"] == want and got["parse_errors"] == 0
          and (ranged, chunked) == (65536, 1001),
          f"{got['requests']} requests {got['by_kind']} (expected 12 {want}), {got['parse_errors']} parse "
          f"errors; a ranged body of {ranged} B, a chunked one of {chunked} B")
    ranges = [entry[2] for entry in got["log"] if entry[2]]
    check("ranges logged", ranges == ["bytes=0-65535"] * 2, f"Range headers in the log: {ranges}")
    # Down, the proxy drops each response's `Connection: close` (19 bytes) and keeps the
    # client's connection open.
    dropped = len(b"Connection: close\r\n") * 12
    check("byte counts", (got["bytes_up"], got["bytes_down"]) == (origin.bytes_in - in0, origin.bytes_out - out0 - dropped),
          f"up {got['bytes_up']:,} B, down {got['bytes_down']:,} B; the origin read {origin.bytes_in - in0:,} B "
          f"and wrote {origin.bytes_out - out0:,} B, of which {dropped} B of `Connection: close` headers")
    again = control(control_port, "reset")
    after = control(control_port, "stats")
    check("reset", again["requests"] == 12 and after["requests"] == 0 and after["bytes_down"] == 0,
          f"reset answered {again['requests']} requests, then stats {after['requests']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=loopback_address, help="HOST:PORT to forward to (loopback only)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="wan: 20 ms each way, 200 Mbit/s; "
                        "region: 1 ms each way, 1 Gbit/s")
    parser.add_argument("--delay-ms", type=float, help="one-way delay in ms (overrides the profile)")
    parser.add_argument("--rate-mbit", type=float, help="shared rate per direction in Mbit/s, 0 = unlimited "
                        "(overrides the profile)")
    parser.add_argument("--connect-rtts", type=int, default=1,
                        help="round trips a new connection costs before its first bytes (default 1: TCP)")
    parser.add_argument("--self-test", action="store_true", help="check the proxy on loopback and exit")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.upstream:
        parser.error("--upstream is required")
    if args.profile is None and args.delay_ms is None and args.rate_mbit is None:
        parser.error("give --profile, or --delay-ms and/or --rate-mbit")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
