// Pass "anneal": one workgroup per job (document x Algorithm) runs the whole annealing
// loop of docs/ENGINE.md §3 for its document, step after step, and stops when the
// document is finished: no host round trip and no dispatch per step. Per step:
//   bids      threads over (anchor, rule): the potential P0, whether a rewrite or merge
//             bids at all, and per anchor the largest key of a rule not inhibited
//             (workgroup atomics);
//   extents   threads over anchors: the extent of each candidate (its rule matched again);
//   winners   threads over anchors: a candidate wins iff no candidate whose extent
//             overlaps its own has a larger key;
//   ranks     thread 0, in anchor order, up to the journal's free room: the winner
//             records; every thread decrements the inhibition counters;
//   windows   threads over winners: each winner's rewrite applied alone, written at its
//             own positions into the window slot (extents are disjoint, so they coexist);
//   health    only when the Algorithm has guards: threads over (winner, anchor, rule)
//             match S (guards) and S_w (every rule) near the winner, S_w read through
//             the window (Src), and add up delta per winner;
//   judge     threads over winners: commit iff delta <= score + tolerance; journal;
//   apply     thread 0 lists the committed winners with the positions the merges before
//             them remove; threads over items build the next stream in the other slot.
// A workgroup can optionally first widen its document from the batch's token ids.

struct Shared {
    len: u32,
    live: u32,
    n_win: u32,
    n_commit: u32,
    removed: u32,
    triples: u32,
    journal_len: u32,
    p0: i32,
}

var<workgroup> wg: Shared;
// Per anchor, the best candidate key (bids, extents, winners); then, per winner, delta (health).
var<workgroup> wg_slots: array<atomic<u32>, CAP_STREAM>;
var<workgroup> wg_inhibit: array<u32, CAP_RULES>;
var<workgroup> wg_potential: atomic<i32>;
var<workgroup> wg_rewrites: atomic<u32>;

// The set_* and scale_arg1 actions of element e of rule ri on one item (§4 step 2).
fn act(x: ptr<function, ProgramItem>, ri: u32, e: u32) {
    let op = rules[ri].set_opcode[e];
    if (op != KEEP) {
        (*x).opcode = u32(op);
    }
    let a0 = rules[ri].set_arg0[e];
    if (a0 != KEEP) {
        (*x).arg0 = u32(a0);
    }
    let md = rules[ri].set_mod[e];
    if (md != KEEP) {
        (*x).mod_ = u32(md);
    }
    let a1 = rules[ri].set_arg1[e];
    if (a1 != KEEP) {
        (*x).arg1 = a1;
    }
    let sc = rules[ri].scale_arg1[e];
    if (sc != KEEP) {
        (*x).arg1 = scale_q16((*x).arg1, sc);
    }
}

// Winner w's rewrite applied alone to S (at sbase), written at its own positions of the
// window slot (at tbase): the extent's items for a rewrite, the merged item for a merge.
// The elements' first and last items go to the winner record (at w), not to local arrays.
fn build_window(sbase: u32, tbase: u32, len: u32, p: u32, ri: u32, w: u32) {
    let s = plain(sbase);
    let k = min(rules[ri].length, CAP_PATTERN);
    let bit = 1u << rules[ri].mark;
    if (rules[ri].kind == RULE_MERGE) {
        let m = match_rule(s, len, p, ri);
        var x = items[sbase + p];
        var span = 0u;
        var marks = bit;
        for (var e = 0u; e < k; e++) {
            let y = items[sbase + p + e];
            span += y.span;
            marks |= y.marks;
        }
        x.symbol = params.vocab_size + m.phrase;
        x.span = span;
        x.opcode = OP_ACC;
        x.arg0 = tables[params.off_rows + x.symbol];
        x.arg1 = Q16_ONE;
        x.mod_ = 0u;
        x.marks = marks;
        act(&x, ri, 0u);
        items[tbase + p] = x;
        return;
    }
    var start = p;
    for (var e = 0u; e < k; e++) {
        let fq = place(s, len, start, ri, e);
        scratch[w + WIN_FIRST + e] = fq.x;
        scratch[w + WIN_LAST + e] = fq.y;
        start = fq.y + 1u;
    }
    for (var j = p; j <= scratch[w + WIN_EXT]; j++) {
        items[tbase + j] = items[sbase + j];
    }
    for (var e = 0u; e < k; e++) {
        let source = scratch[w + WIN_LAST + min(rules[ri].perm[e], k - 1u)];
        items[tbase + scratch[w + WIN_LAST + e]] = items[sbase + source];
    }
    for (var e = 0u; e < k; e++) {
        let targeted = (rules[ri].flags[e] & FLAG_TARGET) != 0u;
        for (var j = scratch[w + WIN_FIRST + e]; j <= scratch[w + WIN_LAST + e]; j++) {
            var x = items[tbase + j];
            act(&x, ri, e);
            if (targeted) {
                x.marks |= bit;
            }
            items[tbase + j] = x;
        }
    }
}

