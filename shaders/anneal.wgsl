// Pass "anneal": one workgroup per job (document x Algorithm) the "live" pass listed
// (an indirect dispatch) runs up to
// params.step_count steps of the annealing loop (docs/ENGINE.md §3) for its document,
// from DocState.next_step on, and stops as soon as the document is finished: no host
// round trip. A GPU runs every step in one dispatch; a CPU adapter (lavapipe) a few
// steps a dispatch, because it ends any invocation after 65535 loop iterations. What
// persists between dispatches is in DocState, the inhibition counters in the scratch
// area and the stream in slot 0. The first dispatch of a batch (DocState.epoch !=
// params.epoch) starts the job: widens it from its token ids (GPU_MODE_WIDEN) or takes
// the uploaded stream. Per step, in the workgroup's threads:
//   bids      threads over the anchors of S, each matching the rules whose first element
//             its symbol passes: P0, whether a rewrite or merge bids at all (else the
//             document is finished), per anchor the largest key of a rewrite or merge
//             rule not inhibited, with its extent and phrase;
//   places    threads over anchors with a candidate: where its elements lie;
//   winners   threads over anchors: a candidate wins iff no candidate that interferes
//             with it (§3: one writes a field of an item the other examines or writes,
//             or both set the same mark bit on an item; only candidates whose extents
//             overlap can) has a larger key; thread 0 ranks them in anchor order, up to
//             the journal's free room, into winner records; inhibition decremented;
//   health    only with guard rules, in rounds of winners whose windows fit the window
//             slot together: threads over winners write each winner's rewrite applied
//             alone (its window); threads over (winner, anchor, side) match S (guards)
//             and S_w (every rule, S read through the winner's window) near each winner
//             and add up delta per winner;
//   judge     threads over winners: commit iff delta <= score + tolerance; journal;
//   apply     thread 0 lists the committed winners with the positions the merges before
//             them remove; moved items and merged items go aside (the window slot);
//             threads over winners rewrite S in place (winners write different fields
//             of an item; their mark bits are gathered per item in workgroup memory);
//             after merges, threads over items compact S into the other slot.
// Helpers (the matcher above all) have as few call sites as the phases allow: every call
// is inlined, and on a CPU adapter each inlined copy costs every workgroup. Control flow that depends on the document
// goes through workgroup memory (workgroupUniformLoad), so it is uniform.

struct Shared {
    len: u32,
    live: u32,
    n_win: u32,
    n_commit: u32,
    removed: u32,
    triples: u32,
    round_end: u32,
    p0: i32,
    stop: u32,
}

var<workgroup> wg: Shared;
var<workgroup> wg_state: DocState;
// Per anchor, the best candidate key (bids, winners); then, per winner, delta (health);
// then per item the mark bits the committed winners set (apply).
var<workgroup> wg_slots: array<atomic<u32>, CAP_STREAM>;
var<workgroup> wg_potential: atomic<i32>;
var<workgroup> wg_rewrites: atomic<u32>;

// The set_* and scale_arg1 actions of element e of rule ri on item i (§4 step 2).
fn act(i: u32, ri: u32, e: u32) {
    let op = rules[ri].set_opcode[e];
    if (op != KEEP) {
        set_item_word(i, ITEM_OPCODE, u32(op));
    }
    let a0 = rules[ri].set_arg0[e];
    if (a0 != KEEP) {
        set_item_word(i, ITEM_ARG0, u32(a0));
    }
    let md = rules[ri].set_mod[e];
    if (md != KEEP) {
        set_item_word(i, ITEM_MOD, u32(md));
    }
    let a1 = rules[ri].set_arg1[e];
    let sc = rules[ri].scale_arg1[e];
    if (a1 != KEEP || sc != KEEP) {
        var arg1 = select(bitcast<i32>(item_word(i, ITEM_ARG1)), a1, a1 != KEEP);
        if (sc != KEEP) {
            arg1 = scale_q16(arg1, sc);
        }
        set_item_word(i, ITEM_ARG1, bitcast<u32>(arg1));
    }
}

