"""Drain, an online log template miner with a fixed-depth prefix tree.

Pure-Python implementation of

    Pinjia He, Jieming Zhu, Zibin Zheng, Michael R. Lyu,
    "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017.

We implement it ourselves because drain3 0.9.11 pins ``cachetools==4.2.1`` and
``jsonpickle==1.5.1``, which break mlflow and airflow.

Messages arrive already masked (variables replaced with ``<*>``) and are tokenised on whitespace.
The tree follows the reference implementations (Loghub's ``logparser`` and drain3):

* the first layer below the root is keyed by the token count;
* then ``depth - 3`` layers keyed by the leading tokens (the paper counts depth from 0, so this is
  its "depth - 2"); a token containing a digit goes to the ``<*>`` child, and once a node has
  ``max_children`` children every further unseen token goes to ``<*>`` as well. The last token of a
  message is never used as a key, so short messages stop early;
* a leaf holds clusters. A message joins the most similar cluster of its leaf when the similarity
  (share of positions where the template's non-``<*>`` token equals the message's token, i.e.
  Drain's ``seqDist``) reaches ``similarity_threshold``; ties go to the template with more ``<*>``,
  then to the older cluster. Joining replaces every differing template token with ``<*>``.

Cluster ids are ints assigned from 1 in order of creation; a cluster keeps its id for ever, even
when its template generalises. Everything is deterministic: the same messages in the same order
give the same ids and templates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

WILDCARD = "<*>"
STATE_FORMAT = "nightshift.drain/1"


@dataclass
class _Cluster:
    """One log group: its id, template tokens, message count and its key path in the tree."""

    id: int
    tokens: list[str]
    size: int
    path: tuple[str, ...]

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


@dataclass
class _Node:
    """A tree node: token-keyed children, and the clusters stored here when it is a leaf."""

    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[_Cluster] = field(default_factory=list)


def _has_digit(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


def _fits(template: Sequence[str], tokens: Sequence[str]) -> bool:
    """True if every non-``<*>`` template token equals the message token at the same position."""
    return len(template) == len(tokens) and all(
        t == WILDCARD or t == m for t, m in zip(template, tokens)
    )


class TemplateMiner:
    """Drain template miner. See the module docstring for the algorithm."""

    def __init__(
        self, depth: int = 4, similarity_threshold: float = 0.5, max_children: int = 100
    ) -> None:
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        if not 0.0 <= similarity_threshold <= 1.0:
            raise ValueError(f"similarity_threshold must be in [0, 1], got {similarity_threshold}")
        if max_children < 1:
            raise ValueError(f"max_children must be >= 1, got {max_children}")
        self._depth = depth
        self._similarity_threshold = float(similarity_threshold)
        self._max_children = max_children
        self._clusters: list[_Cluster] = []  # index i holds cluster id i + 1
        self._root: dict[int, _Node] = {}  # token count -> first-layer node
        self._by_length: dict[int, list[_Cluster]] = defaultdict(list)

    # -- parameters ---------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def similarity_threshold(self) -> float:
        return self._similarity_threshold

    @property
    def max_children(self) -> int:
        return self._max_children

    def parameters(self) -> dict[str, Any]:
        """The miner's parameters, as passed to the constructor."""
        return {
            "depth": self._depth,
            "similarity_threshold": self._similarity_threshold,
            "max_children": self._max_children,
        }

    def __len__(self) -> int:
        return len(self._clusters)

    # -- public API ---------------------------------------------------------------------------

    def add(self, message: str) -> tuple[int, str]:
        """Learn from one masked message; return ``(template_id, current template)``."""
        tokens = message.split()
        cluster = self._tree_search(tokens)
        if cluster is None:
            cluster = _Cluster(id=len(self._clusters) + 1, tokens=tokens, size=1, path=())
            self._insert(cluster)
        else:
            cluster.size += 1
            cluster.tokens = [t if t == m else WILDCARD for t, m in zip(cluster.tokens, tokens)]
        return cluster.id, cluster.template

    def match(self, message: str) -> tuple[int, str] | None:
        """Find the cluster that ``message`` is an instance of, without learning.

        A cluster matches when its template fits the message (every non-``<*>`` token equal) and
        either the template is the message itself or the similarity reaches the threshold. Among
        matches the most specific template (fewest ``<*>``) wins, then the lowest id. All clusters
        with the message's token count are searched, not only the message's leaf, so the answer
        depends only on the clusters, never on how the tree routes. Every message that ``add`` has
        learned keeps matching (templates only generalise and never drop below the threshold).
        """
        tokens = message.split()
        best: _Cluster | None = None
        best_literals = -1
        for cluster in self._by_length.get(len(tokens), ()):
            if not _fits(cluster.tokens, tokens):
                continue
            literals = sum(1 for t in cluster.tokens if t != WILDCARD)
            if cluster.tokens != tokens and literals / len(tokens) < self._similarity_threshold:
                continue
            if literals > best_literals:
                best, best_literals = cluster, literals
        return None if best is None else (best.id, best.template)

    def templates(self) -> dict[int, str]:
        """Current template of every cluster, by id."""
        return {c.id: c.template for c in self._clusters}

    def sizes(self) -> dict[int, int]:
        """Number of messages learned by every cluster, by id."""
        return {c.id: c.size for c in self._clusters}

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable full state; :meth:`from_dict` rebuilds an identical miner."""
        return {
            "format": STATE_FORMAT,
            **self.parameters(),
            "clusters": [
                {"id": c.id, "template": c.template, "size": c.size, "path": list(c.path)}
                for c in self._clusters
            ],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TemplateMiner:
        """Rebuild a miner from :meth:`to_dict` output (the tree is rebuilt from cluster paths)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported miner state format {state.get('format')!r}")
        miner = cls(
            depth=int(state["depth"]),
            similarity_threshold=float(state["similarity_threshold"]),
            max_children=int(state["max_children"]),
        )
        for expected_id, record in enumerate(state["clusters"], start=1):
            if int(record["id"]) != expected_id:
                raise ValueError(f"cluster ids must run 1..n in order, got {record['id']}")
            tokens = str(record["template"]).split()
            path = tuple(str(key) for key in record["path"])
            if len(path) != miner._path_length(len(tokens)):
                raise ValueError(f"cluster {expected_id}: path {path!r} does not fit the depth")
            cluster = _Cluster(id=expected_id, tokens=tokens, size=int(record["size"]), path=path)
            miner._attach(cluster, path)
        return miner

    # -- Drain internals ----------------------------------------------------------------------

    def _path_length(self, token_count: int) -> int:
        """Number of token layers a message of ``token_count`` tokens goes through."""
        return max(0, min(self._depth - 3, token_count - 1))

    def _tree_search(self, tokens: list[str]) -> _Cluster | None:
        node = self._root.get(len(tokens))
        if node is None:
            return None
        for token in tokens[: self._path_length(len(tokens))]:
            child = node.children.get(token)
            if child is None:
                child = node.children.get(WILDCARD)
            if child is None:
                return None
            node = child
        return self._fast_match(node.clusters, tokens)

    def _fast_match(self, clusters: list[_Cluster], tokens: list[str]) -> _Cluster | None:
        if not tokens:  # all empty messages form one group
            return clusters[0] if clusters else None
        best: _Cluster | None = None
        best_sim, best_params = -1.0, -1
        for cluster in clusters:
            same, params = 0, 0
            for t, m in zip(cluster.tokens, tokens):
                if t == WILDCARD:
                    params += 1
                elif t == m:
                    same += 1
            sim = same / len(tokens)
            if sim > best_sim or (sim == best_sim and params > best_params):
                best, best_sim, best_params = cluster, sim, params
        return best if best_sim >= self._similarity_threshold else None

    def _insert(self, cluster: _Cluster) -> None:
        """Place a new cluster in the tree, growing nodes as Drain does; records its path."""
        node = self._root.setdefault(len(cluster.tokens), _Node())
        path: list[str] = []
        for token in cluster.tokens[: self._path_length(len(cluster.tokens))]:
            children = node.children
            if token in children:
                key = token
            elif _has_digit(token):
                key = WILDCARD
            elif WILDCARD in children:
                key = token if len(children) < self._max_children else WILDCARD
            else:  # keep the last free slot for the <*> overflow child
                key = token if len(children) + 1 < self._max_children else WILDCARD
            node = children.setdefault(key, _Node())
            path.append(key)
        cluster.path = tuple(path)
        self._register(cluster, node)

    def _attach(self, cluster: _Cluster, path: tuple[str, ...]) -> None:
        """Place a cluster at a known path (used when loading state)."""
        node = self._root.setdefault(len(cluster.tokens), _Node())
        for key in path:
            node = node.children.setdefault(key, _Node())
        self._register(cluster, node)

    def _register(self, cluster: _Cluster, leaf: _Node) -> None:
        leaf.clusters.append(cluster)
        self._clusters.append(cluster)
        self._by_length[len(cluster.tokens)].append(cluster)


def grouping_accuracy(predicted_ids: Sequence[Hashable], truth_ids: Sequence[Hashable]) -> float:
    """Loghub grouping accuracy: share of lines whose predicted group equals their true group.

    A line is correct when the set of lines sharing its predicted id is exactly the set of lines
    sharing its ground-truth id (Zhu et al., "Tools and Benchmarks for Automated Log Parsing",
    ICSE-SEIP 2019). An empty input scores 1.0.
    """
    if len(predicted_ids) != len(truth_ids):
        raise ValueError(f"length mismatch: {len(predicted_ids)} predicted, {len(truth_ids)} truth")
    if not predicted_ids:
        return 1.0
    predicted: dict[Hashable, list[int]] = defaultdict(list)
    truth: dict[Hashable, list[int]] = defaultdict(list)
    for line, (p, t) in enumerate(zip(predicted_ids, truth_ids)):
        predicted[p].append(line)
        truth[t].append(line)
    correct = 0
    for lines in predicted.values():
        if lines == truth[truth_ids[lines[0]]]:  # both lists are in line order
            correct += len(lines)
    return correct / len(predicted_ids)
