"""Shared-prefix packing: which prompts share which leading ids, and how they become one padding-free pack.

Pure Python (no torch), so the layout is testable on its own. The packed backend hands the lists to torch.

Grouping never looks at the template: prompts are sorted, neighbours' common prefixes measured, and the
split that skips the most recomputed tokens is kept (for the builder's output that is one group per query,
prefix = template + instruction + query). Any split is exact, because a token's hidden state depends only
on the tokens before it: a document's tail attending to [shared prefix keys + its own keys], at the positions
it has in its own prompt, computes exactly what the whole prompt computes.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..validation import check_count

__all__ = ["Group", "Pack", "bucket", "group_by_shared_prefix", "pack_groups", "pad_pack"]


@dataclass(frozen=True, slots=True)
class Group:
    """Prompts (indices into the call) whose first ``prefix_len`` ids are equal; every tail keeps ≥ 1 id."""

    prefix_len: int
    members: tuple[int, ...]


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    # Binary search on slice equality: each probe is one C-level comparison, not a Python loop per id.
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(slots=True)
class _Interval:
    """An LCP interval of the sorted prompts: positions [lb, rb] all share ``lcp`` leading ids."""

    lcp: int
    lb: int
    rb: int = -1
    children: list[_Interval] = field(default_factory=list)
    best: int = 0  # most ids saved inside this interval
    whole: bool = False  # the best is one group over the whole interval


def _finish(node: _Interval) -> None:
    split = sum(child.best for child in node.children)
    whole = (node.rb - node.lb) * node.lcp
    node.whole = whole > split
    node.best = max(whole, split)


def group_by_shared_prefix(prompts: Sequence[Sequence[int]]) -> list[Group]:
    """Partition the prompts into groups with a shared prefix, skipping as many recomputed ids as possible.

    Groups are LCP intervals of the lexicographically sorted prompts (the classic bottom-up stack walk);
    each interval is either one group or the best of its sub-intervals, so the result is optimal among
    one-level splits. Prompts in no group come back as groups of one with ``prefix_len`` 0.
    """
    seqs = [tuple(p) for p in prompts]
    n = len(seqs)
    if n == 0:
        return []
    order = sorted(range(n), key=seqs.__getitem__)
    # lcp[k]: ids shared by sorted positions k and k+1, capped so each tail keeps its last id to score.
    lcp = [
        min(_common_prefix_len(seqs[a], seqs[b]), len(seqs[a]) - 1, len(seqs[b]) - 1)
        for a, b in itertools.pairwise(order)
    ]
    roots: list[_Interval] = []
    stack = [_Interval(lcp=0, lb=0)]
    for i in range(1, n + 1):
        cur = lcp[i - 1] if i < n else -1
        lb = i - 1
        last: _Interval | None = None
        while stack and cur < stack[-1].lcp:
            node = stack.pop()
            node.rb = i - 1
            _finish(node)
            lb = node.lb
            if stack and cur <= stack[-1].lcp:
                stack[-1].children.append(node)
            elif stack:
                last = node
            else:
                roots.append(node)
        if stack and cur > stack[-1].lcp:
            stack.append(_Interval(lcp=cur, lb=lb, children=[last] if last else []))
    groups: list[Group] = []
    covered = [False] * n
    todo = list(reversed(roots))
    while todo:
        node = todo.pop()
        if node.whole:
            groups.append(Group(node.lcp, tuple(order[k] for k in range(node.lb, node.rb + 1))))
            for k in range(node.lb, node.rb + 1):
                covered[k] = True
        else:
            todo.extend(reversed(node.children))
    groups.extend(Group(0, (order[k],)) for k in range(n) if not covered[k])
    return groups


@dataclass(frozen=True, slots=True)
class Pack:
    """One forward's layout: a 1-D id stream of segments, each attending causally to its keys.

    A segment is a group's prefix (keys: its own ids) or a tail (keys: the prefix's ids, then its own), its
    ids at positions ``first_position ...``; causal masking is aligned to the last key, so a tail's first id
    sees the whole prefix. Per segment only lengths and offsets are listed (the device expands them), so
    the host touches each id once. ``scored[j]`` is the prompt whose last id ends the j-th tail segment.
    """

    scored: tuple[int, ...]
    token_ids: array  # int64, so the device upload is one buffer copy, not a conversion per id
    query_lens: list[int]
    first_position: list[int]
    prefix_start: list[int]  # stream index of the segment's prefix (0 when it has none)
    prefix_len: list[int]  # prefix keys the segment reads before its own
    is_tail: list[bool]
    #: scored rows past ``scored``, each reading stream id ``pad_start`` (a padded pack's fixed row count)
    pad_slots: int = 0
    pad_start: int = 0
    #: (max_q, max_k) the attention kernel is told; None: the segments' own maxima
    bounds: tuple[int, int] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_keys(self) -> int:
        return sum(self.prefix_len) + len(self.token_ids)

    @property
    def last_index(self) -> list[int]:
        """Stream index of each scored row: the last id of each tail, then ``pad_slots`` padding ids."""
        out, end = [], 0
        for q_len, tail in zip(self.query_lens, self.is_tail, strict=True):
            end += q_len
            if tail:
                out.append(end - 1)
        return out + [self.pad_start] * self.pad_slots

    @property
    def key_lens(self) -> list[int]:
        return [p + q for p, q in zip(self.prefix_len, self.query_lens, strict=True)]


class _PackBuilder:
    def __init__(self) -> None:
        self.scored: list[int] = []
        self.ids = array("q")
        self.q_lens: list[int] = []
        self.pos0: list[int] = []
        self.p_start: list[int] = []
        self.p_len: list[int] = []
        self.tail: list[bool] = []
        self.prefix: tuple[int, int] | None = None  # (group number, stream start) of the prefix in this pack

    def _segment(self, ids: Sequence[int], pos0: int, p_start: int, p_len: int, tail: bool) -> None:
        self.ids.extend(ids)
        self.q_lens.append(len(ids))
        self.pos0.append(pos0)
        self.p_start.append(p_start)
        self.p_len.append(p_len)
        self.tail.append(tail)

    def add_prefix(self, key: int, ids: Sequence[int]) -> None:
        self.prefix = (key, len(self.ids))
        if ids:
            self._segment(ids, 0, 0, 0, False)

    def add_tail(self, index: int, prefix_len: int, tail: Sequence[int]) -> None:
        assert self.prefix is not None
        self._segment(tail, prefix_len, self.prefix[1] if prefix_len else 0, prefix_len, True)
        self.scored.append(index)

    def build(self) -> Pack:
        return Pack(tuple(self.scored), self.ids, self.q_lens, self.pos0, self.p_start, self.p_len, self.tail)


def pack_groups(prompts: Sequence[Sequence[int]], groups: Sequence[Group], token_budget: int) -> Iterator[Pack]:
    """Packs of at most ``token_budget`` computed ids, groups in order, made lazily (the device can run one
    pack while the next is laid out); a group split over packs has its prefix in each. A prompt longer than
    the budget gets a pack of its own."""
    check_count(token_budget, "token_budget", note="ids per pack")
    builder, used = _PackBuilder(), 0
    for key, group in enumerate(groups):
        for index in group.members:
            prompt = prompts[index]
            tail = prompt[group.prefix_len :]
            fresh = builder.prefix is None or builder.prefix[0] != key
            cost = len(tail) + (group.prefix_len if fresh else 0)
            if builder.scored and used + cost > token_budget:
                yield builder.build()
                builder, used, fresh, cost = _PackBuilder(), 0, True, len(prompt)
            if fresh:
                builder.add_prefix(key, prompt[: group.prefix_len])
            builder.add_tail(index, group.prefix_len, tail)
            used += cost
    if builder.scored:
        yield builder.build()


# -- padding to bucketed shapes (CUDA graphs replay fixed shapes) ----------------------------------------

#: the smallest token bucket; below it a pack is padded up to it
MIN_TOKEN_BUCKET = 256


def bucket(n: int, steps_per_octave: int = 16, minimum: int = MIN_TOKEN_BUCKET) -> int:
    """The smallest bucket >= ``n``: ``minimum``, then ``steps_per_octave`` even steps per doubling (16 steps
    waste at most 1/16 of a pack on padding; 1 step is the next power of two)."""
    if n <= minimum:
        return minimum
    octave = 1 << (n - 1).bit_length() - 1  # largest power of two < n
    step = max(1, octave // steps_per_octave)
    return -(-n // step) * step


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def pad_pack(pack: Pack, pad_id: int = 0) -> Pack:
    """``pack`` padded to bucketed shapes, so that a handful of captured CUDA graphs serve every pack.

    Five shapes are fixed per bucket: ids (``bucket(T + 1)``, so there is always a padding id), gathered keys
    (ids + a bucketed count of prefix keys), segments and scored rows (a power of two), and the
    ``(max_q, max_k)`` the kernel is told (powers of two). Padding never meets a real id: padding ids form
    their own segments (at most ``max_q`` ids each, attending only to themselves), extra keys form segments
    with no queries, unused segment slots are empty, and extra scored rows read a padding id. Every real
    segment keeps its ids, positions and keys, so no score changes.
    """
    tokens, prefix_keys = pack.num_tokens, sum(pack.prefix_len)
    max_q = 1 << max(63, max(pack.query_lens) - 1).bit_length()
    max_k = 1 << max(max_q - 1, max(pack.key_lens) - 1).bit_length()
    total = bucket(tokens + 1)
    pad_q = _chunks(total - tokens, max_q)
    extra = (bucket(prefix_keys, 8) if prefix_keys else 0) - prefix_keys
    # Key-only segments read ids [0, n) of the stream: real keys, but no query reads them.
    pad_k = _chunks(extra, min(max_k, total))
    used = len(pack.query_lens) + len(pad_q) + len(pad_k)
    segments = 1 << max(7, used - 1).bit_length()
    empty = segments - used
    pad_ids = array("q", [pad_id]) * (total - tokens)
    return Pack(
        scored=pack.scored,
        token_ids=pack.token_ids + pad_ids,
        query_lens=[*pack.query_lens, *pad_q, *[0] * len(pad_k), *[0] * empty],
        first_position=[*pack.first_position, *[0] * (len(pad_q) + len(pad_k) + empty)],
        prefix_start=[*pack.prefix_start, *[0] * (len(pad_q) + len(pad_k) + empty)],
        prefix_len=[*pack.prefix_len, *[0] * len(pad_q), *pad_k, *[0] * empty],
        is_tail=[*pack.is_tail, *[False] * (len(pad_q) + len(pad_k) + empty)],
        pad_slots=segments - len(pack.scored),
        pad_start=tokens,
        bounds=(max_q, max_k),
    )
