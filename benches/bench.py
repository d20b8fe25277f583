#!/usr/bin/env python3
"""tfrollback's benchmark driver (run it through scripts/bench).

Builds tfrollback in release mode, starts its own local S3 server (moto, with --lean-listing),
has terraform write a real base state, derives the workload from it, and times tfrollback
against its baselines in the same run: on loopback, then through an emulated network link
(benches/linkproxy.py, one proxy per profile) that also counts each run's requests and bytes. Each figure is the median of several runs (with min and
max) of a fresh process: wall time from spawn to reap, CPU time from the rusage wait4(2)
returns for it and its descendants, peak RSS from GNU time (/usr/bin/time). The server is restarted
between phases and its RSS recorded per phase (VmRSS/VmHWM from /proc/PID/status).

Writes docs/benchmarks.md and benches/results.json (with --quick: under target/bench/quick/).
"""

import argparse
import datetime
import fcntl
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ next to the sources
import workload  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCHES = REPO / "benches"
REGION = "us-east-1"
MIB = 1024 * 1024

FULL = {
    "runs": 7,            # timed runs per figure (after one untimed check run)
    "b1_runs": 5,         # B1 is slow: fewer runs
    "link_runs": 5,       # through the link emulator: a wan run of list cold or B2 takes ~12 s
    "versions": 300,      # versions of the ~1 MB state
    "big_resources": 45_000,
    "big_versions": 20,   # versions of the ~30 MB state for list's peak RSS
    "huge_resources": 150_000,  # ~100 MiB: list and show stay flat, what diff costs
    "huge_versions": 5,   # versions of the ~100 MB state for list's peak RSS
    "huge_runs": 5,       # a run of the Python diff of two ~100 MB states takes ~6 s
    "b1_sample": 30,      # versions B1 reads when the full listing would take too long
}
QUICK = {"runs": 3, "b1_runs": 3, "link_runs": 3, "versions": 60, "big_resources": 45_000, "big_versions": 4,
         "huge_resources": 150_000, "huge_versions": 2, "huge_runs": 2, "b1_sample": 10,
         "b1_full_run_limit_s": 0}
# B1 reads every version when one run is projected to take at most this long; beyond it,
# B1 reads the newest b1_sample versions and its time is extrapolated linearly.
FULL["b1_full_run_limit_s"] = 60
COMMAND_TIMEOUT_S = 600
LIMIT = 20
TO_HISTORY = 300          # versions in the history of the state `to` rolls back

# Targets (issue text). Thresholds are stated here once and shown in the report.
COLD_VS_B2 = 3.0
COLD_VS_B1 = 30.0
WARM_VS_B2 = 20.0
LIMIT20_MAX_S = 1.0
LIST_RSS_MAX_KIB = 64 * 1024
RSS_GROWTH_MAX = 1.25
DIFF_VS_PYTHON = 3.0
DIFF_RSS_FACTOR = 2.0
TO_SLACK_S = 1.0
# Over the emulated `wan` link (issue text).
LINK_TARGET_PROFILE = "wan"
LINK_COLD_VS_FLOOR = 2.0
LINK_COLD_VS_B2 = 10.0
LINK_LIMIT20_MAX_S = 0.5
LINK_WARM_REQUESTS = 1

# The link phase: profiles of benches/linkproxy.py, and the bare requests measured through it.
LINK_PROFILES = ("wan", "region")
HEAD_BYTES = 64 * 1024    # the floor reads this much of each version (a ranged GET)
FLOOR_THREADS = 64
SEQ_GETS = 20             # sequential ranged GETs that show the per-request service time

STARTED = time.monotonic()
LOAD_AT_START = os.getloadavg()[0]


class BenchError(Exception):
    """A step failed; the message says which and what it printed."""


def log(message):
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------

class Run:
    """One timed run of a fresh process."""

    def __init__(self, wall_s, user_s, sys_s, maxrss_kib, server_cpu_s, extra=None):
        self.wall_s = wall_s
        self.user_s = user_s
        self.sys_s = sys_s
        self.maxrss_kib = maxrss_kib
        self.server_cpu_s = server_cpu_s
        self.extra = extra or {}

    def as_dict(self):
        d = {
            "wall_s": round(self.wall_s, 4),
            "user_s": round(self.user_s, 4),
            "sys_s": round(self.sys_s, 4),
            "maxrss_kib": self.maxrss_kib,
            "server_cpu_s": round(self.server_cpu_s, 3),
        }
        d.update(self.extra)
        return d


GNU_TIME = "/usr/bin/time"


