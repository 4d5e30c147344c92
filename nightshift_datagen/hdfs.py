"""Deterministic, realistic multi-day HDFS log generator (Loghub HDFS_v1 line format).

Every line looks like the real sample::

    081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating

i.e. ``yyMMdd HHmmss <pid> <LEVEL> <component>: <message>``. Sessions are blocks (``blk_-?\\d+``).
Each block follows an HDFS write lifecycle (allocateBlock on the namenode, Receiving/Received/
PacketResponder on each replica of the pipeline, addStoredBlock per replica) and then optionally
gets verified, served, re-replicated and deleted. Anomalous blocks (label 1) follow one of a few
failure patterns; a few percent of lines are namenode/datanode housekeeping without a block id.

Scenario knobs (:class:`Scenario`):

* ``drift_day``: from that day index on a "new software version" runs: some templates change
  wording (``... terminating`` becomes ``... closed``, ``BLOCK* NameSystem.addStoredBlock`` becomes
  ``BLOCK* addStoredBlock``, ``Received block ... in <n> ms``), new message kinds appear
  (``dfs.DataNode.clienttrace`` lines, slow-disk WARNs) and the anomaly patterns shift to new ones
  (checksum corruption, socket timeouts, lease recovery).
* ``corrupt_day``: that day mixes in garbage lines (stack-trace fragments, junk, NUL runs),
  truncated lines, a two-hour window in ISO timestamps (``2008-11-09T20:36:15``), a few non-UTF-8
  bytes, and the file ends mid-line without a newline.

Days are independent: day ``i`` is drawn from a ``random.Random`` seeded by ``(seed, i)`` only, so
the same scenario gives byte-identical files and one day never depends on another's volume.

Output per day: ``Lake(root).raw_dir("hdfs", day) / "hdfs.log"`` and
``Lake(root).labels_file("hdfs", day)`` (``session_id,label``, one row per block of the day).

CLI::

    python -m nightshift_datagen.hdfs --root data --start-day 2026-11-01 --days 6 --seed 7 \\
        --blocks-per-day 3000 --anomaly-rate 0.03 --drift-day 3 --corrupt-day 5
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import itertools
import math
import os
import re
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nightshift.lake import Lake, check_day

SOURCE = "hdfs"
LOG_FILE_NAME = "hdfs.log"
DAY_SECONDS = 86_400
BLOCK_SIZE = 67_108_864

# Components, exactly as in the real log.
NAMENODE = "dfs.FSNamesystem"
XCEIVER = "dfs.DataNode$DataXceiver"
RESPONDER = "dfs.DataNode$PacketResponder"
DATANODE = "dfs.DataNode"
FSDATASET = "dfs.FSDataset"
SCANNER = "dfs.DataBlockScanner"
CLIENTTRACE = "dfs.DataNode.clienttrace"  # only after the drift (new software version)

# Volume / shape knobs that are not part of the scenario.
CLUSTER_SIZE = 203
NON_BLOCK_SHARE = (0.02, 0.035)  # share of housekeeping lines without a block id, per day
BENIGN_SERVE_EXCEPTION_RATE = 0.002  # normal blocks with one "Got exception while serving" (label noise)

# Corrupt-day knobs.
ISO_WINDOW_SECONDS = 2 * 3600
GARBAGE_RATE = 0.005
TRUNCATED_RATE = 0.003
NON_UTF8_RATE = 0.0005

# --------------------------------------------------------------------------------------------------
# Templates: kind -> (level, component, str.format pattern). V2 is the post-drift software version.
# --------------------------------------------------------------------------------------------------

_V1: dict[str, tuple[str, str, str]] = {
    "allocate": ("INFO", NAMENODE, "BLOCK* NameSystem.allocateBlock: {path}. {blk}"),
    "receiving": ("INFO", XCEIVER, "Receiving block {blk} src: /{src}:{sport} dest: /{dst}:50010"),
    "received": ("INFO", RESPONDER, "Received block {blk} of size {size} from /{src}"),
    "terminating": ("INFO", RESPONDER, "PacketResponder {n} for block {blk} terminating"),
    "stored": (
        "INFO",
        NAMENODE,
        "BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:50010 is added to {blk} size {size}",
    ),
    "verified": ("INFO", SCANNER, "Verification succeeded for {blk}"),
    "served": ("INFO", XCEIVER, "{ip}:50010 Served block {blk} to /{client}"),
    "invalidset": ("INFO", NAMENODE, "BLOCK* NameSystem.delete: {blk} is added to invalidSet of {ip}:50010"),
    "ask_delete": ("INFO", NAMENODE, "BLOCK* ask {ip}:50010 to delete  {blk}"),
    "deleting": ("INFO", FSDATASET, "Deleting block {blk} file /mnt/hadoop/dfs/data/current/{subdir}{blk}"),
    "ask_replicate": ("INFO", NAMENODE, "BLOCK* ask {ip}:50010 to replicate {blk} to datanode(s) {dst}:50010"),
    "start_transfer": ("INFO", DATANODE, "{ip}:50010 Starting thread to transfer block {blk} to {dst}:50010"),
    "received_repl": (
        "INFO",
        XCEIVER,
        "Received block {blk} src: /{src}:{sport} dest: /{dst}:50010 of size {size}",
    ),
    "transmitted": ("INFO", DATANODE, "{ip}:50010:Transmitted block {blk} to /{dst}:50010"),
    # failure messages
    "serve_exc": ("WARN", XCEIVER, "{ip}:50010:Got exception while serving {blk} to /{client}:"),
    "write_exc": ("INFO", XCEIVER, "writeBlock {blk} received exception java.io.IOException: {reason}"),
    "receive_exc": ("INFO", XCEIVER, "Exception in receiveBlock for block {blk} java.io.IOException: {reason}"),
    "responder_exc": (
        "INFO",
        RESPONDER,
        "PacketResponder {blk} {n} Exception java.io.InterruptedIOException: Interruped while waiting for IO"
        " on channel java.nio.channels.SocketChannel[connected local=/{ip}:50010 remote=/{remote}:{rport}]."
        " {left} millis timeout left.",
    ),
    "responder_int": ("INFO", RESPONDER, "PacketResponder {n} for block {blk} Interrupted."),
    "transfer_fail": (
        "WARN",
        DATANODE,
        "{ip}:50010:Failed to transfer {blk} to {dst}:50010 got java.io.IOException: {reason}",
    ),
    "pending_timeout": ("WARN", NAMENODE, "PendingReplicationMonitor timed out block {blk}"),
    "redundant": (
        "INFO",
        NAMENODE,
        "BLOCK* NameSystem.addStoredBlock: Redundant addStoredBlock request received for {blk}"
        " on {ip}:50010 size {size}",
    ),
    "delete_error": (
        "WARN",
        FSDATASET,
        "Unexpected error trying to delete block {blk}. BlockInfo not found in volumeMap.",
    ),
}

_V2: dict[str, tuple[str, str, str]] = {
    **_V1,
    # reworded
    "terminating": ("INFO", RESPONDER, "PacketResponder {n} for block {blk} closed"),
    "stored": ("INFO", NAMENODE, "BLOCK* addStoredBlock: blockMap updated: {ip}:50010 is added to {blk} size {size}"),
    "received": ("INFO", RESPONDER, "Received block {blk} of size {size} from /{src} in {ms} ms"),
    # new normal kinds
    "clienttrace": (
        "INFO",
        CLIENTTRACE,
        "src: /{src}:{sport}, dest: /{dst}:50010, bytes: {size}, op: HDFS_WRITE, cliID: DFSClient_{cli},"
        " offset: 0, srvID: DS-{srv}-{dst}-50010, blockid: {blk}, duration: {dur}",
    ),
    "slow_disk": ("WARN", XCEIVER, "Slow BlockReceiver write data to disk cost:{ms}ms (threshold=300ms) for {blk}"),
    # new failure kinds
    "verify_failed": (
        "WARN",
        SCANNER,
        "Verification failed for {blk}. Exception : org.apache.hadoop.fs.ChecksumException:"
        " Checksum error: {blk} at {off}",
    ),
    "bad_block": ("INFO", SCANNER, "Reporting bad block {blk} to namenode."),
    "corrupt_replica": (
        "INFO",
        NAMENODE,
        "BLOCK NameSystem.addToCorruptReplicasMap: {blk} added as corrupt on {ip}:50010 by /{ip}",
    ),
    "slow_mirror": (
        "WARN",
        XCEIVER,
        "Slow BlockReceiver write packet to mirror took {ms}ms (threshold=300ms) for {blk}",
    ),
    "socket_timeout": (
        "INFO",
        RESPONDER,
        "PacketResponder {blk} {n} Exception java.net.SocketTimeoutException: 60000 millis timeout while"
        " waiting for channel to be ready for read. ch : java.nio.channels.SocketChannel[connected"
        " local=/{ip}:50010 remote=/{remote}:{rport}]",
    ),
    "mirror_exc": ("INFO", XCEIVER, "Exception writing block {blk} to mirror {dst}:50010"),
    "recovery_started": ("INFO", NAMENODE, "BLOCK* {blk} recovery started, primary={ip}:50010"),
    "recover_call": ("INFO", DATANODE, "Client calls recoverBlock(block={blk}, targets=[{targets}])"),
    "commit_sync": (
        "INFO",
        NAMENODE,
        "commitBlockSynchronization(lastblock={blk}, newgenerationstamp={gen}, newlength={size},"
        " newtargets=[{targets}], closeFile=true, deleteBlock=false)",
    ),
}

_IO_REASONS = (
    "Connection reset by peer",
    "Broken pipe",
    "Could not read from stream",
    "Interrupted receiveBlock",
)

_JOBS = (("rand", "m"), ("sortrand", "r"), ("randtxt", "m"), ("sortrandtxt", "r"), ("sort", "r"))


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What to generate. Day indices (``drift_day``, ``corrupt_day``) count from ``start_day`` = 0."""

    start_day: str
    days: int = 1
    seed: int = 0
    blocks_per_day: int = 3000
    anomaly_rate: float = 0.03
    drift_day: int | None = None
    corrupt_day: int | None = None

    def __post_init__(self) -> None:
        check_day(self.start_day)
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if self.blocks_per_day < 1:
            raise ValueError(f"blocks_per_day must be >= 1, got {self.blocks_per_day}")
        if not 0.0 <= self.anomaly_rate <= 1.0:
            raise ValueError(f"anomaly_rate must be in [0, 1], got {self.anomaly_rate}")
        for name in ("drift_day", "corrupt_day"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    def day(self, index: int) -> str:
        """The ``YYYY-MM-DD`` date of day ``index``."""
        return (_dt.date.fromisoformat(self.start_day) + _dt.timedelta(days=index)).isoformat()

    def is_drifted(self, index: int) -> bool:
        return self.drift_day is not None and index >= self.drift_day

    def is_corrupt(self, index: int) -> bool:
        return self.corrupt_day is not None and index == self.corrupt_day


@dataclass(frozen=True)
class DaySummary:
    day: str
    index: int
    lines: int
    blocks: int
    anomalies: int
    corrupted_lines: int
    drift: bool

    def describe(self) -> str:
        rate = self.anomalies / self.blocks if self.blocks else 0.0
        return (
            f"{self.day} day={self.index} lines={self.lines} blocks={self.blocks} "
            f"anomalies={self.anomalies} ({rate:.2%}) corrupted_lines={self.corrupted_lines} "
            f"drift={'yes' if self.drift else 'no'}"
        )


@dataclass
class RenderedDay:
    """One day in memory: the log lines (sorted; may hold surrogate-escaped bytes) and the labels."""

    summary: DaySummary
    lines: list[str]
    trailing_newline: bool
    labels: list[tuple[str, int]]


# --------------------------------------------------------------------------------------------------
# Randomness and the cluster
# --------------------------------------------------------------------------------------------------


def derive_seed(*parts: object) -> int:
    # The salt is the module's old name (nightshift.generator): kept so that a scenario still gives
    # byte-identical files after the move to nightshift_datagen.
    digest = hashlib.sha256("/".join(["nightshift.generator", *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def day_rng(seed: int, index: int) -> random.Random:
    """The RNG of day ``index``: depends on ``(seed, index)`` only."""
    return random.Random(derive_seed(seed, "day", index))


def cluster_ips(seed: int, size: int = CLUSTER_SIZE) -> list[str]:
    """Datanode IPs of the (seed-stable) cluster, e.g. ``10.251.73.220``."""
    rng = random.Random(derive_seed(seed, "cluster"))
    ips: list[str] = []
    seen: set[str] = set()
    while len(ips) < size:
        ip = f"10.{rng.choice((250, 251, 251))}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
        if ip not in seen:
            seen.add(ip)
            ips.append(ip)
    return ips


def _hour_weights() -> list[float]:
    """Diurnal load: quiet at night, busy during the working day, a batch bump in the evening."""
    return [
        1.0 + 0.8 * math.exp(-((h - 14) ** 2) / 18.0) + 0.5 * math.exp(-((h - 21) ** 2) / 4.0) for h in range(24)
    ]


_HOUR_CUM = list(itertools.accumulate(_hour_weights()))


# --------------------------------------------------------------------------------------------------
# Per-day event builder
# --------------------------------------------------------------------------------------------------


@dataclass
class _Block:
    blk: str
    t0: int
    nodes: list[str]  # replica pipeline, first = the writing client's local datanode
    size: int
    path: str


@dataclass
class _DayBuilder:
    rng: random.Random
    ips: list[str]
    tpl: dict[str, tuple[str, str, str]]
    drifted: bool
    storage_ids: dict[str, int] = field(default_factory=dict)  # datanode ip -> DS-<id>
    ts: list[int] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    _pending: list[tuple[int, bool, str]] = field(default_factory=list)
    _pid_base: int = 100

    # ----- emitting
    def begin(self, t0: int) -> None:
        self._pending.clear()
        self._pid_base = 100 + t0 // 3

    def emit(self, dt: int, kind: str, pid: int, optional: bool = False, **kw: object) -> None:
        level, component, pattern = self.tpl[kind]
        self._pending.append((dt, optional, f"{pid} {level} {component}: {pattern.format(**kw)}"))

    def end(self, t0: int) -> None:
        """Place the pending block events at ``t0`` (shifted earlier so core events fit in the day);
        optional events (verification, reads, deletes) that would fall after midnight are dropped."""
        core = max((dt for dt, optional, _ in self._pending if not optional), default=0)
        t0 = max(0, min(t0, DAY_SECONDS - 1 - core))
        for dt, _optional, body in self._pending:
            t = t0 + dt
            if t < DAY_SECONDS:
                self.ts.append(t)
                self.bodies.append(body)
        self._pending.clear()

    def add_line(self, t: int, pid: int, level: str, component: str, message: str) -> None:
        self.ts.append(t)
        self.bodies.append(f"{pid} {level} {component}: {message}")

    # ----- random helpers
    def nn_pid(self) -> int:
        return self.rng.randrange(26, 36)

    def dn_pid(self) -> int:
        return self._pid_base + self.rng.randrange(400)

    def port(self) -> int:
        return self.rng.randrange(32768, 61000)

    def other_node(self, exclude: Sequence[str]) -> str:
        while True:
            ip = self.rng.choice(self.ips)
            if ip not in exclude:
                return ip


# --------------------------------------------------------------------------------------------------
# Block lifecycle pieces
# --------------------------------------------------------------------------------------------------

BreakHook = Callable[[_DayBuilder, _Block, int, int], None]


def _pipeline(
    d: _DayBuilder,
    b: _Block,
    broken: Sequence[int] = (),
    on_break: BreakHook | None = None,
) -> int:
    """allocateBlock + the write pipeline; replicas in ``broken`` never ack. Returns the end offset."""
    rng = d.rng
    d.emit(0, "allocate", d.nn_pid(), path=b.path, blk=b.blk)
    r = len(b.nodes)
    t = rng.randint(0, 1)
    recv_at = []
    for i, node in enumerate(b.nodes):
        src = node if i == 0 else b.nodes[i - 1]
        d.emit(t, "receiving", d.dn_pid(), blk=b.blk, src=src, sport=d.port(), dst=node)
        recv_at.append(t)
        t += rng.choice((0, 0, 1))
    duration = min(300, max(1, int(rng.lognormvariate(2.0, 0.9))))
    client_id = rng.randrange(-(2**31), 2**31) if d.drifted else 0
    t_ack = t + duration
    end = t_ack
    for i in range(r - 1, -1, -1):  # acks travel back up the pipeline: last replica first
        node = b.nodes[i]
        if i in broken:
            if on_break is not None:
                on_break(d, b, i, t_ack)
            continue
        src = node if i == 0 else b.nodes[i - 1]
        pid = d.dn_pid()
        d.emit(t_ack, "received", pid, blk=b.blk, size=b.size, src=src, ms=duration * 1000 + rng.randrange(1000))
        d.emit(t_ack, "terminating", pid, n=r - 1 - i, blk=b.blk)
        if d.drifted:
            d.emit(
                t_ack, "clienttrace", pid, blk=b.blk, src=src, sport=d.port(), dst=node, size=b.size,
                cli=client_id, srv=d.storage_ids.get(node, 0), dur=duration * 10**9 + rng.randrange(10**9),
            )  # fmt: skip
        d.emit(t_ack + rng.randint(0, 2), "stored", d.nn_pid(), ip=node, blk=b.blk, size=b.size)
        end = max(end, t_ack + 2)
        t_ack += rng.choice((0, 0, 1))
    if d.drifted and rng.random() < 0.04:
        d.emit(recv_at[-1] + 1, "slow_disk", d.dn_pid(), blk=b.blk, ms=rng.randrange(300, 2500))
    return end


def _rereplicate(d: _DayBuilder, b: _Block, t: int, source: str, optional: bool = False) -> str:
    """A successful re-replication from ``source`` to a new node; returns the new node."""
    rng = d.rng
    dst = d.other_node(b.nodes)
    d.emit(t, "ask_replicate", d.nn_pid(), optional, ip=source, blk=b.blk, dst=dst)
    t += rng.randint(1, 4)
    d.emit(t, "start_transfer", rng.randrange(13, 20), optional, ip=source, blk=b.blk, dst=dst)
    sport = d.port()
    d.emit(t, "receiving", d.dn_pid(), optional, blk=b.blk, src=source, sport=sport, dst=dst)
    t += rng.randint(1, 20)
    d.emit(t, "received_repl", d.dn_pid(), optional, blk=b.blk, src=source, sport=sport, dst=dst, size=b.size)
    d.emit(t, "transmitted", rng.randrange(13, 20), optional, ip=source, blk=b.blk, dst=dst)
    d.emit(t + rng.randint(0, 2), "stored", d.nn_pid(), optional, ip=dst, blk=b.blk, size=b.size)
    return dst


def _delete(d: _DayBuilder, b: _Block, t: int, optional: bool, nodes: Sequence[str], fail: Sequence[str] = ()) -> None:
    """Namenode invalidates the replicas, asks the datanodes, they delete (or fail to)."""
    rng = d.rng
    for node in nodes:
        d.emit(t, "invalidset", d.nn_pid(), optional, blk=b.blk, ip=node)
    for node in nodes:
        t_ask = t + rng.randint(1, 10)
        if rng.random() < 0.05:
            d.emit(t_ask, "ask_delete", d.nn_pid(), optional, ip=node, blk=b.blk)
        t_del = t_ask + rng.randint(1, 90)
        if node in fail:
            for _ in range(rng.randint(1, 3)):
                d.emit(t_del, "delete_error", rng.randrange(18, 21), optional, blk=b.blk)
                t_del += rng.randint(0, 600)
        else:
            subdir = f"subdir{rng.randrange(64)}/" if rng.random() < 0.9 else ""
            d.emit(t_del, "deleting", rng.randrange(18, 21), optional, blk=b.blk, subdir=subdir)


def _after_write(d: _DayBuilder, b: _Block, end: int, nodes: Sequence[str] | None = None) -> None:
    """Optional later life of a healthy block: verification, reads, deletion."""
    rng = d.rng
    nodes = b.nodes if nodes is None else nodes
    if rng.random() < 0.06:
        d.emit(end + rng.randint(300, 20_000), "verified", 13, True, blk=b.blk)
    if rng.random() < 0.25:
        for _ in range(rng.randint(1, 3)):
            d.emit(
                end + rng.randint(5, 20_000), "served", d.dn_pid(), True,
                ip=rng.choice(nodes), blk=b.blk, client=rng.choice(d.ips),
            )  # fmt: skip
    if rng.random() < 0.55:
        _delete(d, b, end + rng.randint(60, 30_000), True, nodes)


# ----- normal


def _normal(d: _DayBuilder, b: _Block) -> None:
    end = _pipeline(d, b)
    nodes = list(b.nodes)
    if d.rng.random() < 0.01:  # a datanode went away; the namenode restores the replication
        nodes.append(_rereplicate(d, b, end + d.rng.randint(60, 1200), d.rng.choice(b.nodes)))
    if d.rng.random() < BENIGN_SERVE_EXCEPTION_RATE:  # a client hung up mid-read: noise, not a failure
        t = end + d.rng.randint(30, 3600)
        d.emit(t, "serve_exc", d.dn_pid(), ip=b.nodes[0], blk=b.blk, client=d.rng.choice(d.ips))
    _after_write(d, b, end, nodes)


# ----- anomalies before (and partly after) the drift


def _ack_lost(d: _DayBuilder, b: _Block, i: int, t: int) -> None:
    rng = d.rng
    reason = rng.choice(_IO_REASONS)
    node = b.nodes[i]
    d.emit(t, "write_exc", d.dn_pid(), blk=b.blk, reason=reason)
    if rng.random() < 0.5:
        d.emit(t, "receive_exc", d.dn_pid(), blk=b.blk, reason=reason)
    if i > 0:
        upstream = b.nodes[i - 1]
        n = len(b.nodes) - i
        d.emit(
            t, "responder_exc", d.dn_pid(), blk=b.blk, n=n, ip=upstream, remote=node,
            rport=d.port(), left=rng.randrange(1000, 60000),
        )  # fmt: skip
    d.emit(t + rng.randint(0, 1), "responder_int", d.dn_pid(), n=len(b.nodes) - 1 - i, blk=b.blk)


def _anom_missing_ack(d: _DayBuilder, b: _Block) -> None:
    """One (sometimes two) replicas never ack: fewer terminating/addStoredBlock lines than Receiving."""
    rng = d.rng
    r = len(b.nodes)
    k = 2 if r >= 3 and rng.random() < 0.25 else 1
    broken = rng.sample(range(r), k)
    noisy = rng.random() < 0.7
    end = _pipeline(d, b, broken, _ack_lost if noisy else None)
    healthy = [n for i, n in enumerate(b.nodes) if i not in broken]
    if healthy and rng.random() < 0.4:
        healthy.append(_rereplicate(d, b, end + rng.randint(30, 600), healthy[0]))
    _after_write(d, b, end, healthy or b.nodes)


def _anom_serve_exception(d: _DayBuilder, b: _Block) -> None:
    """Written fine, but reads keep failing."""
    rng = d.rng
    end = _pipeline(d, b)
    t = end + rng.randint(30, 1800)
    for _ in range(rng.randint(1, 4)):
        d.emit(t, "serve_exc", d.dn_pid(), ip=rng.choice(b.nodes), blk=b.blk, client=rng.choice(d.ips))
        t += rng.randint(1, 600)
    _after_write(d, b, end)


def _anom_failed_replication(d: _DayBuilder, b: _Block) -> None:
    """The namenode asks for a replica that never arrives."""
    rng = d.rng
    end = _pipeline(d, b)
    t = end + rng.randint(60, 1800)
    for _ in range(rng.randint(1, 2)):
        source, dst = rng.choice(b.nodes), d.other_node(b.nodes)
        d.emit(t, "ask_replicate", d.nn_pid(), ip=source, blk=b.blk, dst=dst)
        t += rng.randint(1, 4)
        d.emit(t, "start_transfer", rng.randrange(13, 20), ip=source, blk=b.blk, dst=dst)
        d.emit(t, "receiving", d.dn_pid(), blk=b.blk, src=source, sport=d.port(), dst=dst)
        t += rng.randint(1, 30)
        reason = rng.choice(_IO_REASONS)
        d.emit(t, "transfer_fail", rng.randrange(13, 20), ip=source, blk=b.blk, dst=dst, reason=reason)
        d.emit(t, "write_exc", d.dn_pid(), blk=b.blk, reason=reason)
        t += 300 + rng.randint(0, 30)
        d.emit(t, "pending_timeout", d.nn_pid(), blk=b.blk)
        t += rng.randint(1, 60)
    _after_write(d, b, t)


def _anom_redundant_delete(d: _DayBuilder, b: _Block) -> None:
    """A replica is reported twice, and its deletion fails: the maps disagree."""
    rng = d.rng
    end = _pipeline(d, b)
    t = end + rng.randint(10, 1800)
    victim = rng.choice(b.nodes)
    for _ in range(rng.randint(1, 2)):
        d.emit(t, "redundant", d.nn_pid(), blk=b.blk, ip=victim, size=b.size)
        t += rng.randint(1, 300)
    _delete(d, b, t + rng.randint(60, 1800), False, b.nodes, fail=[victim])


# ----- anomalies after the drift


def _anom_checksum(d: _DayBuilder, b: _Block) -> None:
    """The block scanner finds a corrupt replica; it is reported, re-replicated and invalidated."""
    rng = d.rng
    end = _pipeline(d, b)
    t = end + rng.randint(60, 3600)
    bad = rng.choice(b.nodes)
    d.emit(t, "verify_failed", 13, blk=b.blk, off=rng.randrange(0, b.size, 512) if b.size > 512 else 0)
    d.emit(t, "bad_block", 13, blk=b.blk)
    d.emit(t + rng.randint(0, 3), "corrupt_replica", d.nn_pid(), blk=b.blk, ip=bad)
    healthy = [n for n in b.nodes if n != bad]
    if healthy:
        healthy.append(_rereplicate(d, b, t + rng.randint(3, 60), healthy[0]))
    _delete(d, b, t + rng.randint(60, 600), False, [bad])


def _timeout(d: _DayBuilder, b: _Block, i: int, t: int) -> None:
    """Replica ``i`` (a mirror) stalls; its upstream datanode logs the slow mirror and times out."""
    rng = d.rng
    node = b.nodes[i]
    upstream, n = (b.nodes[i - 1], len(b.nodes) - i) if i > 0 else (node, 0)
    d.emit(t, "slow_mirror", d.dn_pid(), blk=b.blk, ms=rng.randrange(20_000, 60_000))
    d.emit(t + 60, "socket_timeout", d.dn_pid(), blk=b.blk, n=n, ip=upstream, remote=node, rport=d.port())
    d.emit(t + 60, "mirror_exc", d.dn_pid(), blk=b.blk, dst=node)


def _anom_socket_timeout(d: _DayBuilder, b: _Block) -> None:
    """A slow mirror in the pipeline times out: no ack from it, timeouts upstream."""
    rng = d.rng
    broken = [rng.randrange(1, len(b.nodes)) if len(b.nodes) > 1 else 0]
    end = _pipeline(d, b, broken, _timeout)
    _after_write(d, b, end + 60, [n for i, n in enumerate(b.nodes) if i not in broken] or b.nodes)


def _anom_lease_recovery(d: _DayBuilder, b: _Block) -> None:
    """The writer died mid-block: nobody acks, an hour later the namenode recovers the lease."""
    rng = d.rng
    end = _pipeline(d, b, range(len(b.nodes)))
    t = end + rng.randint(600, 3600)
    targets = ", ".join(f"{n}:50010" for n in b.nodes)
    d.emit(t, "recovery_started", d.nn_pid(), blk=b.blk, ip=b.nodes[0])
    d.emit(t + rng.randint(0, 2), "recover_call", rng.randrange(13, 20), blk=b.blk, targets=targets)
    t += rng.randint(1, 5)
    length = rng.randrange(1, b.size)
    d.emit(t, "commit_sync", d.nn_pid(), blk=b.blk, gen=rng.randrange(1001, 5000), size=length, targets=targets)
    for node in b.nodes:
        d.emit(t + rng.randint(0, 2), "stored", d.nn_pid(), ip=node, blk=b.blk, size=length)


PatternFn = Callable[[_DayBuilder, _Block], None]

V1_ANOMALIES: tuple[tuple[PatternFn, float], ...] = (
    (_anom_missing_ack, 0.35),
    (_anom_serve_exception, 0.25),
    (_anom_failed_replication, 0.20),
    (_anom_redundant_delete, 0.20),
)
V2_ANOMALIES: tuple[tuple[PatternFn, float], ...] = (
    (_anom_checksum, 0.30),
    (_anom_socket_timeout, 0.30),
    (_anom_lease_recovery, 0.20),
    (_anom_missing_ack, 0.10),
    (_anom_serve_exception, 0.10),
)


# --------------------------------------------------------------------------------------------------
# Housekeeping lines (no block id)
# --------------------------------------------------------------------------------------------------


def _housekeeping(d: _DayBuilder, t: int, day_compact: str) -> None:
    rng = d.rng
    kind = rng.randrange(6 if d.drifted else 5)
    ip = rng.choice(d.ips)
    if kind == 0:
        d.add_line(t, d.nn_pid(), "INFO", NAMENODE, f"Roll Edit Log from {ip}")
    elif kind == 1:
        n = rng.randrange(100, 50_000)
        d.add_line(
            t, d.nn_pid(), "INFO", NAMENODE,
            f"Number of transactions: {n} Total time for transactions(ms): {rng.randrange(1, 2000)} "
            f"Number of transactions batched in Syncs: {rng.randrange(0, n // 10 + 1)} "
            f"Number of syncs: {rng.randrange(1, n)} SyncTimes(ms): {rng.randrange(1, 20_000)} ",
        )  # fmt: skip
    elif kind == 2:
        d.add_line(
            t, d.nn_pid(), "INFO", NAMENODE,
            f"BLOCK* NameSystem.processReport: from {ip}:50010, blocks: {rng.randrange(50, 5000)}, "
            f"processing time: {rng.randrange(0, 40)} msecs",
        )  # fmt: skip
    elif kind == 3:
        d.add_line(
            t, rng.randrange(13, 20), "INFO", DATANODE,
            f"BlockReport of {rng.randrange(50, 5000)} blocks got processed in {rng.randrange(1, 60)} msecs",
        )  # fmt: skip
    elif kind == 4:
        job, mr = rng.choice(_JOBS)
        task = rng.randrange(2000)
        who = "DFSClient_NONMAPREDUCE_" if d.drifted else "DFSClient_"
        prefix = "DIR* completeFile:" if d.drifted else "DIR* NameSystem.completeFile:"
        d.add_line(
            t, d.nn_pid(), "INFO", NAMENODE,
            f"{prefix} file /user/root/{job}/_temporary/_task_{day_compact}0000_{1 + t // 7200:04d}_{mr}_"
            f"{task:06d}_0/part-{task:05d} is closed by {who}{rng.randrange(-2**31, 2**31)}",
        )  # fmt: skip
    else:
        d.add_line(
            t, rng.randrange(13, 20), "INFO", DATANODE,
            f"Successfully sent block report 0x{rng.getrandbits(48):x}, containing 1 storage report(s), of "
            f"which we sent 1. The reports had {rng.randrange(50, 5000)} total blocks and used 1 RPC(s). "
            f"This took {rng.randrange(0, 20)} msec to generate and {rng.randrange(1, 200)} msecs for RPC "
            "and NN processing.",
        )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# One day
# --------------------------------------------------------------------------------------------------


def _new_block(d: _DayBuilder, used: set[int], day_compact: str) -> _Block:
    rng = d.rng
    while True:
        value = rng.getrandbits(64) - 2**63
        if value not in used:
            used.add(value)
            break
    hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
    t0 = hour * 3600 + rng.randrange(3600)
    u = rng.random()
    r = 3 if u < 0.9 else (2 if u < 0.97 else 1)
    nodes = rng.sample(d.ips, r)
    size = BLOCK_SIZE if rng.random() < 0.85 else rng.randrange(1, BLOCK_SIZE)
    job, mr = _JOBS[(hour // 5) % len(_JOBS)]
    task = rng.randrange(2000)
    path = f"/user/root/{job}/_temporary/_task_{day_compact}0000_{1 + hour // 2:04d}_{mr}_{task:06d}_0/part-{task:05d}"
    return _Block(f"blk_{value}", t0, nodes, size, path)


def _pick(rng: random.Random, table: tuple[tuple[PatternFn, float], ...]) -> PatternFn:
    return rng.choices([fn for fn, _ in table], weights=[w for _, w in table])[0]


def _build_events(scenario: Scenario, index: int, rng: random.Random) -> tuple[_DayBuilder, list[tuple[str, int]]]:
    drifted = scenario.is_drifted(index)
    ips = cluster_ips(scenario.seed)
    storage_ids = {ip: derive_seed(scenario.seed, "storage", ip) % 10**9 for ip in ips}
    d = _DayBuilder(rng=rng, ips=ips, tpl=_V2 if drifted else _V1, drifted=drifted, storage_ids=storage_ids)
    day_compact = scenario.day(index).replace("-", "")
    anomalies = V2_ANOMALIES if drifted else V1_ANOMALIES
    used: set[int] = set()
    labels: list[tuple[str, int]] = []
    for _ in range(scenario.blocks_per_day):
        b = _new_block(d, used, day_compact)
        anomalous = rng.random() < scenario.anomaly_rate
        d.begin(b.t0)
        (_pick(rng, anomalies) if anomalous else _normal)(d, b)
        d.end(b.t0)
        labels.append((b.blk, int(anomalous)))
    n_house = round(len(d.ts) * rng.uniform(*NON_BLOCK_SHARE))
    for _ in range(n_house):
        hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
        _housekeeping(d, hour * 3600 + rng.randrange(3600), day_compact)
    return d, labels


def _timestamp_table(day: str, iso_window: tuple[int, int] | None = None) -> list[str]:
    """``"yyMMdd HHmmss "`` for every second of the day (ISO ``yyyy-MM-ddTHH:mm:ss `` in the window)."""
    date = _dt.date.fromisoformat(day)
    short = date.strftime("%y%m%d")
    table = [f"{short} {s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d} " for s in range(DAY_SECONDS)]
    if iso_window is not None:
        lo, hi = iso_window
        for s in range(lo, hi):
            table[s] = f"{day}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d} "
    return table


# ----- corruption


_GARBAGE = (
    "\tat org.apache.hadoop.dfs.DataNode$BlockReceiver.receivePacket(DataNode.java:{n})",
    "\tat org.apache.hadoop.dfs.DataNode$DataXceiver.run(DataNode.java:{n})",
    "\tat java.lang.Thread.run(Thread.java:619)",
    "java.io.IOException: Connection reset by peer",
    "",
    "\x00\x00\x00\x00\x00\x00\x00\x00",
    "#%&*!{n}@@@ ###### ~~~~",
    "{n} ????? dfs.FSNamesystem",
)


def _garbage_line(rng: random.Random) -> str:
    return rng.choice(_GARBAGE).format(n=rng.randrange(100, 3000))


_BLOCK_ID = re.compile(r"blk_-?\d+")


def _truncate(line: str, rng: random.Random) -> str:
    """Cut ``line`` short, never inside a block id, keeping its first block id when something follows
    it (so no partial, made-up block id ever appears in the file)."""
    spans = [m.span() for m in _BLOCK_ID.finditer(line)]
    if not spans:
        return line[: rng.randrange(1, len(line))] if len(line) > 1 else line
    first_start, first_end = spans[0]
    if first_end < len(line):
        cut = rng.randrange(first_end, len(line))
    else:  # the id ends the line: cut before it
        cut = rng.randrange(1, first_start) if first_start > 1 else 1
    for s, e in spans[1:]:
        if s < cut < e:
            cut = s
    return line[:cut]


def _corrupt(lines: list[str], rng: random.Random, iso_lines: int) -> tuple[list[str], int]:
    """Truncate some lines, splice non-UTF-8 bytes into others, insert garbage between lines and cut
    the last line (the file then ends without a newline). Returns the new lines and the number of
    corrupted lines, counting the ``iso_lines`` already reformatted by the caller."""
    n = len(lines)
    if n == 0:
        return [_garbage_line(rng) or "?"], 1
    # well-formed candidates (not ISO, not the last line, which is cut below)
    normal = [i for i in range(n - 1) if lines[i][6:7] == " " and lines[i][:1].isdigit()]
    n_trunc = max(1, round(n * TRUNCATED_RATE))
    n_bytes = max(3, round(n * NON_UTF8_RATE))
    picked = rng.sample(normal, min(len(normal), n_trunc + n_bytes))
    for i in picked[:n_trunc]:
        lines[i] = _truncate(lines[i], rng)
    for i in picked[n_trunc:]:
        lines[i] += rng.choice((" \udce9t\udce9", " \udcff\udcfe", " caf\udce9 \udcc3("))
    lines[-1] = _truncate(lines[-1], rng)  # the writer died mid-line
    n_garbage = max(1, round(n * GARBAGE_RATE))
    positions = sorted(rng.randrange(n) for _ in range(n_garbage))  # before line i: never after the last
    out: list[str] = []
    prev = 0
    for pos in positions:
        out.extend(lines[prev:pos])
        out.append(_garbage_line(rng))
        prev = pos
    out.extend(lines[prev:])
    return out, iso_lines + len(picked) + n_garbage + 1


def render_day(scenario: Scenario, index: int) -> RenderedDay:
    """Generate day ``index`` of ``scenario`` in memory (pure: no I/O)."""
    if not 0 <= index < scenario.days:
        raise ValueError(f"day index {index} outside 0..{scenario.days - 1}")
    day = scenario.day(index)
    rng = day_rng(scenario.seed, index)
    d, labels = _build_events(scenario, index, rng)
    corrupt = scenario.is_corrupt(index)
    iso_window = None
    if corrupt:
        lo = rng.randrange(2 * 3600, DAY_SECONDS - ISO_WINDOW_SECONDS - 2 * 3600)
        iso_window = (lo, lo + ISO_WINDOW_SECONDS)
    table = _timestamp_table(day, iso_window)
    ts, bodies = d.ts, d.bodies
    order = sorted(range(len(ts)), key=ts.__getitem__)  # stable: ties keep emission order
    lines = [table[ts[i]] + bodies[i] for i in order]
    corrupted = 0
    if corrupt:
        assert iso_window is not None
        iso_lines = sum(1 for t in ts if iso_window[0] <= t < iso_window[1])
        lines, corrupted = _corrupt(lines, rng, iso_lines)
    summary = DaySummary(
        day=day,
        index=index,
        lines=len(lines),
        blocks=len(labels),
        anomalies=sum(label for _, label in labels),
        corrupted_lines=corrupted,
        drift=scenario.is_drifted(index),
    )
    return RenderedDay(summary=summary, lines=lines, trailing_newline=not corrupt, labels=labels)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def write_lines(path: Path, lines: list[str], trailing_newline: bool, chunk: int = 20_000) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb", buffering=1 << 20) as fh:
        for start in range(0, len(lines), chunk):
            text = "\n".join(lines[start : start + chunk])
            if start + chunk < len(lines) or trailing_newline:
                text += "\n"
            fh.write(text.encode("utf-8", "surrogateescape"))
    os.replace(tmp, path)


def write_day(root: Path, rendered: RenderedDay) -> tuple[Path, Path]:
    """Replace the day's raw and labels partitions with ``rendered``. Returns (log path, labels path)."""
    lake = Lake(Path(root))
    day = rendered.summary.day
    raw_dir, labels_path = lake.raw_dir(SOURCE, day), lake.labels_file(SOURCE, day)
    reset_dir(raw_dir)
    reset_dir(labels_path.parent)
    log_path = raw_dir / LOG_FILE_NAME
    write_lines(log_path, rendered.lines, rendered.trailing_newline)
    rows = ["session_id,label", *(f"{blk},{label}" for blk, label in rendered.labels)]
    write_lines(labels_path, rows, True)
    return log_path, labels_path


def generate_day(root: Path, scenario: Scenario, index: int) -> DaySummary:
    """Generate and write day ``index`` of ``scenario`` under the lake at ``root``."""
    rendered = render_day(scenario, index)
    write_day(root, rendered)
    return rendered.summary


def generate(root: Path, scenario: Scenario) -> list[DaySummary]:
    """Generate and write every day of ``scenario``."""
    return [generate_day(root, scenario, i) for i in range(scenario.days)]


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nightshift_datagen.hdfs", description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("data"), help="lake root (default: data)")
    p.add_argument("--start-day", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blocks-per-day", type=int, default=3000)
    p.add_argument("--anomaly-rate", type=float, default=0.03)
    p.add_argument("--drift-day", type=int, default=None, help="day index from which the new version runs")
    p.add_argument("--corrupt-day", type=int, default=None, help="day index with corrupted input")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = Scenario(
            start_day=args.start_day,
            days=args.days,
            seed=args.seed,
            blocks_per_day=args.blocks_per_day,
            anomaly_rate=args.anomaly_rate,
            drift_day=args.drift_day,
            corrupt_day=args.corrupt_day,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return generate_with_progress(args.root, scenario, generate_day, DaySummary.describe)


def generate_with_progress(root: Path, scenario, generate_one, describe) -> int:
    """CLI loop shared by the generators: one summary line per day, a total with lines/s on stderr."""
    started = time.perf_counter()
    total = 0
    for i in range(scenario.days):
        summary = generate_one(root, scenario, i)
        total += summary.lines
        print(describe(summary), flush=True)
    elapsed = time.perf_counter() - started
    print(f"total lines={total} in {elapsed:.1f}s ({total / max(elapsed, 1e-9):,.0f} lines/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