fn winner_at(sb: u32, i: u32) -> u32 {
    return sb + SCRATCH_WINNERS + i * WINNER_WORDS;
}

// Where element e of the candidate anchored at p lies: (first item, last item).
fn element_at(sb: u32, p: u32, e: u32) -> vec2<u32> {
    let packed = scratch[sb + SCRATCH_PLACE + p * CAP_PATTERN + e];
    return vec2<u32>(packed & 0xFFFFu, packed >> 16u);
}

// Whether the candidates anchored at a and b (keys ka, kb) interfere (docs/ENGINE.md §3):
// element by element, one writes a field of an item the other examines or writes, or
// both mark an item with the same bit. Element e examines its gap's probes, its items and
// the probe that ended its run; it writes its items.
fn interfere(sb: u32, rb: u32, n: u32, a: u32, ka: u32, b: u32, kb: u32) -> bool {
    let ra = rb + key_rule(ka);
    let rbb = rb + key_rule(kb);
    let na = min(rules[ra].length, CAP_PATTERN);
    let nb = min(rules[rbb].length, CAP_PATTERN);
    let same_mark = rules[ra].mark == rules[rbb].mark;
    var start_a = a;
    for (var ea = 0u; ea < na; ea++) {
        let qa = element_at(sb, a, ea);
        let run_a = rules[ra].run[ea];
        let end_a = qa.y + select(0u, 1u, run_a > 0u && qa.y + 1u - qa.x < run_a && qa.y + 1u < n);
        let fields_a = tables[params.off_elements + (ra * CAP_PATTERN + ea) * ELEMENT_WORDS + 2u];
        let target_a = (rules[ra].flags[ea] & FLAG_TARGET) != 0u;
        var start_b = b;
        for (var eb = 0u; eb < nb; eb++) {
            let qb = element_at(sb, b, eb);
            let run_b = rules[rbb].run[eb];
            let end_b = qb.y + select(0u, 1u, run_b > 0u && qb.y + 1u - qb.x < run_b && qb.y + 1u < n);
            let fields_b = tables[params.off_elements + (rbb * CAP_PATTERN + eb) * ELEMENT_WORDS + 2u];
            let target_b = (rules[rbb].flags[eb] & FLAG_TARGET) != 0u;
            // a writes what b examines, b writes what a examines, both write or mark
            if (((fields_a >> 8u) & fields_b & 0xFFu) != 0u && qa.x <= end_b && start_b <= qa.y) {
                return true;
            }
            if (((fields_b >> 8u) & fields_a & 0xFFu) != 0u && qb.x <= end_a && start_a <= qb.y) {
                return true;
            }
            let both = (fields_a & fields_b & 0xFF00u) != 0u || (target_a && target_b && same_mark);
            if (both && qa.x <= qb.y && qb.x <= qa.y) {
                return true;
            }
            start_b = qb.y + 1u;
        }
        start_a = qa.y + 1u;
    }
    return false;
}

// §4 merge of winner w (rule ri, k elements, anchored at p): the k items of S (at sbase)
// become one, written over dst (a copy of S's item p); then element 0's actions.
fn merged_item(dst: u32, sbase: u32, p: u32, k: u32, ri: u32, w: u32) {
    var span = 0u;
    var marks = 1u << rules[ri].mark;
    for (var e = 0u; e < k; e++) {
        span += item_word(sbase + p + e, ITEM_SPAN);
        marks |= item_word(sbase + p + e, ITEM_MARKS);
    }
    let symbol = params.vocab_size + scratch[w + WIN_PHRASE];
    set_item_word(dst, ITEM_SYMBOL, symbol);
    set_item_word(dst, ITEM_SPAN, span);
    set_item_word(dst, ITEM_OPCODE, OP_ACC);
    set_item_word(dst, ITEM_ARG0, tables[params.off_rows + symbol]);
    set_item_word(dst, ITEM_ARG1, u32(Q16_ONE));
    set_item_word(dst, ITEM_MOD, 0u);
    set_item_word(dst, ITEM_MARKS, marks);
    act(dst, ri, 0u);
}

