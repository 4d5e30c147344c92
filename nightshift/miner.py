"""A batch template miner for distinct masked messages ("brain"), stronger than Drain.

Inspired by Brain (Siyu Yu et al., "Brain: Log Parsing with Bidirectional Parallel Tree",
IEEE Transactions on Services Computing 2023: longest common pattern + splitting by columns), with
these choices of ours (one parameter set for every source):

1. **Sub-tokens.** A message is split into sub-tokens: runs of whitespace (all one space), single
   delimiter characters ``= : , ( ) [ ] { } " ' ; | @ #`` and the runs between them. A sub-token
   is *variable-like* when it contains a digit or ``<*>`` (a mask) or is a month/weekday name.
2. **Shape.** Messages are grouped by their number of sub-tokens and where the spaces are.
3. **Longest common pattern.** Within a shape, each (position, sub-token) gets the number of
   messages holding it. A message's pattern is the set of its constant sub-tokens sharing the
   frequency most of them share (ties: the higher frequency); messages with the same pattern form
   a group.
4. **Split by columns.** Within a group, a column whose values are all constant and which has
   fewer than ``threshold`` distinct values splits the group (the column with fewest values
   first; the first column always splits, like Drain's first-token layer); a column with more
   values, or with a variable-like value, is a parameter.
5. **Merge.** Groups of the same whitespace-token count are merged when at every token position
   their templates are equal or one template's token (``<*>`` matching anything) matches the
   other, at least one position holds the same literal token and at least half the positions are
   equal. This joins ``synchronized to <*>, stratum <*>`` with ``synchronized to LOCAL(<*>), ...``
   and ``(<*>)`` with ``()`` (the ground truth's ``<*>`` matching an empty or longer value).

Templates are whitespace tokens in which ``<*>`` stands for any text inside a token (a whole-token
``<*>`` is Drain's wildcard). The miner sees only distinct masked messages and is deterministic.

Stable ids (the :class:`~nightshift.templates.TemplateStore` contract): :meth:`learn` clusters the
new messages together with every message learned before (so day 2 has day 1's context); a new
message whose group holds earlier messages joins the id most of them have, generalising its
template (the new template matches the old one), otherwise its group gets a new id. Ids are never
renumbered and templates only generalise.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

WILDCARD = "<*>"
STATE_FORMAT = "nightshift.miner.brain/1"
DEFAULT_PARAMETERS: dict[str, Any] = {"threshold": 4}

_DELIMITERS = r"=:,()\[\]{}\"';|@#"
_SUBTOKEN = re.compile(r"\s+|[%s]|[^\s%s]+" % (_DELIMITERS, _DELIMITERS))
_NAMES = frozenset("jan feb mar apr may jun jul aug sep oct nov dec mon tue wed thu fri sat sun".split())


def subtokens(message: str) -> list[str]:
    """The message's sub-tokens (runs of whitespace become one space)."""
    return [" " if t.isspace() else t for t in _SUBTOKEN.findall(message.strip())]


def variable_like(token: str) -> bool:
    return WILDCARD in token or any(c.isdigit() for c in token) or token.lower() in _NAMES


def token_regex(token: str) -> str:
    """Regex for one template token: ``<*>`` matches any run of non-space characters."""
    return "".join(r"\S*?" if p == WILDCARD else re.escape(p) for p in re.split(r"(<\*>)", token) if p)


def token_fits(template_token: str, token: str) -> bool:
    """True if ``token`` is an instance of ``template_token`` (``<*>`` matches any text)."""
    if template_token == token or template_token == WILDCARD:
        return True
    if WILDCARD not in template_token:
        return False
    return re.fullmatch(token_regex(template_token).replace(r"\S*?", ".*?"), token, re.S) is not None


def template_fits(template: str, message: str) -> bool:
    """Every whitespace token of ``message`` is an instance of the template's token."""
    t, m = template.split(), message.split()
    return len(t) == len(m) and all(token_fits(a, b) for a, b in zip(t, m))


def _collapse(text: str) -> str:
    while WILDCARD + WILDCARD in text:
        text = text.replace(WILDCARD + WILDCARD, WILDCARD)
    return text