fn winner_at(sb: u32, i: u32) -> u32 {
    return sb + SCRATCH_WINNERS + i * WINNER_WORDS;
}

// The winner whose (winner-ordered, increasing) prefix `field` is the last <= value.
fn find_winner(sb: u32, n: u32, field: u32, value: u32) -> u32 {
    var lo = 0u;
    var hi = n;
    for (var it = 0u; it < 32u && hi - lo > 1u; it++) {
        let mid = (lo + hi) / 2u;
        if (scratch[winner_at(sb, mid) + field] <= value) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    let a = wid.y;
    if (d >= params.n_docs) {
        return;
    }
    let job = a * params.n_docs + d;
    let alg = alg_record(a);
    let rb = alg.rule_base;
    let nr = alg.n_rules;
    let sb = scratch_base(job);
    let tbase = slot_base(job, WINDOW_SLOT);
    let journal_on = (params.mode & GPU_MODE_JOURNAL) != 0u;

    if ((params.mode & GPU_MODE_WIDEN) != 0u) {
        // docs/ENGINE.md §1: one ACC item per token; the rest of the stream all-zero words.
        let n = min(tables[params.off_lengths + d], CAP_STREAM);
        let base = slot_base(job, 0u);
        for (var j = t; j < CAP_STREAM; j += WG) {
            var x: ProgramItem;
            if (j < n) {
                let token = tables[params.off_tokens + d * CAP_STREAM + j];
                x.symbol = token;
                x.token = token;
                x.pos = j;
                x.span = 1u;
                x.opcode = OP_ACC;
                x.arg0 = tables[params.off_rows + token];
                x.arg1 = Q16_ONE;
            }
            items[base + j] = x;
        }
        if (t == 0u) {
            var fresh: DocState;
            fresh.length = n;
            state[job] = fresh;
        }
        storageBarrier();
    }
    for (var r = t; r < nr; r += WG) {
        wg_inhibit[r] = 0u;
    }
    if (t == 0u) {
        wg.len = state[job].length;
        wg.journal_len = state[job].journal_len;
    }
    let start = workgroupUniformLoad(&wg);
    let first_len = start.len;
    var len = first_len;
    var journal_len = start.journal_len;
    var cur = 0u;  // the slot holding the stream S
    var steps = 0u;
    var committed = 0u;
    var reverted = 0u;
    let max_steps = select(0u, alg.max_steps, alg.rewrites != 0u);

    for (var step = 0u; step < max_steps; step++) {
        storageBarrier();  // the last step's scratch reads before this step's writes
        let sbase = slot_base(job, cur);
        let s = plain(sbase);
        // -- bids of S: P0, a rewrite or merge bids, the best candidate per anchor
        for (var p = t; p < len; p += WG) {
            atomicStore(&wg_slots[p], 0u);
        }
        if (t == 0u) {
            atomicStore(&wg_potential, 0);
            atomicStore(&wg_rewrites, 0u);
        }
        workgroupBarrier();
        var potential = 0;
        var rewrites = 0u;
        for (var i = t; i < len * nr; i += WG) {
            let p = i / nr;
            let r = i - p * nr;
            let ri = rb + r;
            let m = match_rule(s, len, p, ri);
            if (m.ok) {
                if (rules[ri].kind == RULE_GUARD) {
                    potential -= i32(m.score);
                } else {
                    potential += i32(m.score);
                    rewrites = 1u;
                    if (wg_inhibit[r] == 0u) {
                        atomicMax(&wg_slots[p], bid_key(m.score, p, r));
                    }
                }
            }
        }
        if (potential != 0) {
            atomicAdd(&wg_potential, potential);
        }
        if (rewrites != 0u) {
            atomicStore(&wg_rewrites, 1u);
        }
        workgroupBarrier();
        if (t == 0u) {
            wg.live = atomicLoad(&wg_rewrites);
            wg.p0 = atomicLoad(&wg_potential);
        }
        let live = workgroupUniformLoad(&wg.live);
        if (live == 0u) {
            break;  // finished: nothing to rewrite, now or later
        }
        steps += 1u;
        let p0 = wg.p0;
        // -- extents of the candidates
        for (var p = t; p < len; p += WG) {
            let key = atomicLoad(&wg_slots[p]);
            var z = p;
            if (key != 0u) {
                z = match_rule(s, len, p, rb + key_rule(key)).z;
            }
            scratch[sb + SCRATCH_EXT + p] = z;
        }
        storageBarrier();
        // -- winners: no overlapping candidate has a larger key
        for (var p = t; p < len; p += WG) {
            let key = atomicLoad(&wg_slots[p]);
            var wins = key != 0u;
            if (wins) {
                let z = scratch[sb + SCRATCH_EXT + p];
                for (var x = p - min(p, alg.reach); x <= z; x++) {
                    if (x != p && atomicLoad(&wg_slots[x]) > key && scratch[sb + SCRATCH_EXT + x] >= p) {
                        wins = false;
                        break;
                    }
                }
            }
            scratch[sb + SCRATCH_WIN + p] = select(0u, 1u, wins);
        }
        storageBarrier();
        // -- ranks, up to the journal's free room; the health check's work per winner
        if (t == 0u) {
            let room = CAP_JOURNAL - journal_len;
            var rank = 0u;
            var triples = 0u;
            for (var p = 0u; p < len && rank < room; p++) {
                if (scratch[sb + SCRATCH_WIN + p] != 0u) {
                    let key = atomicLoad(&wg_slots[p]);
                    let ri = rb + key_rule(key);
                    let z = scratch[sb + SCRATCH_EXT + p];
                    var removes = 0u;
                    var wlen = z - p + 1u;
                    if (rules[ri].kind == RULE_MERGE) {
                        removes = min(rules[ri].length, CAP_PATTERN) - 1u;
                        wlen = 1u;
                    }
                    let w = winner_at(sb, rank);
                    scratch[w + WIN_KEY] = key;
                    scratch[w + WIN_EXT] = z;
                    scratch[w + WIN_WLEN] = wlen;
                    scratch[w + WIN_REMOVES] = removes;
                    scratch[w + WIN_TRIPLES] = triples;
                    triples += (z - (p - min(p, alg.reach)) + 1u) * nr;
                    rank += 1u;
                }
            }
            wg.n_win = rank;
            wg.triples = triples;
        }
        // §3 step 4: every step the document is not finished, winners or not.
        for (var r = t; r < nr; r += WG) {
            if (wg_inhibit[r] > 0u) {
                wg_inhibit[r] -= 1u;
            }
        }
        let n_win = workgroupUniformLoad(&wg.n_win);
        if (n_win == 0u) {
            continue;  // idle: every candidate inhibited, or the journal full
        }
        // -- each winner's rewrite alone, in the window slot
        for (var i = t; i < n_win; i += WG) {
            let w = winner_at(sb, i);
            let key = scratch[w + WIN_KEY];
            let ri = rb + key_rule(key);
            build_window(sbase, tbase, len, key_anchor(key), ri, w);
        }
        storageBarrier();
        // -- health: delta(w) = guards of S touching w - every bid of S_w touching w
        if (alg.guards != 0u) {
            for (var i = t; i < n_win; i += WG) {
                atomicStore(&wg_slots[i], 0u);
            }
            workgroupBarrier();
            let total = wg.triples;
            for (var g = t; g < total; g += WG) {
                let i = find_winner(sb, n_win, WIN_TRIPLES, g);
                let w = winner_at(sb, i);
                let key = scratch[w + WIN_KEY];
                let p = key_anchor(key);
                let z = scratch[w + WIN_EXT];
                let removes = scratch[w + WIN_REMOVES];
                let local = g - scratch[w + WIN_TRIPLES];
                let x = p - min(p, alg.reach) + local / nr;
                let ri = rb + local % nr;
                var c = 0;
                if (x + removes <= z) {
                    let sw = Src(sbase, tbase, p, scratch[w + WIN_WLEN], removes);
                    let m = match_rule(sw, len - removes, x, ri);
                    if (m.ok && m.z >= p) {
                        c -= signed_score(ri, m.score);
                    }
                }
                if (rules[ri].kind == RULE_GUARD) {
                    let m = match_rule(s, len, x, ri);
                    if (m.ok && m.z >= p) {
                        c -= i32(m.score);
                    }
                }
                if (c != 0) {
                    atomicAdd(&wg_slots[i], bitcast<u32>(c));
                }
            }
            workgroupBarrier();
        }
        // -- judge each winner and journal it, in rank order
        for (var i = t; i < n_win; i += WG) {
            let w = winner_at(sb, i);
            let key = scratch[w + WIN_KEY];
            let score = key_score(key);
            var delta = 0;
            if (alg.guards != 0u) {
                delta = bitcast<i32>(atomicLoad(&wg_slots[i]));
            }
            var outcome = REVERTED;
            if (delta <= i32(score + alg.tolerance)) {
                outcome = COMMITTED;
            }
            scratch[w + WIN_OUTCOME] = outcome;
            if (journal_on) {
                var entry: JournalEntry;
                entry.step = step;
                entry.rank = i;
                entry.rule = key_rule(key);
                entry.pos = key_anchor(key);
                entry.score = score;
                entry.potential_before = p0;
                entry.potential_after = p0 - delta;
                entry.outcome = outcome;
                journal[job * CAP_JOURNAL + journal_len + i] = entry;
            }
        }
        storageBarrier();
        // -- the committed winners, with the positions the merges before them remove;
        //    reverted rules are inhibited
        if (t == 0u) {
            var kept = 0u;
            var removed = 0u;
            for (var i = 0u; i < n_win; i++) {
                let w = winner_at(sb, i);
                if (scratch[w + WIN_OUTCOME] == COMMITTED) {
                    scratch[winner_at(sb, kept) + WIN_APPLY] = i;
                    scratch[w + WIN_SHIFT] = removed;
                    removed += scratch[w + WIN_REMOVES];
                    kept += 1u;
                } else {
                    wg_inhibit[key_rule(scratch[w + WIN_KEY])] = alg.inhibit_steps;
                }
            }
            wg.n_commit = kept;
            wg.removed = removed;
        }
        let done = workgroupUniformLoad(&wg);
        journal_len += n_win;
        committed += done.n_commit;
        reverted += n_win - done.n_commit;
        if (done.n_commit == 0u) {
            continue;
        }
        // -- apply every committed winner at once: S (and the windows) -> the other slot
        let next = slot_base(job, 1u - cur);
        for (var j = t; j < len; j += WG) {
            // the last committed winner anchored at or before j
            var lo = 0u;
            var hi = done.n_commit;
            for (var it = 0u; it < 32u && lo < hi; it++) {
                let mid = (lo + hi) / 2u;
                let w = winner_at(sb, scratch[winner_at(sb, mid) + WIN_APPLY]);
                if (key_anchor(scratch[w + WIN_KEY]) <= j) {
                    lo = mid + 1u;
                } else {
                    hi = mid;
                }
            }
            if (lo == 0u) {
                items[next + j] = items[sbase + j];
                continue;
            }
            let w = winner_at(sb, scratch[winner_at(sb, lo - 1u) + WIN_APPLY]);
            let p = key_anchor(scratch[w + WIN_KEY]);
            let wlen = scratch[w + WIN_WLEN];
            let removes = scratch[w + WIN_REMOVES];
            let shift = scratch[w + WIN_SHIFT];
            if (j < p + wlen) {
                items[next + j - shift] = items[tbase + j];
            } else if (j >= p + wlen + removes) {
                items[next + j - shift - removes] = items[sbase + j];
            }
        }
        let new_len = len - done.removed;
        var zero: ProgramItem;
        for (var j = new_len + t; j < first_len; j += WG) {
            items[next + j] = zero;
        }
        storageBarrier();
        cur = 1u - cur;
        len = new_len;
    }
    if (cur != 0u) {
        // The final stream back to slot 0, where the VM and the host read it.
        let last = slot_base(job, cur);
        let to = slot_base(job, 0u);
        for (var j = t; j < first_len; j += WG) {
            items[to + j] = items[last + j];
        }
    }
    if (t == 0u) {
        var done: DocState;
        done.length = len;
        done.steps = steps;
        done.journal_len = journal_len;
        done.committed = committed;
        done.reverted = reverted;
        state[job] = done;
    }
}
