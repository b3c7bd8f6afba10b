"""Lavapipe's loop limit, and the work one thread of the anneal pass may do in a step.

Mesa's llvmpipe (lavapipe, the software Vulkan driver CI runs the GPU tier on) ends
any shader invocation's loops after 65535 iterations in all
(``LP_MAX_TGSI_LOOP_ITERATIONS``), silently: a long document with many rules would be
annealed wrongly. On a CPU adapter the backend therefore sizes the workgroup and the
steps per dispatch from a pessimistic count of a step's loop iterations per thread
(:func:`anneal_iterations`), and refuses, in one line, an Algorithm that cannot fit.
A GPU has no such limit and runs every step in one dispatch.
"""

from __future__ import annotations

from sae.algorithm import Algorithm
from sae.layout import PROGRAM_ITEM_FIELDS, Capacities

#: Loop iterations an invocation may run on lavapipe, with a margin for what the
#: counts below leave out.
LAVAPIPE_LOOP_LIMIT = 65535 - 5535
#: Iterations of copying one item word by word.
ITEM_LOOP = len(PROGRAM_ITEM_FIELDS)
#: The largest workgroup a CPU adapter gets to share a step's work.
MAX_CPU_WORKGROUP = 256


def match_iterations(alg: Algorithm, caps: Capacities) -> int:
    """Loop iterations one match may take at most (common.wgsl: place, the lexicon search)."""
    worst = 1
    lexicon = (max(alg.n_phrases, 1).bit_length() + 1) * (caps.phrase + 1)
    for rule in alg.rules:
        n = 1 + sum(el.gap + max(el.run, 1) + 1 for el in rule.pattern)
        if rule.kind == "merge":
            n += len(rule.pattern) + lexicon
        worst = max(worst, n)
    return worst


def anneal_iterations(alg: Algorithm, caps: Capacities, width: int, workgroup: int) -> int:
    """A pessimistic count of the loop iterations one thread of the anneal pass runs in one
    step on documents of ``width`` items (shaders/anneal.wgsl, phase by phase)."""

    def per_thread(n: int) -> int:
        return -(-n // workgroup)

    rules, reach = max(len(alg.rules), 1), alg.reach
    match = match_iterations(alg, caps) + 2
    winners = min(width, caps.journal)
    search = winners.bit_length() + 1  # a binary search over the winners
    k = caps.pattern
    overlay = k + 2 * ITEM_LOOP  # finding the element, a moved item, the merged item's parts
    count = per_thread(width * rules) * match  # bids
    count += per_thread(width) * k * (caps.gap + caps.run + 2)  # where candidates' elements lie
    count += per_thread(width) * (2 * reach + 2) * (k * k + 1)  # winners: interference
    count += width + per_thread(rules)  # ranks, inhibition
    if any(rule.kind == "guard" for rule in alg.rules):
        count += winners  # rounds of windows
        count += per_thread(winners) * (reach + 1) * (ITEM_LOOP + overlay)  # windows
        triples = (width + winners * reach) * 2 * rules
        count += per_thread(triples) * (match + search)
    count += per_thread(winners) * 2 + winners  # judge, the committed list
    # apply: moved and merged items aside, each winner's actions in place, the marks,
    # and after merges the compaction
    count += per_thread(width) * 2 + per_thread(winners) * (k * ITEM_LOOP + overlay) * 2
    count += per_thread(winners) * k * (caps.run + 1)
    count += per_thread(width) * (search + ITEM_LOOP)
    count += per_thread(width * ITEM_LOOP)  # the tail
    return count + 8


def cpu_workgroup(alg: Algorithm, caps: Capacities, smallest: int) -> int:
    """Threads per workgroup on a CPU adapter: ``smallest`` (one SIMD group), or more when a
    step on full-length documents could exceed lavapipe's loop limit per thread."""
    workgroup = smallest
    while workgroup < MAX_CPU_WORKGROUP and anneal_iterations(alg, caps, caps.stream, workgroup) > LAVAPIPE_LOOP_LIMIT:
        workgroup *= 2
    return workgroup


def steps_per_dispatch(alg: Algorithm, caps: Capacities, width: int, workgroup: int) -> int:
    """Steps one anneal dispatch may run on lavapipe for documents of ``width`` items (0:
    not even one step fits)."""
    per_step = anneal_iterations(alg, caps, width, workgroup)
    return min(max(alg.params.max_steps, 1), LAVAPIPE_LOOP_LIMIT // max(per_step, 1))


__all__ = ["LAVAPIPE_LOOP_LIMIT", "anneal_iterations", "cpu_workgroup", "match_iterations", "steps_per_dispatch"]