def _shape_template(rows: Sequence[list[str]]) -> str:
    out = []
    for column in zip(*rows):
        first = column[0]
        out.append(first if not variable_like(first) and all(v == first for v in column) else WILDCARD)
    return _collapse("".join(out))


def template_of(messages: Iterable[str]) -> str:
    """The most specific template that every message fits (all must have the same token count)."""
    by_shape: dict[tuple, list[list[str]]] = defaultdict(list)
    for m in messages:
        toks = subtokens(m)
        by_shape[(len(toks), tuple(i for i, t in enumerate(toks) if t == " "))].append(toks)
    shape_templates = [_shape_template(rows) for _, rows in sorted(by_shape.items())]
    return _merge_token_wise(shape_templates)


def _merge_token_wise(templates: Sequence[str]) -> str:
    split = [t.split() for t in templates]
    out = []
    for column in zip(*split):
        first = column[0]
        if all(v == first for v in column):
            out.append(first)
        else:   # the most general token, if one matches all others; else <*>
            general = [v for v in column if all(token_fits(v, w) for w in column)]
            out.append(general[0] if general else WILDCARD)
    return " ".join(out)


def _compatible(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    same = literal = 0
    for x, y in zip(a, b):
        if x == y:
            same += 1
            literal += WILDCARD not in x
        elif WILDCARD not in x and WILDCARD not in y:
            return False
        elif not (token_fits(x, y) or token_fits(y, x)):
            return False
    return literal >= 1 and 2 * same >= len(a)


def cluster(messages: Sequence[str], threshold: int = 4) -> list[list[str]]:
    """Group distinct masked messages (steps 1-5 of the module docstring); deterministic."""
    messages = sorted(set(messages))
    toks = {m: subtokens(m) for m in messages}
    shapes: dict[tuple, list[str]] = defaultdict(list)
    for m in messages:
        shapes[(len(toks[m]), tuple(i for i, t in enumerate(toks[m]) if t == " "))].append(m)
    groups: list[list[str]] = []
    for shape in sorted(shapes):
        members = shapes[shape]
        length = shape[0]
        freq: Counter = Counter((i, t) for m in members for i, t in enumerate(toks[m]))
        roots: dict[tuple, list[str]] = defaultdict(list)
        for m in members:
            counts = Counter(freq[(i, t)] for i, t in enumerate(toks[m]) if t != " " and not variable_like(t))
            if not counts:
                roots[()].append(m)
                continue
            best = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
            roots[(best, tuple((i, t) for i, t in enumerate(toks[m])
                               if freq[(i, t)] == best and not variable_like(t)))].append(m)

        def split(ms: list[str]) -> list[list[str]]:
            best_col = None
            for i in range(length):
                values = {toks[m][i] for m in ms}
                if len(values) == 1 or any(variable_like(v) for v in values):
                    continue
                rank = 0 if i == 0 else len(values)
                if rank < threshold and (best_col is None or rank < best_col[0]):
                    best_col = (rank, i)
            if best_col is None:
                return [ms]
            parts: dict[str, list[str]] = defaultdict(list)
            for m in ms:
                parts[toks[m][best_col[1]]].append(m)
            return [g for key in sorted(parts) for g in split(parts[key])]

        for key in sorted(roots, key=repr):
            groups.extend(split(roots[key]))
    # 5. merge compatible groups (same whitespace-token count)
    templates = [template_of(g).split() for g in groups]
    parent = list(range(len(groups)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_count: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(templates):
        by_count[len(t)].append(i)
    for indices in by_count.values():
        for a_pos, a in enumerate(indices):
            for b in indices[:a_pos]:
                if find(a) != find(b) and _compatible(templates[a], templates[b]):
                    parent[find(a)] = find(b)
    merged: dict[int, list[str]] = defaultdict(list)
    for i, g in enumerate(groups):
        merged[find(i)].extend(g)
    return sorted((sorted(g) for g in merged.values()), key=lambda g: g[0])


class BrainMiner:
    """Batch miner with the interface :class:`~nightshift.templates.TemplateStore` uses."""

    kind = "brain"

    def __init__(self, threshold: int = DEFAULT_PARAMETERS["threshold"]) -> None:
        if not isinstance(threshold, int) or threshold < 2:
            raise ValueError(f"threshold must be an integer >= 2, got {threshold!r}")
        self._threshold = threshold
        self._templates: list[str] = []        # index i holds id i + 1
        self._sizes: list[int] = []
        self._ids: dict[str, int] = {}         # every learned message -> its id
        self._compiled: dict[int, list[tuple[int, re.Pattern[str], int]]] = defaultdict(list)

    def parameters(self) -> dict[str, Any]:
        return {"threshold": self._threshold}

    def __len__(self) -> int:
        return len(self._templates)

    def templates(self) -> dict[int, str]:
        return {i + 1: t for i, t in enumerate(self._templates)}

    def sizes(self) -> dict[int, int]:
        return {i + 1: s for i, s in enumerate(self._sizes)}

    # -- learning and matching ----------------------------------------------------------------

    def add(self, message: str) -> tuple[int, str]:
        """Learn one message (a batch of one)."""
        self.learn([message])
        tid = self._ids[message]
        return tid, self._templates[tid - 1]

    def learn(self, messages: Iterable[str]) -> None:
        """Learn new messages in one batch, with every earlier message as context."""
        new = sorted({m for m in messages if m not in self._ids})
        if not new:
            return
        fresh = set(new)
        for group in cluster([*self._ids, *new], self._threshold):
            incoming = [m for m in group if m in fresh]
            if not incoming:
                continue
            owners = Counter(self._ids[m] for m in group if m not in fresh)
            target = None
            for tid, _ in sorted(owners.items(), key=lambda kv: (-kv[1], kv[0])):
                old = self._templates[tid - 1]
                members = [m for m, i in self._ids.items() if i == tid]
                candidate = template_of([*members, *incoming])
                if len(candidate.split()) == len(old.split()) and template_fits(candidate, old) and all(
                        template_fits(candidate, m) for m in incoming):
                    target = tid
                    self._set_template(tid, candidate)
                    break
            if target is None:
                candidate = template_of(incoming)
                self._templates.append(candidate)
                self._sizes.append(0)
                target = len(self._templates)
                self._set_template(target, candidate)
            for m in incoming:
                self._ids[m] = target
                self._sizes[target - 1] += 1

    def _set_template(self, tid: int, template: str) -> None:
        self._templates[tid - 1] = template
        tokens = template.split()
        bucket = [entry for entry in self._compiled[len(tokens)] if entry[0] != tid]
        specificity = len(template.replace(WILDCARD, "").replace(" ", ""))
        pattern = re.compile(r"\s+".join(token_regex(t) for t in tokens) + r"\Z") if tokens else re.compile(r"\Z")
        bucket.append((tid, pattern, specificity))
        bucket.sort(key=lambda e: (-e[2], e[0]))
        self._compiled[len(tokens)] = bucket

    def match(self, message: str) -> tuple[int, str] | None:
        """The id of a learned message, or of the most specific template it fits (then the lowest
        id); None when no template fits. Never learns."""
        tid = self._ids.get(message)
        if tid is None:
            normal = " ".join(message.split())
            for candidate, pattern, _ in self._compiled.get(len(message.split()), ()):
                if pattern.match(normal):
                    tid = candidate
                    break
        return None if tid is None else (tid, self._templates[tid - 1])

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            **self.parameters(),
            "clusters": [{"id": i + 1, "template": t, "size": s}
                         for i, (t, s) in enumerate(zip(self._templates, self._sizes))],
            "learned": dict(sorted(self._ids.items())),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> BrainMiner:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported miner state format {state.get('format')!r}")
        miner = cls(threshold=int(state["threshold"]))
        for expected_id, record in enumerate(state["clusters"], start=1):
            if int(record["id"]) != expected_id:
                raise ValueError(f"cluster ids must run 1..n in order, got {record['id']}")
            miner._templates.append(str(record["template"]))
            miner._sizes.append(int(record["size"]))
            miner._set_template(expected_id, str(record["template"]))
        for message, tid in state.get("learned", {}).items():
            if not 1 <= int(tid) <= len(miner._templates):
                raise ValueError(f"learned message {message!r} has unknown id {tid}")
            miner._ids[str(message)] = int(tid)
        return miner