def timed(argv, *, env, cwd=None, server=None, capture=False, timeout=COMMAND_TIMEOUT_S):
    """Runs argv once under GNU time; returns (Run, stdout bytes or None). Fails on a non-zero exit.

    Peak RSS comes from GNU time (%M), which forks the command itself: a process forked
    straight from this (large) Python process would report this process's RSS as its own peak,
    since Linux carries the pre-exec high-water mark into the child's ru_maxrss. Wall time is
    measured here, spawn to reap; CPU time from wait4's rusage (the command and its children).
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".time") as rss:
        server_cpu = server.cpu_s() if server else 0.0
        started = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *map(str, argv)], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=out if capture else subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, [proc.pid])
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = (server.cpu_s() - server_cpu) if server else 0.0
        if proc.returncode != 0:
            err.seek(0)
            raise BenchError(
                f"`{' '.join(map(str, argv))}` exited with {proc.returncode} after {wall:.1f} s "
                f"(timeout {timeout} s); its stderr:\n{err.read().decode(errors='replace')[-4000:]}"
            )
        try:
            maxrss_kib = int(rss.read().split()[-1])
        except (IndexError, ValueError) as error:
            raise BenchError(f"{GNU_TIME} wrote no peak RSS for `{' '.join(map(str, argv))}`") from error
        stdout = None
        if capture:
            out.seek(0)
            stdout = out.read()
        return Run(wall, usage.ru_utime, usage.ru_stime, maxrss_kib, server_cpu), stdout


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def check_output(argv, *, env, cwd=None, timeout=COMMAND_TIMEOUT_S):
    """Runs argv untimed (set-up, checks); returns its stdout; fails with its stderr."""
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"`{' '.join(map(str, argv))}` did not finish in {timeout} s") from error
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(map(str, argv))}` exited with {done.returncode}; its stderr:\n"
                         f"{done.stderr.decode(errors='replace')[-4000:]}")
    return done.stdout


# ------------------------------------------------------------------------------------------
# The local S3 server
# ------------------------------------------------------------------------------------------

class Server:
    """scripts/moto-server.py --lean-listing on a free port, its RSS sampled while it runs.

    It exits when its stdin reaches EOF, so it goes with this process whatever happens."""

    def __init__(self, work, name):
        self.name = name
        self.log_path = work / f"moto-{name}.log"
        for _ in range(5):  # a free port can be taken before moto binds it
            port = free_port()
            log_file = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "scripts" / "moto-server.py"), "--port", str(port),
                 "--lean-listing"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
            )
            log_file.close()
            line = b""
            ready, _, _ = select.select([self.proc.stdout], [], [], 60)
            if ready:
                line = self.proc.stdout.readline()
            if line.strip() == f"ready {port}".encode():
                self.port = port
                self.endpoint = f"http://127.0.0.1:{port}"
                break
            self._end()
        else:
            raise BenchError(f"the local S3 server did not start; its log:\n{self.log_path.read_text()[-4000:]}")
        self.peak_sampled_kib = 0
        self.marks = {}
        self.load_at_start = os.getloadavg()[0]
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _status(self, field):
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def rss_kib(self):
        return self._status("VmRSS")

    def cpu_s(self):
        """User + system CPU seconds the server has used so far (/proc/PID/stat)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def _sample(self):
        while not self._stop.wait(0.2):
            self.peak_sampled_kib = max(self.peak_sampled_kib, self.rss_kib())

    def mark(self, label):
        self.marks[label] = self.rss_kib()

    def report(self):
        return {
            "phase": self.name,
            "rss_kib": dict(self.marks),
            "peak_rss_kib": max(self._status("VmHWM"), self.peak_sampled_kib),
            "cpu_s": round(self.cpu_s(), 1),
            "loadavg_1m": {"start": round(self.load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
        }

    def _end(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def stop(self):
        self._stop.set()
        summary = self.report()
        self._end()
        return summary


class LinkProxy:
    """benches/linkproxy.py with one of its profiles, in front of a Server.

    Like the server, it exits when its stdin reaches EOF. Its counts are read over its
    control port, which adds nothing to them."""

    def __init__(self, work, profile, server):
        self.profile = profile
        self.log_path = work / f"linkproxy-{profile}.log"
        log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCHES / "linkproxy.py"), "--upstream", f"127.0.0.1:{server.port}",
             "--profile", profile],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
        )
        log_file.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        words = self.proc.stdout.readline().split() if ready else []
        if len(words) != 3 or words[0] != b"ready":
            self.stop()
            raise BenchError(f"the link emulator ({profile}) did not start; its log:\n"
                             f"{self.log_path.read_text()[-4000:]}")
        self.port, self.control_port = int(words[1]), int(words[2])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.parameters = self.command("stats")["link"]

    def command(self, line):
        """One control command (`stats`, `reset`); the proxy's JSON answer."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=30) as sock:
            sock.sendall(line.encode() + b"\n")
            data = b""
            for _ in range(10_000):
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        return json.loads(data)

    def measure(self, run_once):
        """Calls run_once() (which returns a Run) between a reset and a read of the counts,
        and puts the counts in the Run's extra["link"]."""
        before = self.command("reset")
        run = run_once()
        after = self.command("stats")
        if after["parse_errors"]:
            raise BenchError(f"the link emulator could not follow the requests of a connection "
                             f"({after['parse_errors']} parse errors): its counts would be wrong")
        run.extra["link"] = {
            "requests": after["requests"],
            "by_kind": after["by_kind"],
            "bytes_down": after["bytes_down"],
            "bytes_up": after["bytes_up"],
            "connections": after["connections"] - before["connections"],
            "proxy_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        }
        return run

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def pairs_within(s3, bucket, key, seconds):
    """How many neighbouring versions of `key` S3 dated at most `seconds` apart."""
    dates = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        dates += [v["LastModified"] for v in page.get("Versions", []) if v["Key"] == key]
    dates.sort()
    return sum(1 for a, b in zip(dates, dates[1:]) if (b - a).total_seconds() <= seconds)


def machine_cpu_s():
    """CPU seconds the machine's processes have used since boot, all cores (/proc/stat: user,
    nice and system time; interrupts and time stolen by a hypervisor are no process's)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    except (OSError, ValueError):
        return 0.0
    return sum(fields) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# Environment
# ------------------------------------------------------------------------------------------

SCRUBBED = ("NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "GITHUB_STEP_SUMMARY", "CHECKPOINT_DISABLE",
            "XDG_CACHE_HOME")


def child_env(work, endpoint, cache_dir=None):
    """The environment of every child: AWS and terraform settings from scratch, nothing of the
    caller's profile, workspace or CLI configuration."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "TF_", "TFROLLBACK_")) and k not in SCRUBBED}
    env.update({
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(work / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws-credentials"),
        "TF_CLI_CONFIG_FILE": str(work / "terraformrc"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "XDG_CACHE_HOME": str(cache_dir or (work / "cache-unused")),
    })
    return env


def s3_client(endpoint, threads=16):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(max_pool_connections=threads))


def create_bucket(endpoint, bucket, table=None):
    import boto3
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if table:
        boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION,
                     aws_access_key_id="test", aws_secret_access_key="test").create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return s3


def upload(s3, bucket, key, bodies):
    """Puts the bodies oldest first; returns their version ids in that order."""
    ids = []
    for body in bodies:
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        ids.append(answer["VersionId"])
    return ids


def backend_tf(bucket, key, table=None):
    lines = ["terraform {", '  backend "s3" {', f'    bucket         = "{bucket}"',
             f'    key            = "{key}"', f'    region         = "{REGION}"']
    if table:
        lines.append(f'    dynamodb_table = "{table}"')
    lines += ["    use_path_style = true", "  }", "}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------

class Figure:
    """The runs of one benchmarked command."""

    def __init__(self, fid, label, tool, command, note=""):
        self.id = fid
        self.label = label
        self.tool = tool            # "tfrollback", "baseline" or "bare S3"
        self.command = command      # shown in the report (no machine paths)
        self.note = note
        self.runs = []
        self.scale = 1.0            # B1 sampled: extrapolation factor applied in `wall`
        self.offset_s = 0.0
        self.link_profile = None    # measured through the link emulator with this profile

    def add(self, run):
        self.runs.append(run)

    def values(self, attr):
        return [getattr(r, attr) if hasattr(r, attr) else r.extra[attr] for r in self.runs]

    def stat(self, attr):
        values = self.values(attr)
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    def wall(self):
        """Median/min/max wall time, extrapolated when the figure was sampled."""
        s = self.stat("wall_s")
        return {k: self.offset_s + (v - self.offset_s) * self.scale for k, v in s.items()}

    def cpu(self):
        return statistics.median([r.user_s + r.sys_s for r in self.runs])

    def link_stat(self, name):
        """Median/min/max of a count the link emulator took (requests, bytes_down, ...)."""
        values = [r.extra["link"][name] for r in self.runs]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    def link_kinds(self):
        """Median requests per kind (list, get_whole, get_ranged, ...) over the runs."""
        kinds = sorted({k for r in self.runs for k in r.extra["link"]["by_kind"]})
        return {k: statistics.median([r.extra["link"]["by_kind"].get(k, 0) for r in self.runs]) for k in kinds}

    def as_dict(self):
        d = {
            "id": self.id, "label": self.label, "tool": self.tool, "command": self.command,
            "note": self.note, "wall_s": self.wall(), "maxrss_kib": self.stat("maxrss_kib"),
            "cpu_s_median": self.cpu(), "server_cpu_s_median": statistics.median(self.values("server_cpu_s")),
            "runs": [r.as_dict() for r in self.runs],
        }
        if self.runs and "link" in self.runs[0].extra:
            d["link"] = {"profile": self.link_profile, "requests": self.link_stat("requests"),
                         "requests_by_kind_median": self.link_kinds(),
                         "bytes_down": self.link_stat("bytes_down"), "bytes_up": self.link_stat("bytes_up"),
                         "proxy_cpu_s_median": self.link_stat("proxy_cpu_s")["median"]}
        if self.scale != 1.0:
            d["extrapolation"] = {"factor": self.scale, "fixed_s": self.offset_s,
                                  "measured_wall_s": self.stat("wall_s")}
        return d


class Floor(Figure):
    """Bare S3 requests timed inside s3_floor.py: the figure is the in-process time."""

    def __init__(self, fid, label, command, part, note=""):
        super().__init__(fid, label, "bare S3", command, note)
        self.part = part  # "list_s", "get_s" or "total"

    def wall(self):
        if self.part == "total":
            values = [r.extra["list_s"] + r.extra["get_s"] for r in self.runs]
        else:
            values = [r.extra[self.part] for r in self.runs]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def floor_run(argv, env, server):
    run, out = timed(argv, env=env, server=server, capture=True)
    run.extra = json.loads(out)
    return run


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.cfg = dict(QUICK if args.quick else FULL)
        if args.runs:
            self.cfg["runs"] = args.runs
            self.cfg["b1_runs"] = min(args.runs, self.cfg["b1_runs"])
            self.cfg["link_runs"] = min(args.runs, self.cfg["link_runs"])
            self.cfg["huge_runs"] = min(args.runs, self.cfg["huge_runs"])
        self.links = args.link
        self.work = Path(tempfile.mkdtemp(prefix="tfr-bench-"))
        (self.work / "terraformrc").write_text("disable_checkpoint = true\n")
        (self.work / "aws-config").write_text("")
        (self.work / "aws-credentials").write_text("")
        self.empty = self.work / "empty"   # -C for list/diff: no configuration, no backend
        self.empty.mkdir()
        self.figures = {}
        self.servers = []
        self.proxies = []
        self.link_parameters = {}
        self.facts = {}
        self.meta = {}
        self._caches = 0

    # -- helpers -------------------------------------------------------------------------

    def figure(self, fid, *a, cls=Figure, **kw):
        f = cls(fid, *a, **kw)
        self.figures[fid] = f
        return f

    def fresh_cache(self):
        self._caches += 1
        path = self.work / "caches" / f"c{self._caches}"
        path.mkdir(parents=True)
        return path

    def tfr(self, endpoint, bucket, key, *command):
        return [str(self.bin), "-C", str(self.empty), "--bucket", bucket, "--key", key,
                "--region", REGION, "--endpoint-url", endpoint, "--path-style", "--json", *command]

    # -- set-up --------------------------------------------------------------------------

    def build(self):
        if self.args.binary:
            self.bin = Path(self.args.binary).resolve()
            if not (self.bin.is_file() and os.access(self.bin, os.X_OK)):
                raise BenchError(f"--binary {self.args.binary}: not an executable file")
            log("not building (--binary): using the binary given")
            self.meta["build_s"] = None
            self.meta["binary"] = "given with --binary"
            return
        if self.args.no_build:
            log("not building (--no-build): using the binary the last `cargo build --release` left")
            self.meta["build_s"] = None
        else:
            log("building tfrollback (cargo build --release)")
            started = time.monotonic()
            try:
                subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, timeout=3600)
            except subprocess.CalledProcessError as error:
                raise BenchError("`cargo build --release` failed (its errors are above); the benchmark "
                                 "measures the working tree, so it must build") from error
            self.meta["build_s"] = round(time.monotonic() - started, 1)
        meta = json.loads(check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                       env=os.environ, cwd=REPO))
        self.bin = Path(meta["target_directory"]) / "release" / "tfrollback"
        if not self.bin.is_file():
            raise BenchError(f"cargo build --release did not produce {self.bin}")

    def describe_machine(self):
        import boto3
        import moto

        def first_line(argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                      env=child_env(self.work, "http://127.0.0.1:1")).stdout.strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "unknown"

        tf = json.loads(check_output(["terraform", "version", "-json"],
                                     env=child_env(self.work, "http://127.0.0.1:1")))
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem_kib = 0
        try:
            mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            pass
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        self.meta.update({
            "note": self.args.note,
            "loadavg_1m_at_start": round(LOAD_AT_START, 2),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": "quick" if self.args.quick else "full",
            "cores": os.cpu_count(),
            "cpu": cpu,
            "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "os": f"{platform.system()} {platform.release()}",
            "tfrollback": first_line([str(self.bin), "--version"]),
            "git_commit": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "git_src_dirty": bool(dirty),
            "rustc": first_line(["rustc", "--version"]),
            "terraform": tf["terraform_version"],
            "moto": moto.__version__,
            "moto_lean_listing": True,
            "python": platform.python_version(),
            "boto3": boto3.__version__,
            "aws_cli": first_line(["aws", "--version"]),
            "jq": first_line(["jq", "--version"]),
            "config": self.cfg,
        })

    def base_state(self):
        """terraform applies the generated configuration once; its state body is the base."""
        server = Server(self.work, "base")
        self.servers.append(server)
        try:
            create_bucket(server.endpoint, "bench-base")
            stack = self.work / "base"
            stack.mkdir()
            (stack / "main.tf").write_text(workload.base_config())
            (stack / "backend.tf").write_text(backend_tf("bench-base", "base/terraform.tfstate"))
            env = child_env(self.work, server.endpoint)
            check_output(["terraform", "init", "-input=false"], env=env, cwd=stack)
            log(f"terraform apply of {workload.BASE_RESOURCES} terraform_data resources and 20 outputs")
            argv = ["terraform", "apply", "-auto-approve", "-input=false"]
            for name, value in workload.BASE_VARS.items():
                argv += ["-var", f"{name}={value}"]
            started = time.monotonic()
            check_output(argv, env=env, cwd=stack)
            self.facts["base_apply_s"] = round(time.monotonic() - started, 1)
            s3 = s3_client(server.endpoint)
            body = s3.get_object(Bucket="bench-base", Key="base/terraform.tfstate")["Body"].read()
        finally:
            server.stop()
        workload.check_layout(body)
        doc, resources = workload.split(body)
        if len(resources) != workload.BASE_RESOURCES or len(doc["outputs"]) != 20:
            raise BenchError(f"the base state has {len(resources)} resources and "
                             f"{len(doc['outputs'])} outputs; expected {workload.BASE_RESOURCES} and 20")
        self.base_doc, self.base_resources = doc, resources
        self.facts["base_state_bytes"] = len(body)
        self.facts["base_serial"] = doc["serial"]
        log(f"base state: {len(body):,} bytes, serial {doc['serial']}, lineage {doc['lineage']}")

    def upload_list_versions(self, s3, bucket, key, n):
        """Uploads n deploy versions of the ~1 MB state; returns (expected listing: [(version_id,
        serial, active_slot)] newest first, body sizes oldest first)."""
        text = workload.resources_text(self.base_resources)
        serial0 = self.base_doc["serial"]
        docs = [workload.deploy(self.base_doc, serial0 + i, i) for i in range(1, n + 1)]
        bodies = [workload.render(d, text) for d in docs]
        log(f"uploading {n} versions of a {len(bodies[-1]):,}-byte state")
        ids = upload(s3, bucket, key, bodies)
        expected = [(vid, d["serial"], d["outputs"]["active_slot"]["value"])
                    for vid, d in zip(reversed(ids), reversed(docs))]
        return expected, [len(b) for b in bodies]

    # -- phase 1: list over N versions of a ~1 MB state ----------------------------------

    def phase_list(self):
        n, runs = self.cfg["versions"], self.cfg["runs"]
        bucket, key = "bench-list", "app/terraform.tfstate"
        server = Server(self.work, "list-1mb")
        self.servers.append(server)
        try:
            s3 = create_bucket(server.endpoint, bucket)
            expected, sizes = self.upload_list_versions(s3, bucket, key, n)
            self.facts["list_pairs_within_5s"] = pairs_within(s3, bucket, key, 5)
            self.facts["list_versions"] = n
            self.facts["list_state_bytes"] = sizes[-1]
            self.facts["list_total_bytes"] = sum(sizes)
            server.mark("after set-up")
            env = child_env(self.work, server.endpoint)
            tfr = lambda *c: self.tfr(server.endpoint, bucket, key, *c)

            cold = self.figure("list_cold", f"tfrollback list, all {n} versions, cold cache",
                               "tfrollback", "tfrollback list --json (fresh XDG_CACHE_HOME)")
            warm = self.figure("list_warm", f"tfrollback list, all {n} versions, warm cache",
                               "tfrollback", "tfrollback list --json (cache filled by a previous list)")
            lim = self.figure("list_limit20", f"tfrollback list --limit {LIMIT}, cold cache",
                              "tfrollback", f"tfrollback list --limit {LIMIT} --json (fresh XDG_CACHE_HOME)")
            show = self.figure("show_cold", "tfrollback show VERSION (the newest), cold cache", "tfrollback",
                               "tfrollback show VERSION --json (fresh XDG_CACHE_HOME)")
            b2 = self.figure("b2", f"B2: boto3, 16 threads, whole bodies + json, {n} versions",
                             "baseline", "python3 benches/b2_list.py BUCKET KEY")
            fl_list = self.figure("floor_list", "bare S3: ListObjectVersions alone (boto3)",
                                  "benches/s3_floor.py (in-process time)", "list_s", cls=Floor)
            fl_gets = self.figure("floor_gets", f"bare S3: {n} GETs, 16 threads, bodies read, no parsing (boto3)",
                                  "benches/s3_floor.py (in-process time)", "get_s", cls=Floor)
            aws_list = self.figure("b1_listing", "bare S3: aws s3api list-object-versions alone (B1's first step)",
                                   "baseline", "aws s3api list-object-versions --bucket B --prefix KEY")
            b2_argv = [sys.executable, str(BENCHES / "b2_list.py"), bucket, key]
            floor_argv = [sys.executable, str(BENCHES / "s3_floor.py"), bucket, key, "16"]
            kib = HEAD_BYTES // 1024
            fl_heads = self.figure("floor_heads", f"bare S3: listing + one {kib} KiB ranged GET per version, "
                                   f"{FLOOR_THREADS} threads (boto3)",
                                   f"benches/s3_floor.py --range-bytes {HEAD_BYTES} (in-process time)", "total",
                                   cls=Floor)
            heads_argv = [sys.executable, str(BENCHES / "s3_floor.py"), "--range-bytes", str(HEAD_BYTES), bucket,
                          key, str(FLOOR_THREADS)]
            aws_argv = ["aws", "s3api", "list-object-versions", "--bucket", bucket, "--prefix", key,
                        "--output", "json"]

            log("checks: tfrollback list, list --limit, B2 outputs")
            self.check_list(check_output(tfr("list"), env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected, "tfrollback list")
            self.check_list(check_output(tfr("list", "--limit", str(LIMIT)),
                                         env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected[:LIMIT], f"tfrollback list --limit {LIMIT}")
            self.check_list(check_output(b2_argv, env=env), expected, "B2")
            show_argv = tfr("show", expected[0][0])
            self.check_show(check_output(show_argv, env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected[0], "tfrollback show")
            warm_cache = self.fresh_cache()
            check_output(tfr("list"), env=child_env(self.work, server.endpoint, warm_cache))
            self.check_list(check_output(tfr("list"), env=child_env(self.work, server.endpoint, warm_cache)),
                            expected, "tfrollback list (warm cache)")
            check_output(floor_argv, env=env)
            check_output(heads_argv, env=env)
            check_output(aws_argv, env=env)
            server.mark("after checks")

            for i in range(runs):
                log(f"list phase: run {i + 1}/{runs}")
                cold.add(timed(tfr("list"), env=child_env(self.work, server.endpoint, self.fresh_cache()),
                               server=server)[0])
                warm.add(timed(tfr("list"), env=child_env(self.work, server.endpoint, warm_cache),
                               server=server)[0])
                lim.add(timed(tfr("list", "--limit", str(LIMIT)),
                              env=child_env(self.work, server.endpoint, self.fresh_cache()), server=server)[0])
                show.add(timed(show_argv, env=child_env(self.work, server.endpoint, self.fresh_cache()),
                               server=server)[0])
                b2.add(timed(b2_argv, env=env, server=server)[0])
                run = floor_run(floor_argv, env, server)
                fl_list.add(run)
                fl_gets.add(run)
                fl_heads.add(floor_run(heads_argv, env, server))
                aws_list.add(timed(aws_argv, env=env, server=server)[0])
            server.mark("after tfrollback and B2 runs")
            self.phase_b1(server, bucket, key, expected, self.cfg["b1_runs"])
            server.mark("end")
        finally:
            self.phases.append(server.stop())

    def phase_b1(self, server, bucket, key, expected, runs):
        n, sample = len(expected), self.cfg["b1_sample"]
        env = child_env(self.work, server.endpoint)
        argv = ["bash", str(BENCHES / "b1_list.sh"), bucket, key]
        log(f"B1: calibration run over the newest {sample} versions")
        run, out = timed(argv + [str(sample)], env=env, server=server, capture=True)
        self.check_b1(out, expected[:sample])
        listing = self.figures["b1_listing"].stat("wall_s")["median"]
        per_version = max(run.wall_s - listing, 0.0) / sample
        projected = listing + per_version * n
        self.facts["b1_projected_full_run_s"] = round(projected, 1)
        sampled = projected > self.cfg["b1_full_run_limit_s"] and sample < n
        count = sample if sampled else n
        label = f"B1: aws s3api + jq, sequential, {n} versions"
        note = ""
        if sampled:
            note = (f"measured over the newest {sample} of {n} versions, extrapolated linearly: "
                    f"listing + (run - listing) x {n}/{sample}, with listing = median of "
                    f"`aws s3api list-object-versions` alone")
            label += f" (extrapolated from {sample})"
        b1 = self.figure("b1", label, "baseline", "bash benches/b1_list.sh BUCKET KEY [LIMIT]", note=note)
        if sampled:
            b1.scale = n / sample
            b1.offset_s = listing
        else:
            run, out = timed(argv, env=env, server=server, capture=True)
            self.check_b1(out, expected)
        log(f"B1: {runs} runs over {count} versions (one run projected at {projected:.0f} s for all {n})")
        for i in range(runs):
            b1.add(timed(argv + [str(count)], env=env, server=server)[0])

    # -- phase 2: 30 MB states: list's RSS, diff ----------------------------------------

    def phase_big(self):
        nres, nver, runs = self.cfg["big_resources"], self.cfg["big_versions"], self.cfg["runs"]
        bucket = "bench-big"
        diff_key, list_key = "big/terraform.tfstate", "big-list/terraform.tfstate"
        log(f"building {nres:,}-resource states from the terraform-written entries")
        res_a = workload.replicate(self.base_resources, nres)
        res_b, changed = workload.change_every(res_a, 100)
        text_a, text_b = workload.resources_text(res_a), workload.resources_text(res_b)
        del res_a, res_b
        serial0 = self.base_doc["serial"]
        body_a = workload.render(workload.deploy(self.base_doc, serial0 + 1, 1, nres), text_a)
        body_b = workload.render(workload.deploy(self.base_doc, serial0 + 2, 2, nres), text_b)
        self.facts.update({"big_resources": nres, "big_changed_resources": len(changed),
                           "big_state_a_bytes": len(body_a), "big_state_b_bytes": len(body_b),
                           "big_list_versions": nver})
        server = Server(self.work, "big-30mb")
        self.servers.append(server)
        try:
            s3 = create_bucket(server.endpoint, bucket)
            log(f"uploading 2 + {nver} versions of the {len(body_a) / MIB:.1f} MiB state")
            id_a, id_b = upload(s3, bucket, diff_key, [body_a, body_b])
            del body_a, body_b
            list_docs = [workload.deploy(self.base_doc, serial0 + i, i, nres) for i in range(1, nver + 1)]
            list_ids = []
            for d in list_docs:  # one body at a time: the driver's own memory stays small
                list_ids += upload(s3, bucket, list_key, [workload.render(d, text_a)])
            self.facts["big_list_state_bytes"] = len(workload.render(list_docs[-1], text_a))
            del text_a, text_b
            expected = [(vid, d["serial"], d["outputs"]["active_slot"]["value"])
                        for vid, d in zip(reversed(list_ids), reversed(list_docs))]
            server.mark("after set-up")
            env = child_env(self.work, server.endpoint)

            big_list = self.figure("list_big_cold", f"tfrollback list, {nver} versions of the ~30 MB state, cold cache",
                                   "tfrollback", "tfrollback list --json (fresh XDG_CACHE_HOME)")
            diff = self.figure("diff", "tfrollback diff V1 --against V2 (two ~30 MB versions)", "tfrollback",
                               "tfrollback diff V1 --against V2 --json")
            pydiff = self.figure("diff_python", "Python json diff of the two ~30 MB versions", "baseline",
                                 "python3 benches/diff_baseline.py BUCKET KEY V1 V2")
            fl_diff = self.figure("floor_diff_gets", "bare S3: the 2 GETs of the diff, 2 threads (boto3)",
                                  "benches/s3_floor.py (in-process time)", "get_s", cls=Floor)
            fl_big = self.figure("floor_big_list", f"bare S3: listing + {nver} GETs of ~30 MB, 16 threads (boto3)",
                                 "benches/s3_floor.py (in-process time)", "total", cls=Floor)
            diff_argv = self.tfr(server.endpoint, bucket, diff_key, "diff", id_a, "--against", id_b)
            list_argv = self.tfr(server.endpoint, bucket, list_key, "list")
            pydiff_argv = [sys.executable, str(BENCHES / "diff_baseline.py"), bucket, diff_key, id_a, id_b]
            fl_diff_argv = [sys.executable, str(BENCHES / "s3_floor.py"), bucket, diff_key, "2", id_a, id_b]
            fl_big_argv = [sys.executable, str(BENCHES / "s3_floor.py"), bucket, list_key, "16"]

            log("checks: tfrollback diff against the Python diff, list of the 30 MB key")
            want = sorted(f"terraform_data.{c.split('.', 1)[1]}" for c in changed)
            got = json.loads(check_output(diff_argv, env=env))
            py = json.loads(check_output(pydiff_argv, env=env))
            for who, result in (("tfrollback diff", got), ("the Python diff", py)):
                res = result["resources"]
                if sorted(res["changed"]) != want or res["added"] or res["removed"]:
                    raise BenchError(f"{who} found {len(res['changed'])} changed / {len(res['added'])} added / "
                                     f"{len(res['removed'])} removed resources; expected {len(want)} changed")
            names = lambda r: sorted(o["name"] for o in r["outputs"])
            if names(got) != names(py):
                raise BenchError(f"tfrollback diff and the Python diff disagree on outputs: {names(got)} vs {names(py)}")
            self.facts["diff_changed_outputs"] = names(got)
            self.check_list(check_output(list_argv, env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected, "tfrollback list (30 MB states)")
            check_output(fl_diff_argv, env=env)
            server.mark("after checks")

            for i in range(runs):
                log(f"30 MB phase: run {i + 1}/{runs}")
                big_list.add(timed(list_argv, env=child_env(self.work, server.endpoint, self.fresh_cache()),
                                   server=server)[0])
                diff.add(timed(diff_argv, env=env, server=server)[0])
                pydiff.add(timed(pydiff_argv, env=env, server=server)[0])
                fl_diff.add(floor_run(fl_diff_argv, env, server))
                fl_big.add(floor_run(fl_big_argv, env, server))
            server.mark("end")
        finally:
            self.phases.append(server.stop())

    # -- phase 2b: 100 MB states: list's and show's RSS, what diff costs -----------------

    def phase_huge(self):
        nres, nver, runs = self.cfg["huge_resources"], self.cfg["huge_versions"], self.cfg["huge_runs"]
        bucket = "bench-huge"
        diff_key, list_key = "huge/terraform.tfstate", "huge-list/terraform.tfstate"
        log(f"building {nres:,}-resource states from the terraform-written entries")
        res_a = workload.replicate(self.base_resources, nres, seed=7)
        res_b, changed = workload.change_every(res_a, 100)
        text_a, text_b = workload.resources_text(res_a), workload.resources_text(res_b)
        del res_a, res_b
        serial0 = self.base_doc["serial"]
        body_a = workload.render(workload.deploy(self.base_doc, serial0 + 1, 1, nres), text_a)
        body_b = workload.render(workload.deploy(self.base_doc, serial0 + 2, 2, nres), text_b)
        del text_b
        self.facts.update({"huge_resources": nres, "huge_changed_resources": len(changed),
                           "huge_state_a_bytes": len(body_a), "huge_state_b_bytes": len(body_b),
                           "huge_list_versions": nver, "huge_runs": runs})
        server = Server(self.work, "huge-100mb")
        self.servers.append(server)
        try:
            s3 = create_bucket(server.endpoint, bucket)
            log(f"uploading 2 + {nver} versions of the {len(body_a) / MIB:.1f} MiB state")
            id_a, id_b = upload(s3, bucket, diff_key, [body_a, body_b])
            del body_a, body_b
            list_docs = [workload.deploy(self.base_doc, serial0 + i, i, nres) for i in range(1, nver + 1)]
            list_ids = []
            for d in list_docs:  # one body at a time: the driver's own memory stays small
                list_ids += upload(s3, bucket, list_key, [workload.render(d, text_a)])
            self.facts["huge_list_state_bytes"] = len(workload.render(list_docs[-1], text_a))
            del text_a
            expected = [(vid, d["serial"], d["outputs"]["active_slot"]["value"])
                        for vid, d in zip(reversed(list_ids), reversed(list_docs))]
            server.mark("after set-up")
            env = child_env(self.work, server.endpoint)

            huge_list = self.figure("list_huge_cold",
                                    f"tfrollback list, {nver} versions of the ~100 MB state, cold cache",
                                    "tfrollback", "tfrollback list --json (fresh XDG_CACHE_HOME)")
            huge_show = self.figure("show_huge_cold", "tfrollback show VERSION of the ~100 MB state, cold cache",
                                    "tfrollback", "tfrollback show VERSION --json (fresh XDG_CACHE_HOME)")
            diff = self.figure("diff_huge", "tfrollback diff V1 --against V2 (two ~100 MB versions)", "tfrollback",
                               "tfrollback diff V1 --against V2 --json")
            pydiff = self.figure("diff_huge_python", "Python json diff of the two ~100 MB versions", "baseline",
                                 "python3 benches/diff_baseline.py BUCKET KEY V1 V2")
            fl_diff = self.figure("floor_huge_diff_gets", "bare S3: the 2 GETs of the diff, 2 threads (boto3)",
                                  "benches/s3_floor.py (in-process time)", "get_s", cls=Floor)
            diff_argv = self.tfr(server.endpoint, bucket, diff_key, "diff", id_a, "--against", id_b)
            list_argv = self.tfr(server.endpoint, bucket, list_key, "list")
            show_argv = self.tfr(server.endpoint, bucket, list_key, "show", expected[0][0])
            pydiff_argv = [sys.executable, str(BENCHES / "diff_baseline.py"), bucket, diff_key, id_a, id_b]
            fl_diff_argv = [sys.executable, str(BENCHES / "s3_floor.py"), bucket, diff_key, "2", id_a, id_b]

            log("checks: tfrollback diff against the Python diff, list and show of the 100 MB key")
            want = sorted(f"terraform_data.{c.split('.', 1)[1]}" for c in changed)
            got = json.loads(check_output(diff_argv, env=env))
            py = json.loads(check_output(pydiff_argv, env=env))
            for who, result in (("tfrollback diff", got), ("the Python diff", py)):
                res = result["resources"]
                if sorted(res["changed"]) != want or res["added"] or res["removed"]:
                    raise BenchError(f"{who} found {len(res['changed'])} changed / {len(res['added'])} added / "
                                     f"{len(res['removed'])} removed resources; expected {len(want)} changed")
            self.check_list(check_output(list_argv, env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected, "tfrollback list (100 MB states)")
            self.check_show(check_output(show_argv, env=child_env(self.work, server.endpoint, self.fresh_cache())),
                            expected[0], "tfrollback show (100 MB state)")
            check_output(fl_diff_argv, env=env)
            server.mark("after checks")

            for i in range(runs):
                log(f"100 MB phase: run {i + 1}/{runs}")
                huge_list.add(timed(list_argv, env=child_env(self.work, server.endpoint, self.fresh_cache()),
                                    server=server)[0])
                huge_show.add(timed(show_argv, env=child_env(self.work, server.endpoint, self.fresh_cache()),
                                    server=server)[0])
                diff.add(timed(diff_argv, env=env, server=server)[0])
                pydiff.add(timed(pydiff_argv, env=env, server=server)[0])
                fl_diff.add(floor_run(fl_diff_argv, env, server))
            server.mark("end")
        finally:
            self.phases.append(server.stop())

    # -- phase 3: tfrollback to on the blue/green fixture --------------------------------

    def phase_to(self):
        runs = self.cfg["runs"]
        bucket, key, table = "bench-to", "app/terraform.tfstate", "bench-to-locks"
        server = Server(self.work, "to-bluegreen")
        self.servers.append(server)
        try:
            create_bucket(server.endpoint, bucket, table)
            stack = self.work / "stack"
            stack.mkdir()
            for tf in (REPO / "fixtures" / "bluegreen").glob("*.tf"):
                shutil.copy(tf, stack / tf.name)
            (stack / "backend.tf").write_text(backend_tf(bucket, key, table))
            env = child_env(self.work, server.endpoint)
            self.to_stack, self.to_env = stack, env
            tf = lambda *a: self.unstuck(lambda: check_output(["terraform", *a], env=env, cwd=stack))
            apply = ["apply", "-auto-approve", "-input=false", "-compact-warnings"]
            green = apply + ["-var", "active_slot=green", "-var", "blue_version=v1", "-var", "green_version=v2"]
            log("blue/green stack: init, deploy v1 on blue, then v2 on green")
            tf("init", "-input=false")
            tf(*apply, "-var", "active_slot=blue", "-var", "blue_version=v1")
            tf(*green)
            self.pad_history(server.endpoint, bucket, key, table, TO_HISTORY)
            tf(*green)  # terraform reads the padded history's current version: nothing to change
            server.mark("after set-up")
            to_argv = [str(self.bin), "-C", str(stack), "--json", "to", "previous", "--auto-approve",
                       "--max-destroy", "10"]

            log("check: tfrollback to previous")
            report = json.loads(check_output(to_argv, env=env))
            if report.get("status") != "rolled_back" or not report.get("verified"):
                raise BenchError(f"tfrollback to previous did not roll back and verify: {json.dumps(report)[:2000]}")
            var_file = stack / "tfrollback.tfvars.json"
            values = json.loads(var_file.read_text())
            if values.get("active_slot") != "blue" or values.get("green_version") != "v1":
                raise BenchError(f"unexpected rollback variables: {values}")
            self.facts["to_plan"] = report.get("plan")
            self.facts["to_variables"] = values
            baseline_vars = self.work / "baseline.tfvars.json"
            shutil.copy(var_file, baseline_vars)
            base_argv = ["bash", str(BENCHES / "to_baseline.sh"), str(stack), str(baseline_vars)]
            tf(*green)
            check_output(base_argv, env=env)  # the same rollback by hand, checked once (verify exit 0)
            tf(*green)
            server.mark("after checks")

            to = self.figure("to", "tfrollback to previous --auto-approve --max-destroy 10", "tfrollback",
                             "tfrollback to previous --auto-approve --max-destroy 10 --json")
            direct = self.figure("to_terraform", "terraform plan -out + apply plan + verify plan, directly",
                                 "baseline", "bash benches/to_baseline.sh STACK VAR_FILE")
            for i in range(runs):
                log(f"to phase: run {i + 1}/{runs}")
                to.add(timed(to_argv, env=env, server=server)[0])
                tf(*green)
                direct.add(self.unstuck(lambda: timed(base_argv, env=env, server=server)[0], lambda: tf(*green)))
                tf(*green)
            server.mark("after direct runs")
            if LINK_TARGET_PROFILE in self.links:
                self.to_over_link(server, to_argv, base_argv, lambda: tf(*green), self.cfg["link_runs"])
            server.mark("end")
        finally:
            self.phases.append(server.stop())

    # -- phase 4: list and its baselines over an emulated link ---------------------------

    def phase_link(self):
        """list, B2 and the bare requests through benches/linkproxy.py, once per profile, against
        one server holding the list workload. Every run's requests and bytes come from the proxy."""
        n, runs = self.cfg["versions"], self.cfg["link_runs"]
        bucket, key = "bench-link", "app/terraform.tfstate"
        server = Server(self.work, "link-1mb")
        self.servers.append(server)
        try:
            s3 = create_bucket(server.endpoint, bucket)
            expected, _ = self.upload_list_versions(s3, bucket, key, n)
            server.mark("after set-up")
            floor_py = [sys.executable, str(BENCHES / "s3_floor.py"), "--range-bytes", str(HEAD_BYTES)]
            floor_argv = floor_py + [bucket, key, str(FLOOR_THREADS)]
            seq_argv = floor_py + ["--count", str(SEQ_GETS), bucket, key, "1"]
            b2_argv = [sys.executable, str(BENCHES / "b2_list.py"), bucket, key]
            kib = HEAD_BYTES // 1024
            seq_label = f"bare S3: {SEQ_GETS} sequential {kib} KiB ranged GETs, 1 thread (boto3)"
            seq_command = f"benches/s3_floor.py --range-bytes {HEAD_BYTES} --count {SEQ_GETS} (in-process time)"
            direct_env = child_env(self.work, server.endpoint)
            direct = self.figure("link_direct_seq", seq_label + ", direct (no link)", seq_command, "get_s",
                                 cls=Floor)
            check_output(seq_argv, env=direct_env)
            for number, profile in enumerate(self.links):
                proxy = LinkProxy(self.work, profile, server)
                self.proxies.append(proxy)
                self.link_parameters[profile] = proxy.parameters
                try:
                    endpoint = proxy.endpoint
                    env = child_env(self.work, endpoint)
                    tfr = lambda *c: self.tfr(endpoint, bucket, key, *c)
                    fig = lambda name, *a, **kw: self.figure(f"link_{profile}_{name}", *a, **kw)
                    cold = fig("list_cold", f"tfrollback list, all {n} versions, cold cache", "tfrollback",
                               "tfrollback list --json (fresh XDG_CACHE_HOME)")
                    warm = fig("list_warm", f"tfrollback list, all {n} versions, warm cache", "tfrollback",
                               "tfrollback list --json (cache filled by a previous list through the link)")
                    lim = fig("list_limit20", f"tfrollback list --limit {LIMIT}, cold cache", "tfrollback",
                              f"tfrollback list --limit {LIMIT} --json (fresh XDG_CACHE_HOME)")
                    b2 = fig("b2", f"B2: boto3, 16 threads, whole bodies + json, {n} versions", "baseline",
                             "python3 benches/b2_list.py BUCKET KEY")
                    floor = fig("floor", f"floor: listing + one {kib} KiB ranged GET per version, "
                                f"{FLOOR_THREADS} threads (boto3)",
                                f"benches/s3_floor.py --range-bytes {HEAD_BYTES} BUCKET KEY {FLOOR_THREADS} "
                                "(in-process time)", "total", cls=Floor)
                    seq = fig("seq", seq_label, seq_command, "get_s", cls=Floor)
                    for f in (cold, warm, lim, b2, floor, seq):
                        f.link_profile = profile

                    log(f"link {profile}: checks of tfrollback list, list --limit, B2 through the link")
                    self.check_list(check_output(tfr("list"), env=child_env(self.work, endpoint, self.fresh_cache())),
                                    expected, f"tfrollback list ({profile} link)")
                    self.check_list(check_output(tfr("list", "--limit", str(LIMIT)),
                                                 env=child_env(self.work, endpoint, self.fresh_cache())),
                                    expected[:LIMIT], f"tfrollback list --limit {LIMIT} ({profile} link)")
                    self.check_list(check_output(b2_argv, env=env), expected, f"B2 ({profile} link)")
                    warm_cache = self.fresh_cache()
                    check_output(tfr("list"), env=child_env(self.work, endpoint, warm_cache))
                    self.check_list(check_output(tfr("list"), env=child_env(self.work, endpoint, warm_cache)),
                                    expected, f"tfrollback list, warm cache ({profile} link)")
                    answer = json.loads(check_output(floor_argv, env=env))
                    if answer["objects"] != n or answer["bytes"] != n * HEAD_BYTES:
                        raise BenchError(f"the floor read {answer['objects']} versions, {answer['bytes']} bytes; "
                                         f"expected {n} and {n * HEAD_BYTES}")
                    check_output(seq_argv, env=env)

                    def timed_run(argv, cache=None):
                        return proxy.measure(lambda: timed(argv, env=child_env(self.work, endpoint, cache),
                                                           server=server)[0])

                    for i in range(runs):
                        log(f"link {profile}: run {i + 1}/{runs}")
                        cold.add(timed_run(tfr("list"), self.fresh_cache()))
                        warm.add(timed_run(tfr("list"), warm_cache))
                        lim.add(timed_run(tfr("list", "--limit", str(LIMIT)), self.fresh_cache()))
                        b2.add(timed_run(b2_argv))
                        floor.add(proxy.measure(lambda: floor_run(floor_argv, env, server)))
                        seq.add(proxy.measure(lambda: floor_run(seq_argv, env, server)))
                        if number == 0:  # once per run is enough: it does not depend on the profile
                            direct.add(floor_run(seq_argv, direct_env, server))
                finally:
                    proxy.stop()
            server.mark("end")
        finally:
            self.phases.append(server.stop())

    def pad_history(self, endpoint, bucket, key, table, total):
        """Makes the state's history `total` versions long, as after many blue/green flips:
        copies of the two versions terraform wrote (blue, then green), alternating, each with the
        next serial, ending on green as it is now; then sets the DynamoDB digest to the last one,
        as terraform would have."""
        import hashlib
        import boto3
        s3 = s3_client(endpoint)
        listed = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["Key"] == key]
        if len(listed) != 2:
            raise BenchError(f"expected the 2 versions terraform wrote, found {len(listed)}")
        # Written within the same second, maybe: the latest is green.
        ids = [v["VersionId"] for v in sorted(listed, key=lambda v: v["IsLatest"])]
        blue, green = (json.loads(s3.get_object(Bucket=bucket, Key=key, VersionId=i)["Body"].read()) for i in ids)
        if (blue["outputs"]["active_slot"]["value"], green["outputs"]["active_slot"]["value"]) != ("blue", "green"):
            raise BenchError("terraform's two versions are not blue, then green")
        serial = green["serial"]
        bodies = []
        for i in range(total - 2):
            doc = dict(blue if i % 2 == 0 else green)
            serial += 1
            doc["serial"] = serial
            bodies.append((json.dumps(doc, indent=2) + "\n").encode())
        log(f"padding the history to {total} versions ({len(bodies)} copies of terraform's two states)")
        upload(s3, bucket, key, bodies)
        boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
                     aws_secret_access_key="test").put_item(
            TableName=table,
            Item={"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": hashlib.md5(bodies[-1]).hexdigest()}})
        self.facts["to_history_versions"] = total

    def to_over_link(self, server, to_argv, base_argv, reset, runs):
        """`tfrollback to previous` and the terraform-only baseline through the `wan` link
        (tfrollback and terraform both take the endpoint from AWS_ENDPOINT_URL); the untimed
        resets between runs go direct."""
        profile = LINK_TARGET_PROFILE
        proxy = LinkProxy(self.work, profile, server)
        self.proxies.append(proxy)
        self.link_parameters.setdefault(profile, proxy.parameters)
        try:
            env = child_env(self.work, proxy.endpoint)
            log(f"link {profile}: check of tfrollback to previous through the link")
            report = json.loads(check_output(to_argv, env=env))
            if report.get("status") != "rolled_back" or not report.get("verified"):
                raise BenchError(f"tfrollback to previous through the {profile} link did not roll back and "
                                 f"verify: {json.dumps(report)[:2000]}")
            reset()
            to = self.figure(f"link_{profile}_to", "tfrollback to previous --auto-approve --max-destroy 10",
                             "tfrollback", "tfrollback to previous --auto-approve --max-destroy 10 --json")
            direct = self.figure(f"link_{profile}_to_terraform",
                                 "terraform plan -out + apply plan + verify plan, directly", "baseline",
                                 "bash benches/to_baseline.sh STACK VAR_FILE")
            to.link_profile = direct.link_profile = profile
            for i in range(runs):
                log(f"link {profile}: to, run {i + 1}/{runs}")
                to.add(proxy.measure(lambda: timed(to_argv, env=env, server=server)[0]))
                reset()
                direct.add(self.unstuck(lambda: proxy.measure(lambda: timed(base_argv, env=env, server=server)[0]),
                                        reset))
                reset()
        finally:
            proxy.stop()

    def unstuck(self, run, reset=None):
        """run(), once more if terraform met its own lock: its SDK retries a lock write whose answer
        moto was slow to give, and the retry meets the item the first attempt wrote (terraform,
        unlike tfrollback, takes that for someone else's lock, and leaves it). The lock is removed
        with `terraform force-unlock`, the stack put back (`reset`), the attempt not counted."""
        try:
            return run()
        except BenchError as error:
            found = re.search(r"Error acquiring the state lock.*?Lock Info:.*?\sID:\s+([0-9a-f-]{36})", str(error),
                              re.S)
            if not found:
                raise
            log(f"terraform met its own lock {found.group(1)}: removing it and running again")
            self.facts["terraform_own_lock_retries"] = self.facts.get("terraform_own_lock_retries", 0) + 1
            check_output(["terraform", "force-unlock", "-force", found.group(1)], env=self.to_env,
                         cwd=self.to_stack)
            if reset:
                reset()
            return run()

    # -- checks --------------------------------------------------------------------------

    @staticmethod
    def check_list(stdout, expected, who):
        """expected: [(version_id, serial, active_slot)] newest first."""
        doc = json.loads(stdout)
        versions = doc["versions"]
        got = [(v["version_id"], v["serial"], v["outputs"].get("active_slot")) for v in versions]
        if got != expected:
            raise BenchError(f"{who} listed {len(got)} versions that differ from the {len(expected)} uploaded "
                             f"(first: {got[:2]} vs {expected[:2]})")
        for v in versions:
            if v["outputs"].get("db_password") != "(sensitive)" or len(v["outputs"]) != 20:
                raise BenchError(f"{who}: version {v['version_id']} does not show 20 outputs with "
                                 f"db_password hidden: {v['outputs']}")

    @staticmethod
    def check_show(stdout, expected, who):
        """expected: (version_id, serial, active_slot) of the version shown."""
        doc = json.loads(stdout)
        got = (doc["version_id"], doc["serial"], doc["outputs"].get("active_slot"))
        if got != expected:
            raise BenchError(f"{who} showed {got}, expected {expected}")
        if doc["outputs"].get("db_password") != "(sensitive)" or len(doc["outputs"]) != 20:
            raise BenchError(f"{who}: does not show 20 outputs with db_password hidden: {doc['outputs']}")

    @staticmethod
    def check_b1(stdout, expected):
        lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
        got = [(v["version_id"], v["serial"], v["outputs"].get("active_slot")) for v in lines]
        if got != expected:
            raise BenchError(f"B1 printed {len(got)} versions that differ from the {len(expected)} expected")

    # -- run -----------------------------------------------------------------------------

    def run(self):
        self.phases = []
        machine_at_start = machine_cpu_s()
        self.build()
        self.describe_machine()
        self.base_state()
        self.phase_list()
        self.phase_big()
        self.phase_huge()
        self.phase_to()
        if self.links:
            self.phase_link()
        self.meta["link_profiles"] = self.link_parameters
        self.meta["benchmark_s"] = round(time.monotonic() - STARTED, 1)
        # What else ran on the machine meanwhile: its busy CPU time less this driver's and its
        # reaped descendants' (servers, proxies, every command measured).
        # Every phase has stopped (and reaped) its server and proxies by now.
        import resource
        own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for f in ("ru_utime", "ru_stime"))
        busy = machine_cpu_s() - machine_at_start
        self.meta["other_cpu_s"] = round(max(busy - own, 0.0), 1)
        self.meta["machine_busy_cpu_s"] = round(busy, 1)

    def cleanup(self):
        for proxy in self.proxies:
            if proxy.proc.poll() is None:
                proxy.stop()
        for server in self.servers:
            if server.proc.poll() is None:
                server.stop()
        if self.args.keep:
            log(f"work directory kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Targets and report
# ------------------------------------------------------------------------------------------

def targets(figs, facts):
    med = lambda f: figs[f].wall()["median"]
    peak = lambda f: figs[f].stat("maxrss_kib")["max"]
    n = facts["list_versions"]
    combined = facts["big_state_a_bytes"] + facts["big_state_b_bytes"]
    rss_1, rss_30, rss_100 = peak("list_cold"), peak("list_big_cold"), peak("list_huge_cold")
    show_1, show_100 = peak("show_cold"), peak("show_huge_cold")
    b1_measured = "extrapolated B1" if figs["b1"].scale != 1.0 else "B1"
    rows = [
        (f"list cold, all {n} versions: >= {COLD_VS_B2:g}x faster than B2",
         med("b2") / med("list_cold"), f">= {COLD_VS_B2:g}x", med("b2") / med("list_cold") >= COLD_VS_B2, "x"),
        (f"list cold, all {n} versions: >= {COLD_VS_B1:g}x faster than B1 ({b1_measured})",
         med("b1") / med("list_cold"), f">= {COLD_VS_B1:g}x", med("b1") / med("list_cold") >= COLD_VS_B1, "x"),
        (f"list warm: >= {WARM_VS_B2:g}x faster than B2",
         med("b2") / med("list_warm"), f">= {WARM_VS_B2:g}x", med("b2") / med("list_warm") >= WARM_VS_B2, "x"),
        (f"list --limit {LIMIT} cold: < {LIMIT20_MAX_S:g} s (median)",
         med("list_limit20"), f"< {LIMIT20_MAX_S:g} s", med("list_limit20") < LIMIT20_MAX_S, "s"),
        ("list peak RSS < 64 MiB, ~1 MB states (max of runs)",
         rss_1 / 1024, "< 64 MiB", rss_1 < LIST_RSS_MAX_KIB, "MiB"),
        ("list peak RSS < 64 MiB, ~30 MB states (max of runs)",
         rss_30 / 1024, "< 64 MiB", rss_30 < LIST_RSS_MAX_KIB, "MiB"),
        ("list peak RSS < 64 MiB, ~100 MB states (max of runs)",
         rss_100 / 1024, "< 64 MiB", rss_100 < LIST_RSS_MAX_KIB, "MiB"),
        (f"list peak RSS does not grow with state size (30 MB / 1 MB <= {RSS_GROWTH_MAX:g})",
         rss_30 / rss_1, f"<= {RSS_GROWTH_MAX:g}x", rss_30 / rss_1 <= RSS_GROWTH_MAX, "x"),
        (f"list peak RSS does not grow with state size (100 MB / 1 MB <= {RSS_GROWTH_MAX:g})",
         rss_100 / rss_1, f"<= {RSS_GROWTH_MAX:g}x", rss_100 / rss_1 <= RSS_GROWTH_MAX, "x"),
        (f"show peak RSS does not grow with state size (100 MB / 1 MB <= {RSS_GROWTH_MAX:g})",
         show_100 / show_1, f"<= {RSS_GROWTH_MAX:g}x", show_100 / show_1 <= RSS_GROWTH_MAX, "x"),
        (f"diff of the two ~30 MB versions: >= {DIFF_VS_PYTHON:g}x faster than the Python diff",
         med("diff_python") / med("diff"), f">= {DIFF_VS_PYTHON:g}x",
         med("diff_python") / med("diff") >= DIFF_VS_PYTHON, "x"),
        (f"diff peak RSS <= {DIFF_RSS_FACTOR:g}x the two states' combined size ({combined / MIB:.1f} MiB)",
         peak("diff") * 1024 / combined, f"<= {DIFF_RSS_FACTOR:g}x",
         peak("diff") * 1024 <= DIFF_RSS_FACTOR * combined, "x"),
        (f"to previous, {facts.get('to_history_versions', 2)} versions in the history: total <= terraform plan + "
         f"apply + verify + {TO_SLACK_S:g} s (medians)",
         med("to") - med("to_terraform"), f"<= +{TO_SLACK_S:g} s",
         med("to") <= med("to_terraform") + TO_SLACK_S, "+s"),
    ]
    out = [{"target": t, "measured": m, "threshold": th, "pass": bool(p), "unit": u, "note": ""}
           for t, m, th, p, u in rows]
    # moto is one Python process: list cold cannot take less time than moto's CPU for its own
    # requests, so B2 / that is the most it can gain here.
    srv = lambda f: statistics.median(figs[f].values("server_cpu_s"))
    moto_cold, moto_heads = srv("list_cold"), srv("floor_heads")
    out[0]["note"] = (f"moto's CPU for list cold's own requests (a head and a tail per version): "
                      f"{fmt_s(moto_cold)}, so at most {med('b2') / moto_cold:.2f}x is possible here; for one "
                      f"ranged GET per version (the heads-only floor): {fmt_s(moto_heads)}. The tails are "
                      f"needed: {facts['list_pairs_within_5s']} of the {n - 1} neighbouring versions were "
                      f"written within 5 s of each other with consecutive serials, as one long apply's "
                      f"snapshots are, and the intermediate-snapshot rule needs their check results"
                      + ("; **server-bound here**" if med("b2") / moto_cold < COLD_VS_B2 else ""))
    return out + link_targets(figs, facts)


def link_targets(figs, facts):
    """The issue's targets over the `wan` link, from the figures measured through it ([] when
    that profile was not measured)."""
    p = LINK_TARGET_PROFILE
    if f"link_{p}_list_cold" not in figs:
        return []
    fig = lambda name: figs[f"link_{p}_{name}"]
    med = lambda name: fig(name).wall()["median"]
    n, kib = facts["list_versions"], HEAD_BYTES // 1024
    cold, floor, b2, lim = med("list_cold"), med("floor"), med("b2"), med("list_limit20")
    # moto is one Python process: it cannot serve the floor's requests in less CPU time than
    # it spent on them, whatever the client; B2 / that is the most any client can gain here.
    moto_s = statistics.median(fig("floor").values("server_cpu_s"))
    possible = b2 / moto_s if moto_s > 0 else float("inf")
    b2_ok = b2 / cold >= LINK_COLD_VS_B2
    bound_note = (f"moto's CPU for the floor's requests: {fmt_s(moto_s)}, so at most {possible:.1f}x is possible "
                  f"here; the floor itself is {b2 / floor:.1f}x B2, and list cold reads a tail beside each head"
                  + ("; **server-bound here**" if possible < LINK_COLD_VS_B2 else ""))
    warm = fig("list_warm").link_stat("requests")
    rows = [
        (f"{p}: list cold, all {n} versions: within {LINK_COLD_VS_FLOOR:g}x of the floor (listing + one "
         f"{kib} KiB ranged GET per version, {FLOOR_THREADS} threads)",
         cold / floor, f"<= {LINK_COLD_VS_FLOOR:g}x", cold / floor <= LINK_COLD_VS_FLOOR, "x", ""),
        (f"{p}: list cold: >= {LINK_COLD_VS_B2:g}x faster than B2 where the server is not the bound",
         b2 / cold, f">= {LINK_COLD_VS_B2:g}x", b2_ok, "x", bound_note),
        (f"{p}: list --limit {LIMIT} cold: < {LINK_LIMIT20_MAX_S:g} s (median)",
         lim, f"< {LINK_LIMIT20_MAX_S:g} s", lim < LINK_LIMIT20_MAX_S, "s", ""),
        (f"{p}: list warm: only the listing request crosses the link (max of runs)",
         warm["max"], f"== {LINK_WARM_REQUESTS} request", warm["max"] == LINK_WARM_REQUESTS, "requests",
         kinds_text(fig("list_warm").link_kinds())),
    ]
    if f"link_{p}_to" in figs:
        to, base = med("to"), med("to_terraform")
        history = facts.get("to_history_versions", 2)
        rows.append((f"{p}: to previous, {history} versions in the history: total <= terraform plan + apply + "
                     f"verify through the same link + {TO_SLACK_S:g} s (medians)",
                     to - base, f"<= +{TO_SLACK_S:g} s", to <= base + TO_SLACK_S, "+s",
                     f"{fmt_s(to)} against {fmt_s(base)}"))
    return [{"target": t, "measured": m, "threshold": th, "pass": bool(ok), "unit": u, "note": note}
            for t, m, th, ok, u, note in rows]


KIND_NAMES = {"list": "listing", "get_whole": "whole-body GET", "get_ranged": "ranged GET", "head": "HEAD",
              "put": "PUT", "post": "POST", "delete": "DELETE", "other": "other"}


def kinds_text(kinds):
    """Requests by kind as text: `1 listing, 300 whole-body GET`."""
    return ", ".join(f"{v:g} {KIND_NAMES.get(k, k)}" for k, v in kinds.items() if v) or "no requests"


def fmt_s(v):
    if v >= 100:
        return f"{v:.0f} s"
    if v >= 10:
        return f"{v:.1f} s"
    if v >= 1:
        return f"{v:.2f} s"
    return f"{v * 1000:.0f} ms"


def fmt_mib(kib):
    return f"{kib / 1024:.1f}"


def fmt_measured(t):
    m, u = t["measured"], t["unit"]
    if u == "x":
        return f"{m:.2f}x" if m < 10 else f"{m:.1f}x" if m < 100 else f"{m:.0f}x"
    if u == "s":
        return fmt_s(m)
    if u == "MiB":
        return f"{m:.1f} MiB"
    if u == "requests":
        return f"{m:g} request{'s' if m != 1 else ''}"
    return f"{m:+.2f} s"


def figure_rows(figs, ids, ratio_to=None):
    rows = ["| command | wall, median (min–max) | peak RSS MiB, median (min–max) | CPU user+sys, median "
            "| moto CPU, median |" + (" vs tfrollback |" if ratio_to else ""),
            "|---|---|---|---|---|" + ("---|" if ratio_to else "")]
    for fid in ids:
        f = figs[fid]
        w, r = f.wall(), f.stat("maxrss_kib")
        label = f.label + (" †" if f.note else "")
        if isinstance(f, Floor):
            rss, cpu = "—", "—"
        else:
            rss = f"{fmt_mib(r['median'])} ({fmt_mib(r['min'])}–{fmt_mib(r['max'])})"
            cpu = fmt_s(f.cpu())
        cells = [label, f"{fmt_s(w['median'])} ({fmt_s(w['min'])}–{fmt_s(w['max'])})", rss, cpu,
                 fmt_s(statistics.median(f.values("server_cpu_s")))]
        if ratio_to:
            ref = figs[ratio_to.get(fid, "")] if ratio_to.get(fid) else None
            cells.append(f"{w['median'] / ref.wall()['median']:.1f}x slower" if ref and f is not ref else "")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def fmt_range(stat, fmt):
    """`median` or `median (min–max)` when the runs differ."""
    if stat["min"] == stat["max"]:
        return fmt(stat["median"])
    return f"{fmt(stat['median'])} ({fmt(stat['min'])}–{fmt(stat['max'])})"


MAIN_KINDS = ("list", "get_whole", "get_ranged")


def link_rows(figs, ids):
    """The table of figures measured through the link: wall time beside the proxy's counts."""
    rows = ["| command | wall, median (min–max) | requests | listing / GET whole / GET ranged / other "
            "| MiB down | MiB up | moto CPU | proxy CPU |",
            "|---|---|---|---|---|---|---|---|"]
    mib = lambda v: f"{v / MIB:.1f}" if v >= MIB / 10 else f"{v / MIB:.2f}"
    for fid in ids:
        f = figs.get(fid)
        if f is None:
            continue
        w = f.wall()
        cells = [f.label, f"{fmt_s(w['median'])} ({fmt_s(w['min'])}–{fmt_s(w['max'])})"]
        if f.link_profile:
            kinds = f.link_kinds()
            other = sum(v for k, v in kinds.items() if k not in MAIN_KINDS)
            cells += [fmt_range(f.link_stat("requests"), lambda v: f"{v:g}"),
                      " / ".join(f"{kinds.get(k, 0):g}" for k in MAIN_KINDS) + f" / {other:g}",
                      fmt_range(f.link_stat("bytes_down"), mib), fmt_range(f.link_stat("bytes_up"), mib)]
        else:
            cells += ["—", "—", "—", "—"]
        cells.append(fmt_s(statistics.median(f.values("server_cpu_s"))))
        cells.append(fmt_s(f.link_stat("proxy_cpu_s")["median"]) if f.link_profile else "—")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def link_section(meta, facts, figs):
    """The page's section on the figures measured through benches/linkproxy.py."""
    params = meta.get("link_profiles") or {}
    out = ["", "## Over an emulated link", ""]
    if not params:
        return out + ["Not measured in this run (`--link none`)."]
    n, kib = facts["list_versions"], HEAD_BYTES // 1024
    out += [
        "This machine's kernel has no netem, so `benches/linkproxy.py` emulates the link: a TCP proxy on "
        "127.0.0.1 between the clients and the moto server. It holds every chunk for the one-way delay in each "
        "direction (latency, not a throughput limit: many chunks are in flight per connection, in order), "
        "paces all connections' bytes through one shared token bucket per direction at the link rate "
        "(connections take turns, chunk by chunk), and holds a new connection's first bytes one more round "
        "trip (the TCP handshake). Connections over the link stay open as S3 keeps them: moto closes its "
        "connection after every response (werkzeug always sends `Connection: close`), so the proxy frames each "
        "request and response, opens a new loopback connection to moto for the next request and drops that "
        "header, rather than make every request over the link pay a new handshake. It does not emulate TLS "
        "set-up (HTTPS to "
        "S3 costs 1–2 more round trips per new connection), TCP slow start or loss: its figures are "
        "optimistic for fresh connections. The request and byte columns are its counts (requests by kind from "
        "their method, path and Range header; bytes as they cross the link, HTTP heads included), read over a "
        "control port that adds nothing to them. Clients reach it through `AWS_ENDPOINT_URL` (and tfrollback's "
        "`--endpoint-url`). `python3 benches/linkproxy.py --self-test` checks its delay, rate and counts.",
        "",
        "Profiles (one proxy per profile, all its figures measured interleaved, run by run, against one "
        f"server holding the list workload: {n} versions of the {facts['list_state_bytes'] / MIB:.2f} MiB state):",
        ""]
    for name, p in params.items():
        out.append(f"- `{name}`: {p['delay_ms_one_way']:g} ms each way ({2 * p['delay_ms_one_way']:g} ms round "
                   f"trip), {p['rate_mbit']:g} Mbit/s shared per direction (chunks of {p['chunk_bytes'] // 1024} KiB, "
                   f"bucket depth {p['burst_s'] * 1000:g} ms)")
    out += ["",
            f"The floor is the least a client must do: the listing and one ranged GET of the first {kib} KiB of "
            f"each version on {FLOOR_THREADS} threads, timed inside one boto3 process (start-up excluded; it "
            f"sends one HeadBucket first, untimed but counted). The sequential GETs show the time a single "
            "request takes. moto is one Python process: its CPU time for the floor's requests is the least time "
            "in which any client can have them served here (\"the moto bound\"). proxy CPU: the emulator's own "
            "CPU time during the run (it shares the cores with the client and the server)."]
    direct = figs.get("link_direct_seq")
    for name, p in params.items():
        prefix = f"link_{name}_"
        if prefix + "list_cold" not in figs:
            continue
        rtt = 2 * p["delay_ms_one_way"] / 1000
        out += ["", f"### `{name}`: {p['delay_ms_one_way']:g} ms each way, {p['rate_mbit']:g} Mbit/s", ""]
        out += link_rows(figs, [prefix + k for k in ("list_cold", "list_warm", "list_limit20", "b2", "floor", "seq")]
                         + ["link_direct_seq"])
        med = lambda k: figs[prefix + k].wall()["median"]
        moto_s = statistics.median(figs[prefix + "floor"].values("server_cpu_s"))
        cold = figs[prefix + "list_cold"]
        down = cold.link_stat("bytes_down")["median"]
        seq_each = med("seq") / SEQ_GETS
        transfer = HEAD_BYTES * 8 / (p["rate_mbit"] * 1e6) if p["rate_mbit"] else 0.0
        out += ["",
                f"- list cold: {kinds_text(cold.link_kinds())}; {down / MIB:.0f} MiB down in "
                f"{fmt_s(med('list_cold'))} = {down * 8 / med('list_cold') / 1e6:.0f} Mbit/s of the link's "
                f"{p['rate_mbit']:g}. B2: {fmt_s(med('b2'))}, {med('b2') / med('list_cold'):.1f}x list cold. The "
                f"floor: {fmt_s(med('floor'))}; list cold is {med('list_cold') / med('floor'):.1f}x the floor.",
                f"- The moto bound: moto used {fmt_s(moto_s)} of CPU for the floor's requests (median), so no client "
                f"can be more than {med('b2') / moto_s:.1f}x faster than B2 here"
                + (f", short of the {LINK_COLD_VS_B2:g}x target: on this machine the server is the bound."
                   if med("b2") / moto_s < LINK_COLD_VS_B2 else "."),
                f"- Sequential ranged GETs: {seq_each * 1000:.1f} ms each through the link"
                + (f", {direct.wall()['median'] / SEQ_GETS * 1000:.1f} ms direct (moto and boto3 alone)"
                   if direct and direct.runs else "")
                + f"; the link's share is one round trip ({rtt * 1000:g} ms) plus {transfer * 1000:.1f} ms to move "
                f"{kib} KiB at {p['rate_mbit']:g} Mbit/s."]
    if "link_wan_to" in figs:
        to, base = figs["link_wan_to"], figs["link_wan_to_terraform"]
        out += ["", f"### `to` over `{LINK_TARGET_PROFILE}`: rollback of the blue/green stack", ""]
        out += link_rows(figs, ["link_wan_to", "link_wan_to_terraform"])
        out += ["", f"tfrollback to: {fmt_s(to.wall()['median'])} against {fmt_s(base.wall()['median'])} for "
                f"terraform's own three commands (+{fmt_s(to.wall()['median'] - base.wall()['median'])}), "
                f"{to.link_stat('requests')['median']:g} requests against {base.link_stat('requests')['median']:g} "
                "(terraform's own included: its three commands make those of the baseline). "
                "The resets between runs (an untimed `terraform apply`) go direct."
                + (f" terraform met its own lock {facts['terraform_own_lock_retries']} time(s) in this run (its SDK "
                   "retried a lock write moto was slow to answer, and the retry met the first attempt's item): "
                   "the driver removed that lock with `terraform force-unlock`, put the stack back and ran the "
                   "command again, not counting the failed attempt."
                   if facts.get("terraform_own_lock_retries") else ""),
                "",
                "Of tfrollback's own requests in a `to previous`, at most 12 wait for one another (the others go "
                "out beside them), and 4 of those 12 run while terraform does: the listing (with versioning, the "
                "marks index, the unfinished-rollback check and the caller lookup beside it); the current and "
                "target bodies (with the heads of the newest versions); the lock; the snapshot check (If-None-Match: "
                "no body when unchanged) beside the first heartbeat; the journal as the plan starts (during the "
                "plan); the journal before the apply; the journal naming terraform's pid (during the apply); the "
                "state terraform wrote and the journal (during the follow-up plan); the heartbeat's end; the lock's "
                "release; the journal's end; the history record. `tests/it/ranged_reads.rs` counts them through its "
                "proxy and fails past that bound."]
    return out


def markdown(meta, facts, figs, tgts, phases):
    quick = meta["mode"] == "quick"
    n = facts["list_versions"]
    out = ["# tfrollback benchmarks", "",
           "<!-- Generated by scripts/bench (benches/bench.py); do not edit by hand. -->", ""]
    if quick:
        out += ["**Quick mode (`scripts/bench --quick`): fewer versions and runs, for iteration only; "
                "these are not the benchmark's figures.**", ""]
    out += ["## How to run", "", "```", "scripts/bench            # the full benchmark (~16 minutes on 2 cores, plus the build)",
            "scripts/bench --quick    # fewer versions and runs, for iteration (written under target/bench/quick/)",
            "```", "",
            "Options: `--runs N` timed runs per figure (default 7, B1 5, through the link 5, the 100 MB phase 5; "
            "quick 3, 100 MB 2); "
            "`--link PROFILES` the link emulator's profiles to measure through (`wan,region`, the default, or "
            "one of them, or `none`); `--keep` keeps the temporary "
            "work directory (server logs, the terraform stacks); `--note TEXT` adds a sentence to the machine "
            "section (to say that other work shared the machine); `--no-build` (iteration only) skips the "
            "build and uses the last release binary; `--binary PATH` (iteration only) skips the build and "
            "measures the binary given.", "",
            "One command: it installs what is missing (moto and boto3, the aws CLI with pip; jq and GNU time with "
            "apt-get), "
            "builds tfrollback with `cargo build --release`, starts its own local S3 server "
            "(`scripts/moto-server.py --lean-listing`, loopback only, one per phase), has terraform write a "
            "real base state, derives the workload from it, runs every figure and its baselines in the same "
            "run, and writes this page and `benches/results.json`. Needs cargo, terraform >= 1.5 and python3. "
            "Only one benchmark runs at a time (a lock file under `target/`).", "",
            "## Machine and versions", "",
            f"- Date: {meta['date_utc']}; {meta['benchmark_s']:.0f} s for the whole run, "
            + (f"of which {meta['build_s']:.0f} s of `cargo build --release`" if meta["build_s"] is not None
               else "**build skipped (--binary): a binary given, maybe not a release build of this tree**"
               if meta.get("binary") else "**build skipped (--no-build): the binary may not match the working tree**"),
            f"- {meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']} GiB, {meta['os']}",
            f"- {meta['tfrollback']} (git {meta['git_commit']}"
            + (", with uncommitted changes to src/" if meta["git_src_dirty"] else "") + f"), {meta['rustc']}",
            f"- terraform {meta['terraform']}; moto {meta['moto']} (server mode); Python {meta['python']}, "
            f"boto3 {meta['boto3']}; {meta['aws_cli']}; {meta['jq']}",
            f"- Load average (1 min) when the run started: {meta['loadavg_1m_at_start']:.2f}; per phase in "
            "\"The S3 server (moto) per phase\". Other processes than the benchmark's used "
            f"{meta['other_cpu_s']:.0f} s of CPU during the run "
            f"({meta['other_cpu_s'] / max(meta['benchmark_s'] * (meta['cores'] or 1), 1):.0%} of the machine's "
            f"{meta['cores']} cores over its {meta['benchmark_s']:.0f} s; the benchmark itself "
            f"{meta['machine_busy_cpu_s'] - meta['other_cpu_s']:.0f} s)"
            + (": **the machine was shared**, so figures carry more noise than on an idle machine, though "
               "baselines measured interleaved in the same run keep the ratios meaningful."
               if meta["other_cpu_s"] > 0.05 * meta["benchmark_s"] * (meta["cores"] or 1) else ".")
            + (f" **{meta['note']}**" if meta.get("note") else ""),
            "- **The S3 server is moto started with `--lean-listing`**: moto's ListObjectVersions deep-copies "
            "every stored object, bodies included, on every call (and never frees the copies); the flag "
            "replaces that copy with shallow views (same answers, cost proportional to the number of versions "
            "instead of their bytes). Without it, listings over these buckets would cost seconds and gigabytes "
            "each and dominate every figure. All traffic is on 127.0.0.1: outside the section \"Over an emulated "
            "link\" there is no network latency, and "
            "the server (Python, one process) shares the 2 cores with the client being measured.", "",
            "## Workload", "",
            f"- Base: terraform {meta['terraform']} applies a generated configuration of "
            f"{workload.BASE_RESOURCES:,} `terraform_data` resources (one instance each) and 20 outputs "
            f"(one `sensitive`, one `active_slot`) against the benchmark's S3 backend: a "
            f"{facts['base_state_bytes']:,}-byte state (the apply took {facts['base_apply_s']} s).",
            f"- **The states measured are scaled-up copies of that terraform-written state**, not states written "
            f"by {n} terraform applies: same lineage and byte layout (re-serialising the base reproduces "
            f"terraform's bytes exactly, checked every run), increasing serials, and deploy-like outputs "
            f"(slot alternating blue/green, app version 1.0.N, build number), uploaded with boto3.",
            f"- list: one key with {n} versions of a {facts['list_state_bytes'] / MIB:.2f} MiB state "
            f"({facts['list_total_bytes'] / MIB:.0f} MiB in all).",
            f"- diff: two versions of a {facts['big_resources']:,}-resource state "
            f"({facts['big_state_a_bytes'] / MIB:.1f} and {facts['big_state_b_bytes'] / MIB:.1f} MiB): the "
            f"terraform-written resource entries replicated under new names with new ids; the second version "
            f"changes an attribute in {facts['big_changed_resources']} of them (1%), plus its outputs. "
            f"(A terraform_data entry takes ~700 bytes, so the issue's \"30 MB, about 50,000 resources\" "
            f"is kept by size: 50,000 entries would make 35 MB.)",
            f"- list at 30 MB: another key with {facts['big_list_versions']} versions of that "
            f"{facts['big_list_state_bytes'] / MIB:.1f} MiB state.",
            f"- 100 MB: two versions of a {facts['huge_resources']:,}-resource state "
            f"({facts['huge_state_a_bytes'] / MIB:.1f} and {facts['huge_state_b_bytes'] / MIB:.1f} MiB) made the "
            f"same way, the second changing {facts['huge_changed_resources']:,} of them (1%), for diff; another key "
            f"with {facts['huge_list_versions']} versions of it for list and show. The issue's \"100 MB, about "
            f"14,000 resources\" describes real resources of ~7 KB each; terraform_data entries take ~700 bytes, so "
            f"the size is kept: {facts['huge_resources']:,} entries make {facts['huge_state_a_bytes'] / MIB:.0f} MiB. "
            f"Each figure of this phase: {facts['huge_runs']} runs.",
            "- to: the blue/green fixture (`fixtures/bluegreen`) with a DynamoDB lock table, deployed v1 on blue "
            "then v2 on green (as `scripts/demo`), its history then padded to "
            f"{facts.get('to_history_versions', 2)} versions (copies of terraform's two states, alternating, "
            "with increasing serials, ending on green, the digest set as terraform would); each run rolls back "
            "to the previous version, and the stack is put back on green (an untimed `terraform apply`) before "
            "the next run.", "",
            "## Method", "",
            f"- Each figure: {meta['config']['runs']} timed runs ({meta['config']['b1_runs']} for B1) "
            f"after one untimed check run whose output is "
            "verified (list: every version id, serial and slot in order, 20 outputs with the sensitive one "
            "hidden; show: the version's id, serial and slot, the same 20 outputs; diff: exactly the changed "
            "resources, and the same outputs as the Python diff; to: status "
            "`rolled_back`, verified, and the rollback variables). Median, with min and max. The figures of a "
            "phase are measured interleaved, run by run.",
            "- Every run is a fresh process started under GNU time (`/usr/bin/time -f %M`). Wall time: "
            "measured by the driver from spawn to reap. Peak RSS: GNU time's maximum resident set size, which "
            "covers the command's waited-for descendants as the largest single process (B1's aws/jq processes, "
            "`to`'s terraform children). GNU time forks the command itself because a process forked straight "
            "from the (large) Python driver would report the driver's RSS as its own peak. CPU (user+sys): "
            "the `rusage` that `wait4(2)` returns (command and descendants). moto CPU: the server's CPU time "
            "(/proc/PID/stat) during the run.",
            "- tfrollback commands run with `--json`, stdout to /dev/null. Cold cache: a fresh empty "
            "`XDG_CACHE_HOME` per run; warm: one that a previous `list` filled.",
            "- Bare S3 rows (`benches/s3_floor.py`) are timed inside one boto3 process (start-up excluded): "
            "the requests alone, nothing parsed. When tfrollback's time approaches them, the server is the bound.",
            "- Over an emulated link (its own section): the same kind of runs, through `benches/linkproxy.py`; "
            "the requests and bytes of every run are the proxy's counts, reset before the run and read after it.",
            "- 1 MiB = 1,048,576 bytes; RSS targets are in MiB.", "",
            "## Targets", "",
            "| target | measured | threshold | result |", "|---|---|---|---|"]
    for t in tgts:
        measured = fmt_measured(t) + (f" ({t['note']})" if t.get("note") else "")
        out.append(f"| {t['target']} | {measured} | {t['threshold']} | {'pass' if t['pass'] else '**FAIL**'} |")
    if not any(t["target"].startswith(f"{LINK_TARGET_PROFILE}:") for t in tgts):
        out += ["", f"The targets over the `{LINK_TARGET_PROFILE}` link were not measured in this run (`--link`)."]
    out += ["", f"## list: {n} versions of a ~1 MB state", ""]
    out += figure_rows(figs, ["list_cold", "list_warm", "list_limit20", "show_cold", "b2", "b1",
                              "floor_list", "floor_gets", "floor_heads", "b1_listing"],
                       {"b2": "list_cold", "b1": "list_cold"})
    notes = [f for f in figs.values() if f.note]
    out += ["", f"## 30 MB states", ""]
    out += figure_rows(figs, ["list_big_cold", "floor_big_list", "diff", "diff_python", "floor_diff_gets"],
                       {"diff_python": "diff"})
    out += ["", "## 100 MB states", ""]
    out += figure_rows(figs, ["list_huge_cold", "show_huge_cold", "diff_huge", "diff_huge_python",
                              "floor_huge_diff_gets"], {"diff_huge_python": "diff_huge"})
    huge_bytes = facts["huge_state_a_bytes"] + facts["huge_state_b_bytes"]
    hd = figs["diff_huge"]
    hd_peak = hd.stat("maxrss_kib")["max"] * 1024
    out += ["", f"What diff costs at this size: {fmt_s(hd.wall()['median'])} (median) and "
            f"{hd_peak / MIB:.0f} MiB of peak RSS for {huge_bytes / MIB:.0f} MiB of states "
            f"({hd_peak / huge_bytes:.2f}x their combined size: both bodies are held whole and parsed in place), "
            f"{figs['diff_huge_python'].wall()['median'] / hd.wall()['median']:.1f}x faster than the Python diff "
            f"({figs['diff_huge_python'].stat('maxrss_kib')['max'] / 1024:.0f} MiB). list and show read a head and "
            f"a tail of each version, whatever its size: "
            f"{figs['list_huge_cold'].stat('maxrss_kib')['max'] / 1024:.1f} and "
            f"{figs['show_huge_cold'].stat('maxrss_kib')['max'] / 1024:.1f} MiB of peak RSS here, against "
            f"{figs['list_cold'].stat('maxrss_kib')['max'] / 1024:.1f} and "
            f"{figs['show_cold'].stat('maxrss_kib')['max'] / 1024:.1f} MiB for the ~1 MB state."]
    out += ["", "## to: rollback of the blue/green stack", ""]
    out += figure_rows(figs, ["to", "to_terraform"])
    plan = facts.get("to_plan") or {}
    out += ["", f"Each rollback plans {plan.get('add', '?')} to add, {plan.get('change', '?')} to change, "
            f"{plan.get('destroy', '?')} to destroy, with the variables "
            f"`{json.dumps(facts.get('to_variables', {}), sort_keys=True)}` (the baseline applies the very "
            "var file tfrollback wrote)."]
    if notes:
        out += [""] + [f"† {f.label}: {f.note}" + (
            f"; the measured runs took {fmt_s(f.stat('wall_s')['median'])} (median), and the CPU, RSS and "
            f"moto CPU columns are theirs." if f.scale != 1.0 else ".") for f in notes]
    out += link_section(meta, facts, figs)
    out += ["", "## The S3 server (moto) per phase", "",
            "A fresh server per phase. RSS from /proc/PID/status: VmRSS at the marks, peak = VmHWM "
            "(and a 0.2 s VmRSS sampler).", "",
            "| phase | RSS after set-up, MiB | RSS at end, MiB | peak RSS, MiB | server CPU | load average (1 min), start → end |",
            "|---|---|---|---|---|---|"]
    for p in phases:
        rss = p["rss_kib"]
        out.append(f"| {p['phase']} | {fmt_mib(rss['after set-up']) if 'after set-up' in rss else '—'} | "
                   f"{fmt_mib(rss['end']) if 'end' in rss else '—'} | {fmt_mib(p['peak_rss_kib'])} | "
                   f"{p['cpu_s']:.0f} s | {p['loadavg_1m']['start']:.2f} → {p['loadavg_1m']['end']:.2f} |")
    med = lambda fid: figs[fid].wall()["median"]
    srv = lambda fid: statistics.median(figs[fid].values("server_cpu_s"))
    cold, big, diff = figs["list_cold"], figs["list_big_cold"], figs["diff"]
    cores = meta["cores"] or 1
    big_bytes = facts["big_list_versions"] * facts["big_list_state_bytes"]
    diff_bytes = facts["big_state_a_bytes"] + facts["big_state_b_bytes"]
    out += ["", "## Observations (computed from the figures above)", "",
            f"- list cold, {n} versions: tfrollback used {fmt_s(cold.cpu())} of CPU over "
            f"{fmt_s(med('list_cold'))} of wall ({cold.cpu() / med('list_cold'):.0%} of one core) and the server "
            f"{fmt_s(srv('list_cold'))}: together {(cold.cpu() + srv('list_cold')) / (cores * med('list_cold')):.0%} "
            f"of the machine's {cores} cores. The bare GETs alone take {fmt_s(med('floor_gets'))}: list cold is "
            f"{med('list_cold') / med('floor_gets'):.1f}x the request floor.",
            f"- Reading each body whole in one GET instead of a head and a tail: the bare whole GETs take "
            f"{fmt_s(med('floor_gets'))} here (moto CPU {fmt_s(srv('floor_gets'))}) against "
            f"{fmt_s(med('floor_heads'))} for one 64 KiB head each (moto CPU {fmt_s(srv('floor_heads'))}): on "
            f"loopback requests cost, not bytes. Over a link the bytes cost: "
            + (f"B2's whole bodies took {fmt_s(figs['link_wan_b2'].wall()['median'])} over `wan` "
               f"({figs['link_wan_b2'].link_stat('bytes_down')['median'] / MIB:.0f} MiB down). "
               if "link_wan_b2" in figs else "")
            + f"So bodies are read whole only when a head and a tail would cover them anyway.",
            f"- list warm: {fmt_s(med('list_warm'))} (server CPU {fmt_s(srv('list_warm'))}); the bare listing "
            f"alone takes {fmt_s(med('floor_list'))} through boto3. list --limit {LIMIT} cold: "
            f"{fmt_s(med('list_limit20'))}.",
            f"- list at 30 MB, {facts['big_list_versions']} versions ({big_bytes / MIB:.0f} MiB read): CPU "
            f"{fmt_s(big.cpu())} over {fmt_s(med('list_big_cold'))} of wall "
            f"({big.cpu() / med('list_big_cold'):.0%} of one core, {big_bytes / MIB / big.cpu():.0f} MiB per CPU "
            f"second); the server used {fmt_s(srv('list_big_cold'))}; the bare listing + GETs take "
            f"{fmt_s(med('floor_big_list'))}: {med('list_big_cold') / med('floor_big_list'):.1f}x the request floor.",
            f"- diff of two ~30 MB versions: CPU {fmt_s(diff.cpu())} over {fmt_s(med('diff'))} of wall "
            f"({diff.cpu() / med('diff'):.0%} of one core, {diff_bytes / MIB / diff.cpu():.0f} MiB per CPU second); "
            f"the two bare GETs take {fmt_s(med('floor_diff_gets'))}. Python diff / tfrollback diff, run by run: "
            + ", ".join(f"{p.wall_s / t.wall_s:.1f}x" for t, p in zip(diff.runs, figs["diff_python"].runs)) + ".",
            f"- to: {fmt_s(med('to'))} against {fmt_s(med('to_terraform'))} for terraform's own three commands "
            f"(+{fmt_s(med('to') - med('to_terraform'))}).",
            ""]
    return "\n".join(out)


def link_profiles(text):
    """--link's value: profile names in the order given, or [] for `none`."""
    if text.strip() == "none":
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LINK_PROFILES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown link profile(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {', '.join(LINK_PROFILES)}, or `none`")
    return list(dict.fromkeys(names))


def main():
    parser = argparse.ArgumentParser(description="tfrollback's benchmark (see docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer versions and runs, for iteration; results go under target/bench/quick/")
    parser.add_argument("--runs", type=int, choices=range(1, 21), metavar="N",
                        help="timed runs per figure (default 5, quick 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--note", default="", metavar="TEXT",
                        help="a sentence for the page's machine section (say so when other work shared it)")
    parser.add_argument("--no-build", action="store_true",
                        help="for iteration: skip `cargo build --release` and use the last release binary")
    parser.add_argument("--binary", metavar="PATH",
                        help="for iteration: skip the build and benchmark this tfrollback binary")
    parser.add_argument("--link", default=",".join(LINK_PROFILES), type=link_profiles, metavar="PROFILES",
                        help="link emulator profiles to measure through, comma-separated "
                             f"({', '.join(LINK_PROFILES)}; `none` to skip; default: all)")
    args = parser.parse_args()

    lock_dir = REPO / "target"
    lock_dir.mkdir(exist_ok=True)
    lock = open(lock_dir / "bench.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("error: another benchmark is running (target/bench.lock is held); wait for it to finish",
              file=sys.stderr)
        return 1

    bench = Bench(args)
    try:
        bench.run()
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        if not args.keep:
            print("hint: rerun with --keep to keep the work directory (server logs, terraform stacks)",
                  file=sys.stderr)
        return 1
    finally:
        bench.cleanup()

    figs = bench.figures
    tgts = targets(figs, bench.facts)
    md = markdown(bench.meta, bench.facts, figs, tgts, bench.phases)
    results = {"meta": bench.meta, "workload": bench.facts, "targets": tgts,
               "figures": [f.as_dict() for f in figs.values()], "server_phases": bench.phases}
    if args.quick:
        out_dir = REPO / "target" / "bench" / "quick"
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path, json_path = out_dir / "benchmarks.md", out_dir / "results.json"
    else:
        md_path, json_path = REPO / "docs" / "benchmarks.md", BENCHES / "results.json"
    md_path.write_text(md)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(md)
    log(f"wrote {md_path.relative_to(REPO)} and {json_path.relative_to(REPO)}")
    failed = [t["target"] for t in tgts if not t["pass"]]
    if failed:
        log(f"{len(failed)} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
