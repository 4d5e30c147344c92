"""Deterministic, realistic multi-day Blue Gene/L (BGL) RAS log generator (Loghub BGL line format).

Every line looks like the real sample::

    - 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected

i.e. Loghub's ``<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level>
<Content>``. The label is ``-`` for a normal line, otherwise the alert category (``KERNDTLB``,
``KERNSTOR``, ``APPSEV``, ...). ``Timestamp`` is the epoch second of ``Time``, both in UTC here (in
the real log ``Time`` is Livermore local time). ``Type`` is ``RAS`` for KERNEL, APP, MMCS and LINKCARD
lines and ``NULL`` for DISCOVERY, HARDWARE and MONITOR lines, as in the real log.

The machine: racks ``R00``..``R77``, two midplanes each, 16 node cards ``N0``..``NF`` per midplane
with compute nodes ``R24-M1-N3-C:J07-U11`` (card J02..J17, unit U01/U11), I/O nodes
``R24-M1-N4-I:J18-U01`` (node cards N0/N4/N8/NC), link cards ``R24-M1-L2-U18-C``, node-card
locations ``R24-M1-N3``, plus the ``NULL`` and ``UNKNOWN_LOCATION`` pseudo nodes of the service
processes. ``nodes`` compute nodes are in use, spread over a seed-stable set of midplanes.

Sessions are (node, hour) windows. Normal activity comes in job-shaped episodes: core dumps across a
partition (``generating core.N``), register dumps at level FATAL with label ``-``, user errors
(``ciod: Error loading ...``, APP FATAL, label ``-``), end-of-job statistics, correctable memory /
cache / network errors, ``iar/dear`` alignment bursts, MMCS asserts, DISCOVERY / HARDWARE / MONITOR
WARNING, SEVERE, ERROR and FAILURE lines that are not alerts. Anomalies are incidents: alert bursts
on one or a few nodes (a data TLB error storm lasting hours, storage interrupts across a job, ciod
stream failures on I/O nodes, Lustre mount failures after NFS retries, tree network errors, rts
panics), often preceded on the same node by correctable-error INFO lines and DISCOVERY WARNINGs.
Incidents are added until ``anomaly_rate`` of the day's (node, hour) windows hold an alert line.

Scenario knobs (:class:`BglScenario`):

* ``drift_day``: from that day index on a new firmware runs: frequent templates change wording
  (``generating core.N`` becomes ``generating core file core.N``, ``iar X dear Y`` becomes
  ``iar=0xX dear=0xY``, ...) and new alert kinds appear (``KERNTLBE``, ``KERNMC``, ``KERNPAN``,
  ``LINKDISC``/``LINKIAP``/``LINKPAP``, ``MONPOW``/``MONILL``) while the old ones get rarer.
* ``corrupt_day``: that day mixes in garbage lines, truncated and wrapped lines, a two-hour window
  written in ISO timestamps, a few non-UTF-8 bytes, and the file ends mid-line without a newline.

Days are independent: day ``i`` is drawn from an RNG seeded by ``(seed, i)`` only (the machine layout
depends on ``(seed, nodes)``), so the same scenario gives byte-identical files.

Output per day: ``Lake(root).raw_dir("bgl", day) / "bgl.log"`` (the partition is replaced). BGL carries
its labels in the first field, so no labels file is written.

CLI::

    python -m nightshift_datagen.bgl --root data --start-day 2005-06-03 --days 3 --seed 7 \\
        --lines-per-day 20000 --anomaly-rate 0.05 --drift-day 2 --corrupt-day 1
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import itertools
import math
import random
import sys
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nightshift_datagen.hdfs import (
    DaySummary,
    generate_with_progress,
    RenderedDay,
    Scenario,
    derive_seed,
    reset_dir,
    write_lines,
)
from nightshift.lake import Lake, check_day

SOURCE = "bgl"
LOG_FILE_NAME = "bgl.log"
DAY_SECONDS = 86_400
WINDOW_SECONDS = 3_600  # the session window the pipeline uses: (node, hour)
MAX_ANOMALY_RATE = 0.5

# Corrupt-day knobs.
ISO_WINDOW_SECONDS = 2 * 3600
GARBAGE_RATE = 0.004
TRUNCATED_RATE = 0.003
WRAPPED_RATE = 0.002
NON_UTF8_RATE = 0.0005

# "<Type> <Component> <Level>" heads, as in the real log.
K_INFO = "RAS KERNEL INFO"
K_FATAL = "RAS KERNEL FATAL"
APP_FATAL = "RAS APP FATAL"
MMCS_ERROR = "RAS MMCS ERROR"
MMCS_INFO = "RAS MMCS INFO"
LINK_INFO = "RAS LINKCARD INFO"
LINK_FATAL = "RAS LINKCARD FATAL"
DISC_INFO = "NULL DISCOVERY INFO"
DISC_WARN = "NULL DISCOVERY WARNING"
DISC_SEVERE = "NULL DISCOVERY SEVERE"
DISC_ERROR = "NULL DISCOVERY ERROR"
HW_WARN = "NULL HARDWARE WARNING"
HW_SEVERE = "NULL HARDWARE SEVERE"
MON_FAILURE = "NULL MONITOR FAILURE"
MON_SEVERE = "NULL MONITOR SEVERE"

NULL_NODE = "NULL"
UNKNOWN = "UNKNOWN_LOCATION"
SERVICE_NODE_IP = "172.16.96.116"

# --------------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BglScenario:
    """What to generate. Day indices (``drift_day``, ``corrupt_day``) count from ``start_day`` = 0.

    ``lines_per_day`` is the approximate volume of a day; ``nodes`` the number of compute nodes in
    use; ``anomaly_rate`` the share of (node, hour) windows holding at least one alert line."""

    start_day: str
    days: int = 1
    seed: int = 0
    lines_per_day: int = 20_000
    nodes: int = 1024
    anomaly_rate: float = 0.05
    drift_day: int | None = None
    corrupt_day: int | None = None

    def __post_init__(self) -> None:
        check_day(self.start_day)
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if self.lines_per_day < 1:
            raise ValueError(f"lines_per_day must be >= 1, got {self.lines_per_day}")
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"nodes must be in [1, {MAX_NODES}], got {self.nodes}")
        if not 0.0 <= self.anomaly_rate <= MAX_ANOMALY_RATE:
            raise ValueError(f"anomaly_rate must be in [0, {MAX_ANOMALY_RATE}], got {self.anomaly_rate}")
        for name in ("drift_day", "corrupt_day"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    # same semantics as the HDFS scenario (these only use start_day / drift_day / corrupt_day)
    day = Scenario.day
    is_drifted = Scenario.is_drifted
    is_corrupt = Scenario.is_corrupt


# --------------------------------------------------------------------------------------------------
# The machine (seed-stable)
# --------------------------------------------------------------------------------------------------

_RACKS = tuple(f"R{a}{b}" for a in range(8) for b in range(8))
_MIDPLANES = tuple(f"{rack}-M{m}" for rack in _RACKS for m in (0, 1))
_NODE_CARDS = "0123456789ABCDEF"
_IO_NODE_CARDS = "048C"
_COMPUTE_PER_MIDPLANE = 16 * 16 * 2
MAX_NODES = len(_MIDPLANES) * _COMPUTE_PER_MIDPLANE
NODES_PER_MIDPLANE = 64  # typical number of compute nodes in use per midplane


@dataclass(frozen=True)
class Midplane:
    name: str  # R24-M1
    compute: tuple[str, ...]  # R24-M1-N3-C:J07-U11
    io: tuple[str, ...]  # R24-M1-N4-I:J18-U01
    node_cards: tuple[str, ...]  # R24-M1-N3
    link_cards: tuple[str, ...]  # R24-M1-L2-U18-C


@dataclass(frozen=True)
class Machine:
    midplanes: tuple[Midplane, ...]
    bglio: dict[str, int]  # I/O node -> its bglio<N> file server number
    ido: dict[str, tuple[str, str]]  # node card / link card -> (iDo LP address, IP)


def _lp_address(rng: random.Random) -> str:
    tail = ":".join(f"{rng.getrandbits(8):02X}" for _ in range(3))
    head = f"FF:F2:9F:{rng.choice(('15', '16', '16'))}:{rng.getrandbits(8):02X}:{rng.getrandbits(8):02X}"
    return f"{head}:00:0D:60:{tail}"


@functools.lru_cache(maxsize=16)
def machine(seed: int, nodes: int) -> Machine:
    """The midplanes, nodes and cards in use for ``(seed, nodes)``: the same every day."""
    rng = random.Random(derive_seed("bgl", seed, "machine", nodes))
    n_mid = max(1, min(len(_MIDPLANES), math.ceil(nodes / NODES_PER_MIDPLANE)))
    names = sorted(rng.sample(_MIDPLANES, n_mid))
    base, extra = divmod(nodes, n_mid)
    midplanes: list[Midplane] = []
    bglio: dict[str, int] = {}
    ido: dict[str, tuple[str, str]] = {}
    io_numbers = iter(rng.sample(range(1, 1024), min(1023, 8 * n_mid)) + list(range(1024, 1024 + 8 * n_mid)))
    for i, mp in enumerate(names):
        every = [
            f"{mp}-N{nc}-C:J{j:02d}-{u}" for nc in _NODE_CARDS for j in range(2, 18) for u in ("U01", "U11")
        ]
        compute = tuple(rng.sample(every, base + (1 if i < extra else 0)))
        io = tuple(f"{mp}-N{nc}-I:J18-{u}" for nc in _IO_NODE_CARDS for u in ("U01", "U11"))
        node_cards = tuple(f"{mp}-N{nc}" for nc in _NODE_CARDS)
        link_cards = tuple(f"{mp}-L{k}-U18-{rng.choice('AC')}" for k in range(4))
        for node in io:
            bglio[node] = next(io_numbers)
        for card in (*node_cards, *link_cards):
            ido[card] = (_lp_address(rng), f"10.{rng.randrange(8)}.{rng.randrange(3)}.{rng.randrange(1, 255)}")
        midplanes.append(Midplane(mp, compute, io, node_cards, link_cards))
    return Machine(tuple(midplanes), bglio, ido)


# --------------------------------------------------------------------------------------------------
# Message texts. V1 = the firmware before the drift, V2 = after (reworded frequent templates).
# --------------------------------------------------------------------------------------------------

_V1_TEXT = {
    "core": "generating core.{}",
    "icache": "instruction cache parity error corrected",
    "ce": "CE sym {}, at 0x{}, mask 0x{:02x}",
    "dh": "{} double-hummer alignment exceptions",
    "fp": "{} floating point alignment exceptions",
    "iardear": "iar {} dear {}",
    "interrupts": (
        "{} total interrupts. 0 critical input interrupts. {} microseconds total spent on critical input"
        " interrupts, {} microseconds max time in a critical input interrupt."
    ),
}
_V2_TEXT = {
    **_V1_TEXT,
    "core": "generating core file core.{}",
    "icache": "instruction cache parity error detected and corrected",
    "ce": "ddr: CE sym {} at 0x{} mask 0x{:02x} corrected",
    "dh": "{} double-hummer alignment exceptions handled",
    "iardear": "iar=0x{} dear=0x{}",
    "interrupts": (
        "interrupt summary: {} total, 0 critical input, {} us spent on critical input, {} us max critical input"
    ),
}

# Register-dump flag lines (``name.....<0|1>``), exactly as in the real log.
_DUMP_FLAGS = (
    "auxiliary processor.........................",
    "byte ordering exception.....................",
    "critical input interrupt enable...",
    "data address space................",
    "data store interrupt caused by dcbf.........",
    "data store interrupt caused by icbi.........",
    "debug interrupt enable............",
    "debug wait enable.................",
    "disable store gathering..................",
    "floating point instr. enabled.....",
    "floating pt ex mode 0 enable......",
    "floating pt ex mode 1 enable......",
    "force load/store alignment...............",
    "fraction rounded.........................",
    "guaranteed data cache block touch........",
    "guaranteed instruction cache block touch.",
    "icache prefetch depth....................",
    "icache prefetch threshold................",
    "instruction address space.........",
    "machine check enable..............",
    "machine check: i-fetch......................",
    "minus normalized number..................",
    "problem state (0=sup,1=usr).......",
    "program interrupt: fp cr field .............",
    "program interrupt: fp cr update.............",
    "program interrupt: illegal instruction......",
    "program interrupt: imprecise exception......",
    "program interrupt: privileged instruction...",
    "program interrupt: trap instruction.........",
    "program interrupt: unimplemented operation..",
    "store operation.............................",
    "wait state enable.................",
)

_PROGRAMS = (
    "/bgl/apps/SWL/stability/HPL/WORK/{n}./hpl_DD",
    "/bgl/apps/followup/SPaSM_static/SPaSM.{n}-{m}",
    "/bgl/apps/followup/RAPTOR/new.raptor.trace",
    "/bgl/apps/scaletest/performance/MINIBEN/mb_{n}_{m}/allreduce.rts",
    "/bgl/apps/swl-prep/ibm-swl/functional/sppm_chkpt/run/sppm",
    "/bgl/apps/SWL/stability/DDCMD//ddcMDbgl",
    "/home/germann{k}/BGL-demo/SPaSM_mpi",
    "/g/g{n}/glosli/src/ddcMD/ddcMD{k}.{m}.{k}a/bin/ddcMDbglV",
    "/p/gb{k}/stella/UMT{n}K/{m}/umt{n}k_DD",
    "/home/spelce{k}/HPCC_IBM/Urgent/COP/{n}K/vnm.rts",
    "/home/yates//torus-latency.rts",
    "/home/rfisher/sodscaling/flash{k}",
    "/g/g{n}/buber/Yunsic/BlueGene/partad.develf/taddriver.{m}.exe",
    "/bgl/apps/followup/hellow/a.out.{m}",
)
_WORK_DIRS = (
    "/p/gb{k}/glosli/8M_5000K/t{n}",
    "pwd",
    "/p/bg{k}/da",
    "/home/germann{k}/SPaSM_static",
    "/g/g{k}/spelce{k}/Linpack_SWL",
    "/bgl/apps/SWL/performance/MINIBEN///{k}.{m}.{k}-{m}.{k}.{k}",
    "/home/spelce{k}/UMT{n}K/umt{n}k/ckpt_umt{n}k_src/TEST/NEW_TEST",
    "/p/gb{k}/stella/RAPTOR/{n}",
)
_MAP_FILES = (
    "/p/gb{k}/cabot/miranda/newmaps/{n}k_128x64x1_8x4x4.map",
    "/p/gb{k}/welcome{k}/{n}k_128x256x1_8x4x4.map",
    "/home/auselton/bgl/{n}mps.sequential.mapfile",
    "/p/gb{k}/pakin{k}/sweep3d-5x5x400-10mk-3mmi-{n}pes-sweep/sweep.map",
    "/home/pakin{k}/sweep3d-{n}.{k}b/results/random.map",
)
_ASSERT = (
    "idoproxydb hit ASSERT condition: ASSERT expression=0 Source file=idotransportmgr.cpp Source line=1043"
    " Function=int IdoTransportMgr::SendPacket(IdoUdpMgr*, BglCtlPavTrace*)"
)
_NODE_CARD_STATUS_BAD = (
    "Node card status: no ALERTs are active. Clock Mode is Low. Clock Select is Midplane. Phy JTAG Reset is"
    " asserted. ASIC JTAG Reset is asserted. Temperature Mask is not active. No temperature error."
    " Temperature Limit Error Latch is clear. PGOOD IS NOT ASSERTED. PGOOD ERROR LATCH IS ACTIVE. MPGOOD IS"
    " NOT OK. MPGOOD ERROR LATCH IS ACTIVE. The 2.5 volt rail is OK. The 1.5 volt rail is OK."
)
_NODE_CARD_STATUS_ALERT = (
    "Node card status: ALERT 0, ALERT 1, ALERT 2, ALERT 3 is (are) active. Clock Mode is Low. Clock Select is"
    " Midplane. Phy JTAG Reset is asserted. ASIC JTAG Reset is not asserted. Temperature Mask is not active."
    " No temperature error. Temperature Limit Error Latch is clear. PGOOD is asserted. PGOOD error latch is"
    " clear. MPGOOD is OK. MPGOOD error latch is clear. The 2.5 volt rail is OK. The 1.5 volt rail is OK."
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _hour_weights() -> list[float]:
    """Job load: a floor of batch work around the clock, more test/debug runs in the working day."""
    return [1.0 + 0.7 * math.exp(-((h - 15) ** 2) / 20.0) for h in range(24)]


_HOUR_CUM = list(itertools.accumulate(_hour_weights()))


# --------------------------------------------------------------------------------------------------
# Per-day builder
# --------------------------------------------------------------------------------------------------


class _Day:
    """Collects one day's lines (time in microseconds, label, node, head, message) and its windows."""

    def __init__(self, rng: random.Random, mach: Machine, drifted: bool, date: _dt.date) -> None:
        self.r = rng
        self.m = mach
        self.v2 = drifted
        self.tx = _V2_TEXT if drifted else _V1_TEXT
        self.date = date
        self.us: list[int] = []
        self.labels: list[str] = []
        self.nodes: list[str] = []
        self.heads: list[str] = []
        self.msgs: list[str] = []
        self.windows: set[tuple[str, int]] = set()
        self.anomalous: set[tuple[str, int]] = set()
        # some midplanes run (and fail) more jobs than others today
        weights = [rng.paretovariate(1.3) for _ in mach.midplanes]
        self._mp_cum = list(itertools.accumulate(weights))

    # ----- emitting
    def add(self, t: float, node: str, head: str, msg: str, label: str = "-") -> None:
        """One line at ``t`` seconds after midnight; lines outside the day are dropped."""
        if not 0.0 <= t < DAY_SECONDS:
            return
        us = int(t * 1_000_000)
        self.us.append(us)
        self.labels.append(label)
        self.nodes.append(node)
        self.heads.append(head)
        self.msgs.append(msg)
        key = (node, us // (WINDOW_SECONDS * 1_000_000))
        self.windows.add(key)
        if label != "-":
            self.anomalous.add(key)

    # ----- random helpers
    def when(self) -> float:
        """A random moment of the day, following the diurnal job load."""
        r = self.r
        hour = bisect_right(_HOUR_CUM, r.random() * _HOUR_CUM[-1])
        return min(hour, 23) * 3600 + r.random() * 3600

    def midplane(self) -> Midplane:
        r = self.r
        i = bisect_right(self._mp_cum, r.random() * self._mp_cum[-1])
        return self.m.midplanes[min(i, len(self.m.midplanes) - 1)]

    def ri(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (faster than randint)."""
        return lo + int(self.r.random() * (hi - lo + 1))

    def pick(self, seq: Sequence[str]) -> str:
        return seq[int(self.r.random() * len(seq))]

    def h8(self) -> str:
        return f"{self.r.getrandbits(32):08x}"

    def nodes_of(self, mp: Midplane, k: int) -> list[str]:
        """``k`` compute nodes of a job on ``mp``: a run of the midplane's (randomly ordered) node list,
        so jobs on the same midplane share nodes the way partitions do."""
        nodes = mp.compute
        start = int(self.r.random() * len(nodes))
        return (nodes[start : start + k] + nodes[: max(0, start + k - len(nodes))])[: len(nodes)]

    def fill(self, pattern: str) -> str:
        return pattern.format(n=self.ri(2, 64), m=self.ri(1, 99), k=self.ri(1, 3))

    def local_clock(self, t: float) -> str:
        """The service processes' own clock string (Livermore time), e.g. ``Fri Jul 01 08:16:53 PDT 2005``."""
        dst = 4 <= self.date.month <= 10
        when = _dt.datetime(self.date.year, self.date.month, self.date.day) + _dt.timedelta(
            seconds=int(t) - (7 if dst else 8) * 3600 - self.ri(30, 600)
        )
        return (
            f"{_WEEKDAYS[when.weekday()]} {_MONTHS[when.month - 1]} {when.day:02d} {when:%H:%M:%S} "
            f"{'PDT' if dst else 'PST'} {when.year}"
        )


# ----- reusable message builders


def _ce_line(d: _Day) -> str:
    r = d.r
    return d.tx["ce"].format(d.ri(0, 35), f"{r.getrandbits(27) << 5:08x}", 1 << d.ri(0, 7))


def _correctable(d: _Day) -> str:
    """One correctable-error report (KERNEL INFO): frequent in normal windows and before failures."""
    r = d.r
    u = r.random()
    if u < 0.40:
        return _ce_line(d)
    if u < 0.55:
        return f"{d.ri(1, 4)} ddr errors(s) detected and corrected on rank 0, symbol {d.ri(0, 35)}, bit {d.ri(0, 7)}"
    if u < 0.65:
        return f"total of {d.ri(1, 12)} ddr error(s) detected and corrected"
    if u < 0.75:
        return "data cache search parity error detected. attempting to correct"
    if u < 0.85:
        return d.tx["icache"]
    if u < 0.93:
        return f"{d.ri(1, 30)} L3 EDRAM error(s) (dcr 0x0157) detected and corrected"
    return f"critical input interrupt (unit=0x0b bit=0x{d.ri(0, 31):02x}): warning for torus {d.pick(_TORUS_DIRS)} wire"


_TORUS_DIRS = ("x+", "x-", "y+", "y-", "z+", "z-")


def _comm_warning(d: _Day, lp: str) -> str:
    op = d.pick(("CONTROL", "I2C", "JTAG"))
    cause = d.pick(
        (
            "caught java.net.SocketException: Broken pipe",
            "caught java.lang.RuntimeException: Communication error",
            "caught java.io.EOFException",
        )
    )
    return (
        f"Problem communicating with node card, iDo machine with LP of {lp} caught "
        f"java.lang.IllegalStateException: while executing {op} Operation {cause}"
    )


def _node_lp(d: _Day, node: str) -> str:
    card = node[:9]  # R24-M1-N3
    found = d.m.ido.get(card)
    return found[0] if found else _lp_address(d.r)


def _dump(d: _Day, node: str, t: float, n_lines: int, head: str = K_FATAL, iar: str | None = None) -> float:
    """A register dump after a program / kernel exception: FATAL lines with label ``-``."""
    r = d.r
    add = d.add
    iar = iar or f"{r.getrandbits(14) << 2:08x}"
    first = d.pick(("instruction address: 0x{}", "data address: 0x{}", "exception syndrome register: 0x{}"))
    if first.startswith("instruction"):
        add(t, node, head, first.format(iar))
    elif first.startswith("data"):
        add(t, node, head, first.format(d.pick(("00000002", "00000000", d.h8()))))
    else:
        add(t, node, head, first.format(d.pick(("00800000", "02000000", "00000000"))))
    for _ in range(n_lines - 1):
        t += r.random() * 0.05
        u = r.random()
        if u < 0.62:
            msg = f"{d.pick(_DUMP_FLAGS)}{1 if r.random() < 0.2 else 0}"
        elif u < 0.68:
            msg = f"machine state register: 0x{d.pick(('00002000', '0002f000', '00029000'))}"
        elif u < 0.73:
            msg = f"core configuration register: 0x{d.pick(('00002000', '40002000'))}"
        elif u < 0.78:
            b = 4 * d.ri(0, 7)
            msg = f"r{b:02d}=0x{d.h8()} r{b + 1:02d}=0x{d.h8()} r{b + 2:02d}=0x{d.h8()} r{b + 3:02d}=0x{d.h8()}"
        elif u < 0.83:
            xer = d.pick(("20000002", "00000002"))
            msg = f"lr:{iar[:6]}{r.getrandbits(6) << 2:02x} cr:{d.h8()} xer:{xer} ctr:{d.h8()}"
        elif u < 0.87:
            msg = f"fpr{d.ri(0, 31)}=0x{d.h8()} {d.h8()} {d.h8()} {d.h8()}"
        elif u < 0.90:
            msg = f"dbcr0=0x00000000 dbsr=0x00000000 ccr0=0x{d.pick(('40002000', '00002000'))}"
        elif u < 0.93:
            msg = f"size of scratchpad portion of L3.........{(s := d.ri(0, 2))} ({s * 2}M)"
        elif u < 0.96:
            msg = "special purpose registers:"
        elif u < 0.975:
            msg = f"Machine State Register: 0x{d.pick(('00002000', '0002f000'))}"
        else:
            msg = "general purpose registers:"
        add(t, node, head, msg)
    return t


_SUPPRESSING = "suppressing further interrupts of same type"
_DCR_TIMEOUT = "MACHINE CHECK DCR read timeout (mc=e08x iar 0x00000000 lr 0xc00045a4)"


def _nfs_retry(d: _Day, io: str, attempt: int) -> str:
    return f"NFS Mount failed on bglio{d.m.bglio[io]}, slept 15 seconds, retrying ({attempt})"


def _bit_sparing(d: _Day, link_card: str) -> str:
    return f"MidplaneSwitchController performing bit sparing on {link_card} bit {d.ri(0, 21)}"


def _ido_chip(d: _Day) -> str:
    lp = _lp_address(d.r)
    ip = f"10.{d.ri(0, 7)}.{d.ri(0, 2)}.{d.ri(1, 254)}"
    return f"{lp} ip={ip} v={d.pick(('9', '13', '13'))} t={d.pick(('1', '2', '4', '4'))}"


def _ecid(d: _Day) -> str:
    return f"{d.r.getrandbits(112):028X}"


# --------------------------------------------------------------------------------------------------
# Normal episodes
# --------------------------------------------------------------------------------------------------


def _ep_core_dumps(d: _Day, t0: float) -> None:
    """A job dies: every node of (part of) its partition writes a core file; ciod sums up."""
    r = d.r
    mp = d.midplane()
    k = max(1, min(len(mp.compute), int(r.lognormvariate(2.6, 1.0))))
    nodes = d.nodes_of(mp, k)
    ranks = [r.getrandbits(14) for _ in nodes]
    core = d.tx["core"]
    io = d.pick(mp.io)
    if r.random() < 0.35:
        signal = d.pick(("15", "15", "11", "6"))
        msg = f"ciod: Received signal {signal}, code=0, errno=0, address=0x{r.getrandbits(12):08x}"
        d.add(t0 - r.random() * 20, io, K_INFO, msg)
    spread = r.uniform(5, 240)
    add = d.add
    for node, rank in zip(nodes, ranks):
        add(t0 + r.random() * spread, node, K_INFO, core.format(rank))
    if r.random() < 0.6:
        program = d.fill(d.pick(_PROGRAMS))
        msg = f"ciod: generated {len(nodes)} core files for program {program}"
        d.add(t0 + spread + r.random() * 30, io, K_INFO, msg)


def _ep_job_stats(d: _Day, t0: float) -> None:
    """End-of-job kernel statistics from every node of the job."""
    r = d.r
    mp = d.midplane()
    nodes = d.nodes_of(mp, max(1, int(r.lognormvariate(1.8, 0.9))))
    tx = d.tx
    base = int(r.lognormvariate(9.2, 0.6))
    with_fp = r.random() < 0.55
    with_dh = r.random() < 0.55
    with_int = r.random() < 0.45
    with_rbs = r.random() < 0.35
    add = d.add
    for node in nodes:
        t = t0 + r.random() * 60
        if with_int:
            add(t, node, K_INFO, tx["interrupts"].format(base + d.ri(0, 60), 0, 0))
        if with_rbs:
            calls = 0 if r.random() < 0.8 else d.ri(1, 40)
            add(t, node, K_INFO, (
                f"{calls * d.ri(3, 9)} microseconds spent in the rbs signal handler during {calls} calls."
                f" {calls and d.ri(3, 12)} microseconds was the maximum time for a single instance of a"
                " correctable ddr."
            ))  # fmt: skip
        if with_dh:
            add(t + 0.01, node, K_INFO, tx["dh"].format(int(r.lognormvariate(6, 2.5))))
        if with_fp:
            add(t + 0.02, node, K_INFO, tx["fp"].format(int(r.lognormvariate(5, 2.5))))


def _ep_alignment(d: _Day, t0: float) -> None:
    """A badly aligned program: the kernel reports integer alignment exceptions, then iar/dear pairs."""
    r = d.r
    mp = d.midplane()
    node = d.pick(mp.compute)
    base_iar = r.getrandbits(20) << 2
    base_dear = r.getrandbits(26) << 5
    if r.random() < 0.3:
        total = int(r.lognormvariate(14, 1.5))
        parts = " ".join(
            f"({total - 7 + i}) iar 0x{base_iar + 0x10 * (i % 4):08x}, dear 0x{base_dear + 0x20 * i:08x}"
            for i in range(8)
        )
        d.add(t0, node, K_INFO, f"Kernel detected {total} integer alignment exceptions {parts}")
    fmt = d.tx["iardear"]
    t = t0
    add = d.add
    for _ in range(max(1, int(r.lognormvariate(1.8, 0.9)))):
        t += r.expovariate(1 / 20)
        iar, dear = base_iar + 4 * d.ri(0, 24), base_dear + 8 * r.getrandbits(16)
        add(t, node, K_INFO, fmt.format(f"{iar:08x}", f"{dear:08x}"))


def _ep_memory(d: _Day, t0: float) -> None:
    """Correctable DDR errors on one node: CE reports, per-symbol counts, a total."""
    r = d.r
    node = d.pick(d.midplane().compute)
    sym = d.ri(0, 35)
    t = t0
    add = d.add
    ce = d.tx["ce"]
    addr = r.getrandbits(22) << 5
    for _ in range(max(1, int(r.lognormvariate(0.8, 0.8)))):
        t += r.expovariate(1 / 90)
        add(t, node, K_INFO, ce.format(sym, f"{(0x0b800000 + addr + 32 * d.ri(0, 64)):08x}", 1 << d.ri(0, 7)))
    u = r.random()
    if u < 0.4:
        n = d.ri(1, 4)
        add(t + 1, node, K_INFO, f"{n} ddr errors(s) detected and corrected on rank 0, symbol {sym}, bit {d.ri(0, 7)}")
        add(t + 1, node, K_INFO, f"total of {n} ddr error(s) detected and corrected")
    elif u < 0.6:
        secs = d.ri(60, 7200)
        msg = f"{d.ri(1, 40)} ddr error(s) detected and corrected on rank 0, symbol {sym} over {secs} seconds"
        add(t + 1, node, K_INFO, msg)
        add(t + 1, node, K_INFO, f"total of {d.ri(1, 60)} ddr error(s) detected and corrected over {secs} seconds")


def _ep_cache(d: _Day, t0: float) -> None:
    """Instruction / data cache parity errors corrected on one node, a few times in a row."""
    r = d.r
    node = d.pick(d.midplane().compute)
    msg = d.tx["icache"] if r.random() < 0.85 else "data cache search parity error detected. attempting to correct"
    t = t0
    for _ in range(d.ri(1, 5)):
        d.add(t, node, K_INFO, msg)
        t += r.expovariate(1 / 150)


def _ep_network(d: _Day, t0: float) -> None:
    """Corrected torus / tree / L3 errors on a node or two."""
    r = d.r
    mp = d.midplane()
    for node in d.nodes_of(mp, d.ri(1, 2)):
        t = t0 + r.random() * 60
        u = r.random()
        if u < 0.25:
            dirn = d.pick(_TORUS_DIRS)
            dcr = {"x+": "02ec", "x-": "02ed", "y+": "02ee", "y-": "02ef", "z+": "02f0", "z-": "02f1"}[dirn]
            msg = f"{d.ri(1, 20)} torus receiver {dirn} input pipe error(s) (dcr 0x{dcr}) detected and corrected"
            d.add(t, node, K_INFO, msg)
        elif u < 0.35:
            d.add(t, node, K_INFO, (
                f"{d.ri(1, 30)} torus sender {d.pick(_TORUS_DIRS)} retransmission error(s) (dcr 0x02f7)"
                f" detected and corrected over {d.ri(100, 9000)} seconds"
            ))  # fmt: skip
        elif u < 0.60:
            dcr = d.pick(("019a", "0185", "018f"))
            msg = f"{d.ri(1, 20)} tree receiver {d.ri(0, 2)} in re-synch state event(s) (dcr 0x{dcr}) detected"
            if r.random() < 0.3:
                msg += f" over {d.ri(100, 9000)} seconds"
            d.add(t, node, K_INFO, msg)
        elif u < 0.80:
            msg = f"{d.ri(1, 40)} L3 EDRAM error(s) (dcr 0x0157) detected and corrected"
            if r.random() < 0.3:
                msg += f" over {d.ri(60, 9000)} seconds"
            d.add(t, node, K_INFO, msg)
        else:
            wire = d.pick(("torus y+", "torus z-", "torus z+", "tree C1", "torus x-"))
            unit = f"(unit=0x0b bit=0x{d.ri(0, 31):02x})"
            if r.random() < 0.5:
                d.add(t, node, K_INFO, f"critical input interrupt {unit}: warning for {wire} wire")
            else:
                msg = f"critical input interrupt {unit}: warning for {wire} wire, {_SUPPRESSING}"
                d.add(t, node, K_INFO, msg)
                if r.random() < 0.5:
                    d.add(t + 0.001, node, K_INFO, _SUPPRESSING)


def _ep_program_crash(d: _Day, t0: float) -> None:
    """A user program faults on some nodes of its partition: register dumps (FATAL, label ``-``), cores."""
    r = d.r
    mp = d.midplane()
    nodes = d.nodes_of(mp, max(1, int(r.lognormvariate(1.2, 0.9))))
    iar = f"{r.getrandbits(14) << 2:08x}"
    head = K_FATAL if r.random() < 0.85 else K_INFO
    core = d.tx["core"]
    for node in nodes:
        t = t0 + r.random() * 240
        if r.random() < 0.1:
            d.add(t - 0.01, node, K_INFO, "program interrupt")
        t = _dump(d, node, t, d.ri(1, 6), head, iar)
        if r.random() < 0.5:
            d.add(t + r.random() * 5, node, K_INFO, core.format(d.ri(0, 16383)))


def _ep_app_user_error(d: _Day, t0: float) -> None:
    """A job cannot start: ciod on its I/O nodes reports the user's mistake (APP FATAL, label ``-``)."""
    r = d.r
    mp = d.midplane()
    u = r.random()
    if u < 0.5:
        reason = d.pick(
            ("No such file or directory", "No such file or directory", "Permission denied", "Exec format error")
        )
        msg = f"ciod: Error loading {d.fill(d.pick(_PROGRAMS))}: invalid or missing program image, {reason}"
    elif u < 0.8:
        msg = f"ciod: LOGIN chdir({d.fill(d.pick(_WORK_DIRS))}) failed: No such file or directory"
    elif u < 0.92:
        reason = d.pick(("Permission denied", "Bad file descriptor", "Block device required"))
        msg = f"ciod: Error creating node map from file {d.fill(d.pick(_MAP_FILES))}: {reason}"
    else:
        size = d.ri(270_000_000, 400_000_000)
        msg = f"ciod: Error loading {d.fill(d.pick(_PROGRAMS))}: program image too big, {size} > 266076160"
    for io in r.sample(mp.io, d.ri(1, len(mp.io))):
        d.add(t0 + r.random() * 3, io, APP_FATAL, msg)


def _ep_ciod_chatter(d: _Day, t0: float) -> None:
    """ciod's INFO chatter on an I/O node (debuggers, node maps, unrecognized messages, NFS retries)."""
    r = d.r
    mp = d.midplane()
    io = d.pick(mp.io)
    u = r.random()
    if u < 0.22:
        d.add(t0, io, K_INFO, f"ciod: Message code {d.pick(('0', '2'))} is not {d.pick(('51', '3'))} or 4294967295")
    elif u < 0.34:
        d.add(t0, io, K_INFO, "ciod: pollControlDescriptors: Detected the debugger died.")
    elif u < 0.42:
        d.add(t0, io, K_INFO, f"ciod: cpu 0 at treeaddr {d.ri(10, 1023)} sent unrecognized message 0xffffffff")
    elif u < 0.52:
        src = d.pick(mp.compute)
        src = src[:8] + src[8].lower() + src[9:]  # ciod prints the node card in lower case
        d.add(t0, io, K_INFO, (
            f"ciod: In packet from node {d.ri(0, 1023)}.{d.ri(0, 1)} ({src}), message code 2 is not 3 or"
            f" 4294967295 (softheader={d.h8()} 00030000 0000000{d.ri(0, 3)} 00000000)"
        ))  # fmt: skip
    elif u < 0.62:
        where = f"line {d.ri(1, 40)} of node map file {d.fill(d.pick(_MAP_FILES))}"
        d.add(t0, io, K_INFO, f"ciod: Missing or invalid fields on {where}")
    elif u < 0.68:
        line = d.ri(2, 900)
        d.add(t0, io, K_INFO, (
            f"ciod: duplicate canonical-rank {d.ri(0, 1023)} to logical-rank {d.ri(0, 3)} mapping at line"
            f" {line} of node map file {d.fill(d.pick(_MAP_FILES))}"
        ))  # fmt: skip
    elif u < 0.72:
        dim = d.pick(("8", "16", "32"))
        d.add(t0, io, K_INFO, (
            f"ciod: {d.pick(('X', 'Y', 'Z'))} coordinate {dim} exceeds physical dimension {dim} at line"
            f" {int(dim) + 1} of node map file {d.fill(d.pick(_MAP_FILES))}"
        ))  # fmt: skip
    elif u < 0.86:
        for i in range(d.ri(1, 4)):
            d.add(t0 + i * r.uniform(0.5, 30), io, K_INFO, _DCR_TIMEOUT)
    elif u < 0.96:  # an NFS mount that succeeds after a retry or two (not an alert)
        for i in range(d.ri(1, 2)):
            d.add(t0 + 15 * i, io, K_INFO, _nfs_retry(d, io, i + 1))
    else:
        d.add(t0, io, K_INFO, "shutdown complete")


def _ep_mmcs(d: _Day, t0: float) -> None:
    """The control system: idoproxydb assert bursts (ERROR) or service restarts (INFO), node NULL."""
    r = d.r
    if r.random() < 0.8:
        t = t0
        for _ in range(max(1, int(r.lognormvariate(2.0, 0.7)))):
            d.add(t, NULL_NODE, MMCS_ERROR, _ASSERT)
            t += r.expovariate(1 / 25)
    else:
        d.add(t0, NULL_NODE, MMCS_INFO, "ciodb has been restarted.")
        d.add(t0 + r.random() * 10, NULL_NODE, MMCS_INFO, (
            "idoproxydb has been started: $Name: DRV142_2005 $ Input parameters: -enableflush -loguserinfo"
            " db.properties BlueGene1"
        ))  # fmt: skip
        d.add(t0 + 10 + r.random() * 10, NULL_NODE, MMCS_INFO, (
            "mmcs_db_server has been started: ./mmcs_db_server --useDatabase BGL --dbproperties"
            " serverdb.properties --iolog /bgl/BlueLight/logs/BGL --reconnect-blocks all"
        ))  # fmt: skip


def _ep_discovery(d: _Day, t0: float) -> None:
    """Hardware discovery on the service network: iDo chips, node-card status, VPD checks (type NULL)."""
    r = d.r
    mp = d.midplane()
    card = d.pick(mp.node_cards)
    u = r.random()
    if u < 0.22:
        d.add(t0, UNKNOWN, DISC_INFO, f"Ido chip status changed: {_ido_chip(d)} status=M {d.local_clock(t0)}")
    elif u < 0.34:
        d.add(t0, UNKNOWN, DISC_INFO, f"New ido chip inserted into the database: {_ido_chip(d)}")
    elif u < 0.50:
        found = "0000000000000000000000000000" if r.random() < 0.4 else _ecid(d)
        d.add(t0, card, DISC_INFO, (
            f"Node card VPD check: {d.pick(('U01', 'U11'))} node in processor card slot J{d.ri(2, 18):02d}"
            f" do not match. VPD ecid {_ecid(d)}, found {found}"
        ))  # fmt: skip
    elif u < 0.64:
        d.add(t0, card, DISC_WARN, "Node card is not fully functional")
    elif u < 0.76:
        d.add(t0, d.pick((card, UNKNOWN)), DISC_SEVERE, "Can not get assembly information for node card")
    elif u < 0.86:
        d.add(t0, card, DISC_ERROR, _NODE_CARD_STATUS_BAD if r.random() < 0.8 else _NODE_CARD_STATUS_ALERT)
    elif u < 0.93:
        lp = _lp_address(r)
        d.add(t0, UNKNOWN, DISC_WARN, (
            f"Problem communicating with service card, ido chip: {lp}. java.lang.IllegalStateException: IDo is"
            " not in functional state -- currently in state COMMUNICATION_ERROR"
        ))  # fmt: skip
    else:
        found = d.ri(8, 9)
        slots = " ".join(f"J{300 + i}" for i in range(found + 1) if i != 5)
        d.add(t0, card[:6], DISC_SEVERE, f"Expected 10 active FanModules, but found {found} ( Found {slots} ).")


def _ep_service_action(d: _Day, t0: float) -> None:
    """A node card taken out for service and brought back (HARDWARE WARNING/SEVERE, type NULL)."""
    r = d.r
    mp = d.midplane()
    card = d.pick(mp.node_cards)
    lp, ip = d.m.ido[card]
    action = d.ri(100, 999)
    serial = "203231503833343000000000594c31304b" + "".join(f"{ord(c):02x}" for c in f"{d.ri(3400000, 3499999)}X")
    spelled = "NodeCard" if r.random() < 0.6 else "Node card"
    d.add(t0, card, HW_WARN, (
        f"PrepareForService is being done on this part (mLctn({card}), mCardSernum({serial}), mLp({lp}),"
        f" mIp({ip}), mType(4)) by root"
    ))  # fmt: skip
    d.add(t0 + r.random() * 20, card, HW_WARN, (
        f"PrepareForService shutting down {spelled}(mLctn({card}), mCardSernum({serial}), mLp({lp}), mIp({ip}),"
        f" mType(4)) as part of Service Action {action}"
    ))  # fmt: skip
    t = t0 + r.uniform(600, 3600)
    if r.random() < 0.5:
        d.add(t - r.random() * 300, card, HW_SEVERE, d.pick((
            "NodeCard is not fully functional",
            f"NodeCard power module U{d.ri(50, 79):02d} is not accessible",
            f"NodeCard temperature sensor chip U{d.ri(1, 9):02d} is not accessible",
        )))  # fmt: skip
    msg = f"EndServiceAction is restarting the NodeCards in midplane {mp.name} as part of Service Action {action}"
    d.add(t, UNKNOWN, HW_WARN, msg)
    d.add(t + r.random() * 60, card, HW_WARN, f"EndServiceAction {action} performed upon {card} by root")


def _ep_linkcard(d: _Day, t0: float) -> None:
    """Link cards: bit sparing (LINKCARD INFO) and environmental monitor lines that are not alerts."""
    r = d.r
    mp = d.midplane()
    lc = d.pick(mp.link_cards)
    u = r.random()
    if u < 0.6:
        for i in range(d.ri(1, 3)):
            d.add(t0 + i * r.uniform(1, 120), lc, LINK_INFO, _bit_sparing(d, lc))
    elif u < 0.85:
        d.add(t0, lc[:9], MON_FAILURE, d.pick((
            "Temperature Over Limit on link card",
            "Local PGOOD error latched on link card",
            "Link PGOOD error latched on link card",
        )))  # fmt: skip
    else:
        d.add(t0, lc[:9], MON_SEVERE, "Hardware monitor caught java.net.SocketException: Broken pipe and is stopping")


def _ep_node_warning(d: _Day, t0: float) -> None:
    """A compute node's service connection hiccups (DISCOVERY WARNING) with a correctable error or two:
    the same signs that often precede a failure, here without one."""
    r = d.r
    node = d.pick(d.midplane().compute)
    d.add(t0, node, DISC_WARN, _comm_warning(d, _node_lp(d, node)))
    for _ in range(d.ri(0, 2)):
        d.add(t0 + r.uniform(-1200, 1200), node, K_INFO, _correctable(d))


EpisodeFn = Callable[[_Day, float], None]

# (episode, weight): weights are per episode, tuned so the template mix resembles the real sample
NORMAL_EPISODES: tuple[tuple[EpisodeFn, float], ...] = (
    (_ep_core_dumps, 0.12),
    (_ep_job_stats, 0.10),
    (_ep_alignment, 0.09),
    (_ep_memory, 0.10),
    (_ep_cache, 0.06),
    (_ep_network, 0.07),
    (_ep_program_crash, 0.03),
    (_ep_app_user_error, 0.06),
    (_ep_ciod_chatter, 0.10),
    (_ep_mmcs, 0.02),
    (_ep_discovery, 0.07),
    (_ep_service_action, 0.015),
    (_ep_linkcard, 0.04),
    (_ep_node_warning, 0.04),
)


# --------------------------------------------------------------------------------------------------
# Incidents (alert bursts)
# --------------------------------------------------------------------------------------------------


def _precursors(d: _Day, node: str, t_alert: float, p_info: float = 0.5, p_warn: float = 0.35) -> None:
    """Signs on ``node`` in the minutes before a failure: correctable errors, a DISCOVERY WARNING."""
    r = d.r
    if r.random() < p_info:
        for _ in range(d.ri(1, 3)):
            d.add(t_alert - r.uniform(20, 2400), node, K_INFO, _correctable(d))
    if r.random() < p_warn:
        d.add(t_alert - r.uniform(5, 1800), node, DISC_WARN, _comm_warning(d, _node_lp(d, node)))


def _storm(d: _Day, t0: float, label: str, text: str) -> None:
    """One node (sometimes a few on the same node card) repeats a fatal TLB error for up to hours."""
    r = d.r
    mp = d.midplane()
    first = d.pick(mp.compute)
    nodes = [first]
    if r.random() < 0.25:
        nodes += [n for n in mp.compute if n[:9] == first[:9] and n != first][: d.ri(1, 2)]
    duration = min(6 * 3600.0, r.lognormvariate(math.log(2400), 0.9))
    t0 = max(0.0, min(t0, DAY_SECONDS - duration - 1))
    gap = r.uniform(60, 480)
    for node in nodes:
        _precursors(d, node, t0)
        t = t0 + r.random() * 60
        while True:
            d.add(t, node, K_FATAL, text, label)
            if r.random() < 0.12:
                _dump(d, node, t + 0.01, d.ri(1, 4))
            t += r.expovariate(1 / gap)
            if t >= t0 + duration:
                break


def _inc_dtlb(d: _Day, t0: float) -> None:
    _storm(d, t0, "KERNDTLB", "data TLB error interrupt")


def _inc_itlb(d: _Day, t0: float) -> None:
    _storm(d, t0, "KERNTLBE", "instruction TLB error interrupt")


def _inc_storage(d: _Day, t0: float) -> None:
    """A job's nodes hit data storage interrupts; other nodes of the job only dump registers (label ``-``)."""
    r = d.r
    mp = d.midplane()
    k_alert = d.ri(1, 8)
    nodes = d.nodes_of(mp, k_alert + d.ri(0, 8))
    iar = d.pick(("00004ed8", f"{r.getrandbits(14) << 2:08x}"))
    t0 = min(t0, DAY_SECONDS - 1800)
    for i, node in enumerate(nodes):
        t = t0 + r.random() * 900
        if i < k_alert:
            _precursors(d, node, t, p_info=0.35, p_warn=0.3)
            d.add(t, node, K_FATAL, "data storage interrupt", "KERNSTOR")
            if r.random() < 0.3:
                _dump(d, node, t + 0.01, d.ri(1, 5), iar=iar)
        else:
            _dump(d, node, t, d.ri(1, 4), iar=iar)
        if r.random() < 0.4:
            d.add(t + r.uniform(10, 120), node, K_INFO, d.tx["core"].format(d.ri(0, 16383)))


def _inc_ciod_stream(d: _Day, t0: float) -> None:
    """ciod loses the control stream to the service node on the I/O nodes of a job."""
    r = d.r
    mp = d.midplane()
    kind = r.random()
    t0 = min(t0, DAY_SECONDS - 600)
    for io in r.sample(mp.io, d.ri(1, 4)):
        t = t0 + r.random() * 120
        stream = f"CioStream socket to {SERVICE_NODE_IP}:{d.ri(32768, 61000)}"
        if r.random() < 0.5:
            d.add(t - r.uniform(5, 1500), io, K_INFO, d.pick((
                "ciod: Message code 0 is not 51 or 4294967295",
                "ciod: pollControlDescriptors: Detected the debugger died.",
                _DCR_TIMEOUT,
            )))  # fmt: skip
        if r.random() < 0.25:
            d.add(t - r.uniform(5, 1800), io, DISC_WARN, _comm_warning(d, _node_lp(d, io)))
        if kind < 0.55:
            label = "APPSEV"
            if r.random() < 0.5:
                msg = f"ciod: Error reading message prefix after LOAD_MESSAGE on {stream}: Link has been severed"
            else:
                msg = f"ciod: Error reading message prefix on {stream}, Link has been severed"
        elif kind < 0.72:
            label = "APPREAD"
            msg = f"ciod: failed to read message prefix on control stream ({stream}"
        elif kind < 0.88:
            label = "APPRES"
            msg = f"ciod: Error reading message prefix on {stream}, Connection reset by peer"
        else:
            label = "APPTO"
            msg = f"ciod: Error reading message prefix on {stream}, Connection timed out"
        d.add(t, io, APP_FATAL, msg, label)


def _inc_lustre(d: _Day, t0: float) -> None:
    """I/O nodes boot: NFS mounts keep failing, then the Lustre mount fails."""
    r = d.r
    mp = d.midplane()
    t0 = min(t0, DAY_SECONDS - 600)
    for io in r.sample(mp.io, d.ri(1, 3)):
        t = t0 + r.random() * 90
        if r.random() < 0.7:
            for i in range(d.ri(1, 3)):
                d.add(t, io, K_INFO, _nfs_retry(d, io, i + 1))
                t += 15 + r.random()
        where = "point /p/gb1" if r.random() < 0.8 else "block_id : location"
        d.add(t, io, K_FATAL, f"Lustre mount FAILED : bglio{d.m.bglio[io]} : {where}", "KERNMNTF")


def _inc_tree(d: _Day, t0: float) -> None:
    """The collective (tree) network of a midplane goes bad: re-synch events, then rts terminations and
    bad packet headers on several nodes."""
    r = d.r
    mp = d.midplane()
    nodes = d.nodes_of(mp, d.ri(1, 5))
    t0 = min(t0, DAY_SECONDS - 600)
    for node in nodes:
        t = t0 + r.random() * 60
        if r.random() < 0.5:
            d.add(t - r.uniform(30, 1800), node, K_INFO, (
                f"{d.ri(1, 20)} tree receiver {d.ri(0, 2)} in re-synch state event(s) (dcr 0x019a) detected"
            ))  # fmt: skip
        elif r.random() < 0.3:
            d.add(t - r.uniform(5, 1800), node, DISC_WARN, _comm_warning(d, _node_lp(d, node)))
        if r.random() < 0.15:  # a neighbour that only complains (label -)
            d.add(t, node, K_FATAL, (
                f"rts: bad message header: expecting type 57 instead of type 3 (softheader={d.h8()}"
                f" {r.getrandbits(16):04x}0003 00000002 00000000) PSR0=00001f01 PSR1=00000000 PRXF=00000002"
                " PIXF=00000007"
            ))  # fmt: skip
            continue
        if r.random() < 0.5:
            reason = d.pick(("1004", "1004", "1003", "1001"))
            msg = f"rts: kernel terminated for reason {reason}"
            if reason == "1001" and r.random() < 0.7:
                msg += (
                    f"rts: bad message header: invalid cpu, type={d.ri(0, 65535)}, cpu={d.ri(0, 255)},"
                    f" index={r.getrandbits(31)}, total={d.ri(1, 9_999_999)}"
                )
            d.add(t, node, K_FATAL, msg, "KERNTERM")
        else:
            psr = d.pick(("00001f01", "20021f01"))
            d.add(t, node, K_FATAL, (
                f"Error receiving packet on tree network, expecting type 57 instead of type 3 (softheader={d.h8()}"
                f" {r.getrandbits(16):04x}0003 00000002 00000000) PSR0={psr} PSR1=00000000 PRXF=00000002"
                " PIXF=00000007"
            ), "KERNREC")  # fmt: skip


def _inc_rts_panic(d: _Day, t0: float) -> None:
    """The runtime fails link training or hits an internal error and panics."""
    r = d.r
    mp = d.midplane()
    t0 = min(t0, DAY_SECONDS - 120)
    for node in d.nodes_of(mp, d.ri(1, 3)):
        t = t0 + r.random() * 30
        if r.random() < 0.5:
            d.add(t - 0.5, node, K_FATAL, "rts internal error")
        else:
            msg = "rts tree/torus link training failed: wanted: B C X+ X- Y+ Y- Z+ Z- got: B C X- Y- Z+ Z-"
            d.add(t - 0.5, node, K_FATAL, msg)
        d.add(t, node, K_FATAL, "rts panic! - stopping execution", "KERNRTSP")


def _inc_app_misc(d: _Day, t0: float) -> None:
    """Rare application failures on one I/O node (node map creation, LOGIN I/O error)."""
    r = d.r
    io = d.pick(d.midplane().io)
    if r.random() < 0.5:
        msg = f"ciod: Error creating node map from file {d.fill(d.pick(_MAP_FILES))}: No child processes"
        label = "APPCHILD"
    else:
        msg = f"ciod: LOGIN chdir({d.fill(d.pick(_WORK_DIRS))}) failed: Input/output error"
        label = "APPOUT"
    _precursors(d, io, t0, p_info=0.0, p_warn=0.3)
    d.add(t0, io, APP_FATAL, msg, label)


# ----- new alert kinds after the drift


def _inc_machine_check(d: _Day, t0: float) -> None:
    """Correctable DDR errors pile up on a node until an uncorrectable machine check."""
    r = d.r
    node = d.pick(d.midplane().compute)
    t0 = max(3600.0, min(t0, DAY_SECONDS - 60))
    sym = d.ri(0, 35)
    t = t0 - r.uniform(300, 2400)
    for _ in range(d.ri(2, 6)):
        d.add(t, node, K_INFO, _ce_line(d))
        t += r.uniform(10, 200)
    if r.random() < 0.5:
        d.add(t, node, K_INFO, f"ddr: activating redundant bit steering: rank=0 symbol={sym}")
    if r.random() < 0.5:
        d.add(t0 - r.uniform(5, 600), node, DISC_WARN, _comm_warning(d, _node_lp(d, node)))
    if r.random() < 0.5:
        bit = d.pick(("1d", "10", "06"))
        d.add(t0, node, K_FATAL, f"machine check interrupt (bit=0x{bit}): L2 dcache unit data parity error", "KERNMC")
    else:
        d.add(t0, node, K_FATAL, f"DDR machine check register: 0x{d.h8()} 0x{d.h8()}", "KERNMC")
    _dump(d, node, t0 + 0.01, d.ri(1, 4))


def _inc_link(d: _Day, t0: float) -> None:
    """A link card loses a port: bit sparing first, then training / alignment failures."""
    r = d.r
    lc = d.pick(d.midplane().link_cards)
    t0 = max(0.0, min(t0, DAY_SECONDS - 300))
    for _ in range(d.ri(0, 3)):
        d.add(t0 - r.uniform(10, 1800), lc, LINK_INFO, _bit_sparing(d, lc))
    if r.random() < 0.4:
        lp = d.m.ido[lc][0]
        d.add(t0 - r.uniform(5, 900), lc, DISC_WARN, (
            f"Problem communicating with link card iDo machine with LP of {lp}, caught java.lang.IllegalStateException:"
            " while executing I2C Operation caught java.net.SocketException: Broken pipe"
        ))  # fmt: skip
    for i in range(d.ri(1, 3)):
        u = r.random()
        if u < 0.4:
            msg, label = f"MidplaneSwitchController::sendTrain() port disconnected: {lc}", "LINKDISC"
        elif u < 0.7:
            msg = f"MidplaneSwitchController::receiveTrain() iap failed: {lc}, status={d.h8()} {d.h8()}"
            label = "LINKIAP"
        else:
            msg = f"MidplaneSwitchController::parityAlignment() pap failed: {lc}, status={d.h8()} {d.h8()}"
            label = "LINKPAP"
        d.add(t0 + i * r.uniform(1, 60), lc, LINK_FATAL, msg, label)


def _inc_monitor(d: _Day, t0: float) -> None:
    """The environmental monitor of a node card gives up."""
    r = d.r
    card = d.pick(d.midplane().node_cards)
    module = d.ri(50, 79)
    t0 = max(0.0, min(t0, DAY_SECONDS - 60))
    if r.random() < 0.6:
        d.add(t0 - r.uniform(5, 1200), card, HW_SEVERE, f"NodeCard power module U{module} is not accessible")
    if r.random() < 0.3:
        d.add(t0 - r.uniform(5, 1200), card, DISC_WARN, "Node card is not fully functional")
    if r.random() < 0.6:
        msg = (
            f"monitor caught java.lang.UnsupportedOperationException: power module U{module} not present"
            " and is stopping"
        )
        d.add(t0, card, MON_FAILURE, msg, "MONPOW")
    else:
        d.add(t0, card, MON_FAILURE, (
            "monitor caught java.lang.IllegalStateException: while executing CONTROL Operation caught"
            " java.io.EOFException and is stopping"
        ), "MONILL")  # fmt: skip


def _inc_kernel_panic(d: _Day, t0: float) -> None:
    r = d.r
    node = d.pick(d.midplane().compute)
    t0 = max(0.0, min(t0, DAY_SECONDS - 60))
    _precursors(d, node, t0, p_info=0.4, p_warn=0.4)
    t = _dump(d, node, t0, d.ri(2, 6))
    d.add(t + r.random(), node, K_FATAL, "kernel panic", "KERNPAN")


V1_INCIDENTS: tuple[tuple[EpisodeFn, float], ...] = (
    (_inc_dtlb, 0.20),
    (_inc_storage, 0.22),
    (_inc_ciod_stream, 0.25),
    (_inc_lustre, 0.11),
    (_inc_tree, 0.12),
    (_inc_rts_panic, 0.05),
    (_inc_app_misc, 0.05),
)
V2_INCIDENTS: tuple[tuple[EpisodeFn, float], ...] = (
    (_inc_dtlb, 0.07),
    (_inc_storage, 0.10),
    (_inc_ciod_stream, 0.12),
    (_inc_lustre, 0.05),
    (_inc_tree, 0.06),
    (_inc_rts_panic, 0.02),
    (_inc_app_misc, 0.02),
    (_inc_itlb, 0.14),
    (_inc_machine_check, 0.14),
    (_inc_link, 0.12),
    (_inc_monitor, 0.08),
    (_inc_kernel_panic, 0.08),
)


# --------------------------------------------------------------------------------------------------
# One day
# --------------------------------------------------------------------------------------------------


class _Picker:
    def __init__(self, table: Sequence[tuple[EpisodeFn, float]]) -> None:
        self.fns = [fn for fn, _ in table]
        self.cum = list(itertools.accumulate(w for _, w in table))

    def __call__(self, rng: random.Random) -> EpisodeFn:
        i = bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.fns[min(i, len(self.fns) - 1)]


_NORMAL = _Picker(NORMAL_EPISODES)
_V1_PICK = _Picker(V1_INCIDENTS)
_V2_PICK = _Picker(V2_INCIDENTS)


def day_rng(seed: int, index: int) -> random.Random:
    """The RNG of day ``index``: depends on ``(seed, index)`` only."""
    return random.Random(derive_seed("bgl", seed, "day", index))


def _build_day(scenario: BglScenario, index: int, rng: random.Random) -> _Day:
    """Normal episodes until the volume is reached; after each, incidents until the anomalous share of
    (node, hour) windows is back at ``anomaly_rate`` (within half a window, so tiny days may get none)."""
    drifted = scenario.is_drifted(index)
    d = _Day(rng, machine(scenario.seed, scenario.nodes), drifted, _dt.date.fromisoformat(scenario.day(index)))
    incidents = _V2_PICK if drifted else _V1_PICK
    rate = scenario.anomaly_rate
    target = scenario.lines_per_day
    stalled = 0
    while len(d.us) < target:
        _NORMAL(rng)(d, d.when())
        while rate > 0 and len(d.anomalous) + 0.5 < rate * len(d.windows) and stalled < 100:
            before = len(d.anomalous)
            incidents(rng)(d, d.when())
            stalled = 0 if len(d.anomalous) > before else stalled + 1
    return d


def _epoch0(day: str) -> int:
    date = _dt.date.fromisoformat(day)
    return int(_dt.datetime(date.year, date.month, date.day, tzinfo=_dt.timezone.utc).timestamp())


def _render(d: _Day, day: str, iso_window: tuple[int, int] | None = None) -> tuple[list[str], int]:
    """Format the day's lines in time order. Lines inside ``iso_window`` (seconds) get an ISO time field
    (corrupt day). Returns the lines and how many were written in the ISO format."""
    epoch0 = _epoch0(day)
    dot = day.replace("-", ".")
    us, labels, nodes, heads, msgs = d.us, d.labels, d.nodes, d.heads, d.msgs
    order = sorted(range(len(us)), key=us.__getitem__)  # stable: ties keep emission order
    clock: dict[int, str] = {}  # second -> "<epoch> <date> " ... cached per second
    hms: dict[int, str] = {}
    out: list[str] = []
    append = out.append
    lo, hi = iso_window if iso_window is not None else (-1, -1)
    iso = 0
    for i in order:
        s, frac = divmod(us[i], 1_000_000)
        node = nodes[i]
        if lo <= s < hi:
            iso += 1
            append(
                f"{labels[i]} {epoch0 + s} {day} {node} {day}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}."
                f"{frac // 1000:03d}Z {node} {heads[i]} {msgs[i]}"
            )
            continue
        e = clock.get(s)
        if e is None:
            e = clock[s] = f"{epoch0 + s} {dot} "
            hms[s] = f"{day}-{s // 3600:02d}.{s // 60 % 60:02d}.{s % 60:02d}."
        append(f"{labels[i]} {e}{node} {hms[s]}{frac:06d} {node} {heads[i]} {msgs[i]}")
    return out, iso


# ----- corruption

_GARBAGE = (
    "\tat com.ibm.bluegene.ido.DirectIDo.sendOp(DirectIDo.java:{n})",
    "\tat com.ibm.bluegene.mmcs.IdoProxy.run(IdoProxy.java:{n})",
    "java.lang.IllegalStateException: IDo is not in functional state",
    "*** glibc detected *** mmcs_server: corrupted double-linked list: 0x0{n}a4d8 ***",
    "",
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    "#%&*!{n}@@@ ###### ~~~~",
    "RAS KERNEL INFO",
    "- {n}",
    "Broadcast message from root (pts/{n}): the system is going down for maintenance",
)


def _garbage_line(rng: random.Random) -> str:
    return rng.choice(_GARBAGE).format(n=rng.randrange(100, 3000))


def _corrupt(lines: list[str], rng: random.Random, iso_lines: int) -> tuple[list[str], int]:
    """Truncate and wrap some lines, splice non-UTF-8 bytes into others, insert garbage lines and cut the
    last line (the file then ends without a newline). Returns the lines and the corrupted-line count,
    counting the ``iso_lines`` already reformatted by the caller."""
    n = len(lines)
    if n == 0:
        return [_garbage_line(rng) or "?"], 1
    candidates = list(range(n - 1))
    n_trunc = max(1, round(n * TRUNCATED_RATE))
    n_wrap = max(1, round(n * WRAPPED_RATE))
    n_bytes = max(3, round(n * NON_UTF8_RATE))
    picked = rng.sample(candidates, min(len(candidates), n_trunc + n_wrap + n_bytes))
    wrapped: dict[int, str] = {}
    for j, i in enumerate(picked):
        line = lines[i]
        if j < n_trunc:  # the writer lost the rest of the line
            lines[i] = line[: rng.randrange(1, max(2, len(line) * 2 // 3))]
        elif j < n_trunc + n_wrap:  # a long message broken over two lines (as in the real log)
            cut = rng.randrange(max(1, len(line) // 2), max(2, len(line) - 1))
            lines[i], wrapped[i] = line[:cut], line[cut:]
        else:
            lines[i] = line + rng.choice((" \udce9t\udce9", " \udcff\udcfe", " caf\udce9 \udcc3("))
    last = lines[-1]
    lines[-1] = last[: rng.randrange(1, len(last))] if len(last) > 1 else last  # died mid-line
    n_garbage = max(1, round(n * GARBAGE_RATE))
    garbage_at: dict[int, list[str]] = {}
    for _ in range(n_garbage):  # before line i: never after the last line
        garbage_at.setdefault(rng.randrange(n), []).append(_garbage_line(rng))
    out: list[str] = []
    for i, line in enumerate(lines):
        out.extend(garbage_at.get(i, ()))
        out.append(line)
        if i in wrapped:
            out.append(wrapped[i])
    return out, iso_lines + len(picked) + len(wrapped) + n_garbage + 1


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def render_day(scenario: BglScenario, index: int) -> RenderedDay:
    """Generate day ``index`` of ``scenario`` in memory (pure: no I/O). ``labels`` is empty: BGL lines
    carry their label. The summary's ``blocks`` / ``anomalies`` count (node, hour) windows / windows
    with an alert line (before corruption)."""
    if not 0 <= index < scenario.days:
        raise ValueError(f"day index {index} outside 0..{scenario.days - 1}")
    day = scenario.day(index)
    rng = day_rng(scenario.seed, index)
    d = _build_day(scenario, index, rng)
    corrupt = scenario.is_corrupt(index)
    iso_window = None
    if corrupt:
        lo = rng.randrange(2 * 3600, DAY_SECONDS - ISO_WINDOW_SECONDS - 2 * 3600)
        iso_window = (lo, lo + ISO_WINDOW_SECONDS)
    lines, iso_lines = _render(d, day, iso_window)
    corrupted = 0
    if corrupt:
        lines, corrupted = _corrupt(lines, rng, iso_lines)
    summary = DaySummary(
        day=day,
        index=index,
        lines=len(lines),
        blocks=len(d.windows),
        anomalies=len(d.anomalous),
        corrupted_lines=corrupted,
        drift=scenario.is_drifted(index),
    )
    return RenderedDay(summary=summary, lines=lines, trailing_newline=not corrupt, labels=[])


def write_day(root: Path, rendered: RenderedDay) -> Path:
    """Replace the day's raw partition with ``rendered``. Returns the log path."""
    raw_dir = Lake(Path(root)).raw_dir(SOURCE, rendered.summary.day)
    reset_dir(raw_dir)
    log_path = raw_dir / LOG_FILE_NAME
    write_lines(log_path, rendered.lines, rendered.trailing_newline)
    return log_path


def generate_day(root: Path, scenario: BglScenario, index: int) -> DaySummary:
    """Generate and write day ``index`` of ``scenario`` under the lake at ``root``."""
    rendered = render_day(scenario, index)
    write_day(root, rendered)
    return rendered.summary


def generate(root: Path, scenario: BglScenario) -> list[DaySummary]:
    """Generate and write every day of ``scenario``."""
    return [generate_day(root, scenario, i) for i in range(scenario.days)]


def describe(summary: DaySummary) -> str:
    """One line about a BGL day (``blocks`` are (node, hour) windows here)."""
    rate = summary.anomalies / summary.blocks if summary.blocks else 0.0
    return (
        f"{summary.day} day={summary.index} lines={summary.lines} windows={summary.blocks} "
        f"anomalous_windows={summary.anomalies} ({rate:.2%}) corrupted_lines={summary.corrupted_lines} "
        f"drift={'yes' if summary.drift else 'no'}"
    )


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nightshift_datagen.bgl", description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("data"), help="lake root (default: data)")
    p.add_argument("--start-day", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lines-per-day", type=int, default=20_000)
    p.add_argument("--nodes", type=int, default=1024, help="compute nodes in use (default: 1024)")
    p.add_argument("--anomaly-rate", type=float, default=0.05, help="share of (node, hour) windows with an alert")
    p.add_argument("--drift-day", type=int, default=None, help="day index from which the new firmware runs")
    p.add_argument("--corrupt-day", type=int, default=None, help="day index with corrupted input")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = BglScenario(
            start_day=args.start_day,
            days=args.days,
            seed=args.seed,
            lines_per_day=args.lines_per_day,
            nodes=args.nodes,
            anomaly_rate=args.anomaly_rate,
            drift_day=args.drift_day,
            corrupt_day=args.corrupt_day,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return generate_with_progress(args.root, scenario, generate_day, describe)


if __name__ == "__main__":
    raise SystemExit(main())