// Winner w's rewrite (§4) of the item at position j of S (at sbase), over dst, which
// holds a copy of S's item j: the merged item at a merge's anchor; the item a rewrite's
// permutation brings; its element's actions and mark. Nothing where w writes nothing.
fn overlay(dst: u32, sbase: u32, j: u32, sb: u32, w: u32, rb: u32) {
    let key = scratch[w + WIN_KEY];
    let p = key_anchor(key);
    let ri = rb + key_rule(key);
    let k = min(rules[ri].length, CAP_PATTERN);
    if (rules[ri].kind == RULE_MERGE) {
        if (j == p) {
            merged_item(dst, sbase, p, k, ri, w);
        }
        return;
    }
    for (var e = 0u; e < k; e++) {
        let fq = element_at(sb, p, e);
        if (j >= fq.x && j <= fq.y) {
            let moved = min(rules[ri].perm[e], k - 1u);
            if (j == fq.y && moved != e) {
                copy_item(dst, sbase + element_at(sb, p, moved).y);
            }
            act(dst, ri, e);
            if ((rules[ri].flags[e] & FLAG_TARGET) != 0u) {
                set_item_word(dst, ITEM_MARKS, item_word(dst, ITEM_MARKS) | (1u << rules[ri].mark));
            }
            return;
        }
    }
}

// Before committed winner w's rewrite is applied to S in place: the items its
// permutation brings, copied aside to their places in the window slot (at tbase); for a
// merge, the merged item, at its anchor there.
fn stash(sbase: u32, tbase: u32, sb: u32, w: u32, rb: u32) {
    let key = scratch[w + WIN_KEY];
    let p = key_anchor(key);
    let ri = rb + key_rule(key);
    let k = min(rules[ri].length, CAP_PATTERN);
    if (rules[ri].kind == RULE_MERGE) {
        copy_item(tbase + p, sbase + p);
        merged_item(tbase + p, sbase, p, k, ri, w);
        return;
    }
    for (var e = 0u; e < k; e++) {
        let moved = min(rules[ri].perm[e], k - 1u);
        if (moved != e) {
            copy_item(tbase + element_at(sb, p, e).y, sbase + element_at(sb, p, moved).y);
        }
    }
}

// Committed winner w's rewrite applied to S in place: the moved items from the window
// slot, every element's actions; its mark bit gathered per item in wg_slots. Winners
// write different fields of an item, so they may do this side by side.
fn rewrite_in_place(sbase: u32, tbase: u32, sb: u32, w: u32, rb: u32) {
    let key = scratch[w + WIN_KEY];
    let p = key_anchor(key);
    let ri = rb + key_rule(key);
    if (rules[ri].kind == RULE_MERGE) {
        return;  // its item is in the window slot; the compaction takes it
    }
    let k = min(rules[ri].length, CAP_PATTERN);
    for (var e = 0u; e < k; e++) {
        let fq = element_at(sb, p, e);
        if (min(rules[ri].perm[e], k - 1u) != e) {
            copy_item(sbase + fq.y, tbase + fq.y);
        }
        let bit = select(0u, 1u << rules[ri].mark, (rules[ri].flags[e] & FLAG_TARGET) != 0u);
        for (var j = fq.x; j <= fq.y; j++) {
            act(sbase + j, ri, e);
            atomicOr(&wg_slots[j], bit);
        }
    }
}

// S_w for winner w (the window, §3 step 5): S's items p .. p + wlen - 1 with w's
// rewrite applied alone, from item tw on (the merged item alone for a merge).
fn build_window(sbase: u32, tw: u32, sb: u32, w: u32, rb: u32) {
    let p = key_anchor(scratch[w + WIN_KEY]);
    let wlen = scratch[w + WIN_WLEN];
    for (var j = 0u; j < wlen; j++) {
        copy_item(tw + j, sbase + p + j);
        overlay(tw + j, sbase, p + j, sb, w, rb);
    }
}

// The last of the first n winner records whose word `field` (increasing) is <= value.
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
    // The "live" pass listed the jobs still to anneal and sized this (indirect) dispatch.
    if (wid.x >= scratch[params.live_base]) {
        return;
    }
    let job = scratch[params.live_base + LIVE_JOBS + wid.x];
    let d = job % params.n_docs;
    let a = job / params.n_docs;
    let alg = alg_record(a);
    let rb = alg.rule_base;
    let nr = alg.n_rules;
    let tests = tests_of(alg);
    let sb = scratch_base(job);
    let tbase = slot_base(job, WINDOW_SLOT);
    let journal_on = (params.mode & GPU_MODE_JOURNAL) != 0u;
    if (t == 0u) {
        wg_state = state[job];
    }
    let fresh = workgroupUniformLoad(&wg_state).epoch != params.epoch;
    if (fresh && (params.mode & GPU_MODE_WIDEN) != 0u) {
        // docs/ENGINE.md §1: one ACC item per token.
        let first_token = tables[params.off_starts + d];
        let n = min(tables[params.off_starts + d + 1u] - first_token, CAP_STREAM);
        // Only the items a stream has: nothing reads a slot past its stream's length, and
        // an inspection upload brings whole streams with their zero tails.
        let base = slot_base(job, 0u);
        for (var j = t; j < n; j += WG) {
            let token = tables[params.off_tokens + first_token + j];
            set_item_word(base + j, ITEM_SYMBOL, token);
            set_item_word(base + j, ITEM_TOKEN, token);
            set_item_word(base + j, ITEM_POS, j);
            set_item_word(base + j, ITEM_SPAN, 1u);
            set_item_word(base + j, ITEM_OPCODE, OP_ACC);
            set_item_word(base + j, ITEM_ARG0, tables[params.off_rows + token]);
            set_item_word(base + j, ITEM_ARG1, u32(Q16_ONE));
            set_item_word(base + j, ITEM_MOD, 0u);
            set_item_word(base + j, ITEM_MARKS, 0u);
        }
        if (t == 0u) {
            var widened = DocState();
            widened.length = n;
            wg_state = widened;
        }
        storageBarrier();
    }
    if (fresh) {
        for (var r = t; r < nr; r += WG) {
            scratch[sb + SCRATCH_INHIBIT + r] = 0u;
        }
        if (t == 0u) {
            // An uploaded stream keeps its length and journal; the rest starts over.
            var started = DocState();
            started.length = wg_state.length;
            started.journal_len = wg_state.journal_len;
            started.width = started.length;
            started.finished = u32(started.length == 0u || alg.rewrites == 0u);
            started.epoch = params.epoch;
            wg_state = started;
        }
    }
    let st = workgroupUniformLoad(&wg_state);
    let width = st.width;  // the widened length: older streams in the slots are no longer
    var len = st.length;
    var journal_len = st.journal_len;
    var steps = st.steps;
    var committed = st.committed;
    var reverted = st.reverted;
    var finished = st.finished != 0u;
    var cur = 0u;  // the slot holding S
    let last_step = min(st.next_step + params.step_count, alg.max_steps);
    var step = st.next_step;
    for (; step < last_step && !finished; step++) {
        storageBarrier();  // the previous step's scratch and items
        let sbase = slot_base(job, cur);
        let s = plain(sbase);
        // -- bids of S: threads over anchors, each matching only the rules whose first
        //    element its symbol passes (AlgRecord.off_masks); the best candidate per
        //    anchor with its extent and phrase
        if (t == 0u) {
            atomicStore(&wg_potential, 0);
            atomicStore(&wg_rewrites, 0u);
        }
        workgroupBarrier();
        var potential = 0;
        var rewrites = 0u;
        for (var p = t; p < len; p += WG) {
            let mask = alg.off_masks + item_word(sbase + p, ITEM_SYMBOL) * alg.mask_words;
            var best = 0u;
            var best_z = p;
            var best_phrase = 0u;
            var word = 0u;
            var bits = tables[mask];
            loop {
                if (bits == 0u) {
                    word += 1u;
                    if (word >= alg.mask_words) {
                        break;
                    }
                    bits = tables[mask + word];
                    continue;
                }
                let r = word * 32u + firstTrailingBit(bits);
                bits &= bits - 1u;
                let m = match_rule(s, len, p, rb + r, tests);
                if (m.ok) {
                    let bid_score = signed_score(rb + r, m.score);
                    potential += bid_score;
                    if (bid_score > 0) {
                        rewrites = 1u;
                        let key = bid_key(m.score, p, r);
                        if (key > best && scratch[sb + SCRATCH_INHIBIT + r] == 0u) {
                            best = key;
                            best_z = m.z;
                            best_phrase = m.phrase;
                        }
                    }
                }
            }
            atomicStore(&wg_slots[p], best);
            scratch[sb + SCRATCH_EXT + p] = best_z;
            scratch[sb + SCRATCH_PHRASE + p] = best_phrase;
        }
        atomicAdd(&wg_potential, potential);
        atomicOr(&wg_rewrites, rewrites);
        storageBarrier();
        workgroupBarrier();
        if (t == 0u) {
            wg.live = atomicLoad(&wg_rewrites);
            wg.p0 = atomicLoad(&wg_potential);
        }
        if (workgroupUniformLoad(&wg.live) == 0u) {
            finished = true;  // nothing to rewrite, now or later
            break;
        }
        steps += 1u;
        let p0 = wg.p0;
        // -- where each candidate's elements lie (interference, windows, apply)
        for (var p = t; p < len; p += WG) {
            let key = atomicLoad(&wg_slots[p]);
            if (key != 0u) {
                let ri = rb + key_rule(key);
                let k = min(rules[ri].length, CAP_PATTERN);
                var start = p;
                for (var e = 0u; e < k; e++) {
                    let fq = place(s, len, start, ri, e, tests);
                    scratch[sb + SCRATCH_PLACE + p * CAP_PATTERN + e] = fq.x | (fq.y << 16u);
                    start = fq.y + 1u;
                }
            }
        }
        storageBarrier();
        // -- winners: no interfering candidate has a larger key (interfering candidates'
        //    extents overlap)
        for (var p = t; p < len; p += WG) {
            let key = atomicLoad(&wg_slots[p]);
            var wins = key != 0u;
            if (wins) {
                let z = scratch[sb + SCRATCH_EXT + p];
                for (var x = p - min(p, alg.reach); x <= z && wins; x++) {
                    let other = atomicLoad(&wg_slots[x]);
                    if (x != p && other > key && scratch[sb + SCRATCH_EXT + x] >= p) {
                        wins = !interfere(sb, rb, len, x, other, p, key);
                    }
                }
            }
            scratch[sb + SCRATCH_CAND + p] = select(0u, key, wins);
        }
        storageBarrier();
        // -- ranks, up to the journal's free room; the health check's work per winner
        if (t == 0u) {
            let room = CAP_JOURNAL - journal_len;
            var rank = 0u;
            var triples = 0u;
            var wbase = 0u;  // where its window starts in the window slot (0: a new round)
            for (var p = 0u; p < len && rank < room; p++) {
                let key = scratch[sb + SCRATCH_CAND + p];
                if (key != 0u) {
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
                    scratch[w + WIN_PHRASE] = scratch[sb + SCRATCH_PHRASE + p];
                    scratch[w + WIN_WLEN] = wlen;
                    scratch[w + WIN_REMOVES] = removes;
                    scratch[w + WIN_TRIPLES] = triples;
                    triples += (z - (p - min(p, alg.reach)) + 1u) * 2u;
                    if (wbase + wlen > CAP_STREAM) {
                        wbase = 0u;  // windows overlapping in S take turns in the window slot
                    }
                    scratch[w + WIN_WBASE] = wbase;
                    wbase += wlen;
                    rank += 1u;
                }
            }
            wg.n_win = rank;
            wg.triples = triples;
        }
        // §3 step 4: every step the document is not finished, winners or not.
        for (var r = t; r < nr; r += WG) {
            let held = scratch[sb + SCRATCH_INHIBIT + r];
            if (held > 0u) {
                scratch[sb + SCRATCH_INHIBIT + r] = held - 1u;
            }
        }
        let n_win = workgroupUniformLoad(&wg.n_win);
        if (n_win == 0u) {
            continue;  // idle: every candidate inhibited, or the journal full
        }
        // -- health: delta(w) = guards of S touching w - every bid of S_w touching w;
        //    in rounds of winners whose windows fit the window slot together (one, unless
        //    windows overlap a lot): their windows, then threads over (winner, anchor,
        //    side), each matching the rules its symbol allows (side 0: S_w, every rule;
        //    side 1: S, guards)
        if (alg.guards != 0u) {
            for (var i = t; i < n_win; i += WG) {
                atomicStore(&wg_slots[i], 0u);
            }
            let total = wg.triples;
            var i0 = 0u;
            loop {
                if (t == 0u) {
                    var i1 = i0 + 1u;
                    while (i1 < n_win && scratch[winner_at(sb, i1) + WIN_WBASE] != 0u) {
                        i1 += 1u;
                    }
                    wg.round_end = i1;
                }
                let i1 = workgroupUniformLoad(&wg.round_end);
                for (var i = i0 + t; i < i1; i += WG) {
                    let w = winner_at(sb, i);
                    build_window(sbase, tbase + scratch[w + WIN_WBASE], sb, w, rb);
                }
                storageBarrier();
                let g0 = scratch[winner_at(sb, i0) + WIN_TRIPLES];
                var g1 = total;
                if (i1 < n_win) {
                    g1 = scratch[winner_at(sb, i1) + WIN_TRIPLES];
                }
                for (var g = g0 + t; g < g1; g += WG) {
                    let i = find_winner(sb, i1, WIN_TRIPLES, g);
                    let w = winner_at(sb, i);
                    let p = key_anchor(scratch[w + WIN_KEY]);
                    let z = scratch[w + WIN_EXT];
                    let removes = scratch[w + WIN_REMOVES];
                    let local = g - scratch[w + WIN_TRIPLES];
                    let x = p - min(p, alg.reach) + local / 2u;
                    let side = local % 2u;
                    var src = Src(sbase, tbase + scratch[w + WIN_WBASE] - p, p, scratch[w + WIN_WLEN], removes);
                    var n = len - removes;
                    if (side == 1u) {
                        src = s;
                        n = len;
                    }
                    // S_w's bids past z - removes do not touch w
                    if (x < n && (side == 1u || x + removes <= z)) {
                        let mask = alg.off_masks + item_word(at(src, x), ITEM_SYMBOL) * alg.mask_words;
                        var delta = 0;
                        for (var word = 0u; word < alg.mask_words; word++) {
                            var bits = tables[mask + word];
                            if (side == 1u) {
                                bits &= tables[alg.off_guards + word];
                            }
                            while (bits != 0u) {
                                let ri = rb + word * 32u + firstTrailingBit(bits);
                                bits &= bits - 1u;
                                let m = match_rule(src, n, x, ri, tests);
                                if (m.ok && m.z >= p) {
                                    let bid_score = signed_score(ri, m.score);
                                    delta += select(-bid_score, bid_score, side == 1u);
                                }
                            }
                        }
                        if (delta != 0) {
                            atomicAdd(&wg_slots[i], bitcast<u32>(delta));
                        }
                    }
                }
                storageBarrier();  // the next round's windows overwrite these
                i0 = i1;
                if (i0 >= n_win) {
                    break;
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
                var entry = JournalEntry();
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
        //    reverted rules are inhibited after the step's decrement
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
                    scratch[sb + SCRATCH_INHIBIT + key_rule(scratch[w + WIN_KEY])] = alg.inhibit_steps;
                }
            }
            wg.n_commit = kept;
            wg.removed = removed;
        }
        let n_commit = workgroupUniformLoad(&wg.n_commit);
        journal_len += n_win;
        committed += n_commit;
        reverted += n_win - n_commit;
        if (n_commit == 0u) {
            continue;  // every winner reverted: S stays
        }
        // -- apply every committed winner at once, in place: moved items and merged
        //    items aside, then threads over winners (they write different fields; the
        //    mark bits they set are gathered per item in workgroup memory), then the marks
        for (var j = t; j < len; j += WG) {
            atomicStore(&wg_slots[j], 0u);
        }
        for (var c = t; c < n_commit; c += WG) {
            stash(sbase, tbase, sb, winner_at(sb, scratch[winner_at(sb, c) + WIN_APPLY]), rb);
        }
        storageBarrier();
        for (var c = t; c < n_commit; c += WG) {
            rewrite_in_place(sbase, tbase, sb, winner_at(sb, scratch[winner_at(sb, c) + WIN_APPLY]), rb);
        }
        storageBarrier();
        for (var j = t; j < len; j += WG) {
            let bits = atomicLoad(&wg_slots[j]);
            if (bits != 0u) {
                set_item_word(sbase + j, ITEM_MARKS, item_word(sbase + j, ITEM_MARKS) | bits);
            }
        }
        storageBarrier();
        if (workgroupUniformLoad(&wg.removed) == 0u) {
            continue;  // no merge: S is rewritten where it is
        }
        // -- merges: S compacted into the other slot, each merge's item from the window slot
        let next = slot_base(job, 1u - cur);
        let new_len = len - wg.removed;
        for (var j = t; j < len; j += WG) {
            // the last committed winner anchored at or before j
            var lo = 0u;
            var hi = n_commit;
            for (var it = 0u; it < 32u && lo < hi; it++) {
                let mid = (lo + hi) / 2u;
                if (key_anchor(scratch[winner_at(sb, scratch[winner_at(sb, mid) + WIN_APPLY]) + WIN_KEY]) <= j) {
                    lo = mid + 1u;
                } else {
                    hi = mid;
                }
            }
            var dest = j;
            var source = sbase + j;
            if (lo > 0u) {
                let w = winner_at(sb, scratch[winner_at(sb, lo - 1u) + WIN_APPLY]);
                let p = key_anchor(scratch[w + WIN_KEY]);
                let removes = scratch[w + WIN_REMOVES];
                dest = j - scratch[w + WIN_SHIFT];
                if (j > p && j <= p + removes) {
                    dest = ANY;  // consumed by the merge
                } else if (j > p) {
                    dest -= removes;
                } else if (removes > 0u) {
                    source = tbase + j;  // the merged item
                }
            }
            if (dest != ANY) {
                copy_item(next + dest, source);
            }
        }
        // The freed tail, up to the widened length (the slot may hold an older stream).
        let tail = (next + new_len) * ITEM_WORDS;
        for (var word = t; word < (width - new_len) * ITEM_WORDS; word += WG) {
            items[tail + word] = 0u;
        }
        cur = 1u - cur;
        len = new_len;
    }
    storageBarrier();
    if (cur != 0u) {
        // The stream back to slot 0, where the next dispatch, the VM and the host read it.
        let from_base = slot_base(job, cur) * ITEM_WORDS;
        let to_base = slot_base(job, 0u) * ITEM_WORDS;
        for (var word = t; word < width * ITEM_WORDS; word += WG) {
            items[to_base + word] = items[from_base + word];
        }
    }
    if (t == 0u) {
        var done = DocState();
        done.length = len;
        done.steps = steps;
        done.journal_len = journal_len;
        done.committed = committed;
        done.reverted = reverted;
        done.width = width;
        done.finished = u32(finished || step >= alg.max_steps);
        done.next_step = step;
        done.epoch = params.epoch;
        state[job] = done;
    }
}
