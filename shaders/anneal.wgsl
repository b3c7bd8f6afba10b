// Pass "anneal": one invocation per job (document x Algorithm) runs the whole annealing
// loop of docs/ENGINE.md §3 for its document, step after step, and stops when the
// document is finished: no host round trip, no dispatch per step and no barrier (the
// jobs of a workgroup share nothing). A step is a sequence of phases in one loop, so
// the matcher is compiled once (each inlined copy of it would cost every invocation on
// a CPU adapter, see common.wgsl):
//   phase 0     bids of S, every (anchor, rule): the potential P0, whether a rewrite or
//               merge bids at all (else the document is finished), and per anchor the
//               best candidate (largest key of a rewrite or merge rule not inhibited)
//               with its extent; then the winners in anchor order (no candidate whose
//               extent overlaps has a larger key), up to the journal's free room, and
//               the inhibition counters decremented;
//   phase i     winner i-1: its rewrite applied alone, written at its own positions of
//               the window slot (extents are disjoint, so the windows coexist); when the
//               Algorithm has guards, the guard bids of S and every bid of S_w near it
//               (S read through the window, Src) give delta; it commits iff
//               delta <= score + tolerance, and is journaled;
//   apply       the committed winners at once: the next stream in the other slot;
//               reverted rules inhibited.
// A job can first widen its document from the batch's token ids (GPU_MODE_WIDEN).

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

// Winner w's rewrite applied alone to S (at sbase), written at its own positions of the
// window slot (at tbase): the extent's items for a rewrite, the merged item for a merge.
// The elements' first and last items go to the winner record (at w), not to local arrays.
fn build_window(sbase: u32, tbase: u32, len: u32, p: u32, ri: u32, w: u32) {
    let k = min(rules[ri].length, CAP_PATTERN);
    let bit = 1u << rules[ri].mark;
    let merge = rules[ri].kind == RULE_MERGE;
    let z = scratch[w + WIN_EXT];
    for (var j = p; j <= z; j++) {
        copy_item(tbase + j, sbase + j);
    }
    var acted = k;  // elements whose items the actions touch
    if (merge) {
        // §4 merge: the k items become one at p; then element 0's actions.
        var span = 0u;
        var marks = bit;
        for (var e = 0u; e < k; e++) {
            span += item_word(sbase + p + e, ITEM_SPAN);
            marks |= item_word(sbase + p + e, ITEM_MARKS);
        }
        let symbol = params.vocab_size + scratch[w + WIN_PHRASE];
        let x = tbase + p;
        set_item_word(x, ITEM_SYMBOL, symbol);
        set_item_word(x, ITEM_SPAN, span);
        set_item_word(x, ITEM_OPCODE, OP_ACC);
        set_item_word(x, ITEM_ARG0, tables[params.off_rows + symbol]);
        set_item_word(x, ITEM_ARG1, u32(Q16_ONE));
        set_item_word(x, ITEM_MOD, 0u);
        set_item_word(x, ITEM_MARKS, marks);
        scratch[w + WIN_FIRST] = p;
        scratch[w + WIN_LAST] = p;
        acted = 1u;
    } else {
        let s = plain(sbase);
        var start = p;
        for (var e = 0u; e < k; e++) {
            let fq = place(s, len, start, ri, e);
            scratch[w + WIN_FIRST + e] = fq.x;
            scratch[w + WIN_LAST + e] = fq.y;
            start = fq.y + 1u;
        }
        for (var e = 0u; e < k; e++) {
            let source = scratch[w + WIN_LAST + min(rules[ri].perm[e], k - 1u)];
            copy_item(tbase + scratch[w + WIN_LAST + e], sbase + source);
        }
    }
    for (var e = 0u; e < acted; e++) {
        let targeted = (rules[ri].flags[e] & FLAG_TARGET) != 0u;
        for (var j = scratch[w + WIN_FIRST + e]; j <= scratch[w + WIN_LAST + e]; j++) {
            act(tbase + j, ri, e);
            if (targeted) {
                set_item_word(tbase + j, ITEM_MARKS, item_word(tbase + j, ITEM_MARKS) | bit);
            }
        }
    }
}

fn winner_at(sb: u32, i: u32) -> u32 {
    return sb + SCRATCH_WINNERS + i * WINNER_WORDS;
}

// Each invocation anneals documents gid.x, gid.x + (invocations in x), ... of Algorithm
// gid.y: a GPU dispatches one invocation per document; a CPU adapter a few per core, so
// each pays its entry cost once for many documents.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var d = gid.x; d < params.n_docs; d += groups.x * WG) {
        anneal_job(d, gid.y);
    }
}

fn anneal_job(d: u32, a: u32) {
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
        for (var j = 0u; j < CAP_STREAM; j++) {
            var token = 0u;
            var row = 0u;
            if (j < n) {
                token = tables[params.off_tokens + d * CAP_STREAM + j];
                row = tables[params.off_rows + token];
            }
            let on = u32(j < n);
            set_item_word(base + j, ITEM_SYMBOL, token);
            set_item_word(base + j, ITEM_TOKEN, token);
            set_item_word(base + j, ITEM_POS, j * on);
            set_item_word(base + j, ITEM_SPAN, on);
            set_item_word(base + j, ITEM_OPCODE, OP_ACC * on);
            set_item_word(base + j, ITEM_ARG0, row);
            set_item_word(base + j, ITEM_ARG1, u32(Q16_ONE) * on);
            set_item_word(base + j, ITEM_MOD, 0u);
            set_item_word(base + j, ITEM_MARKS, 0u);
        }
        var fresh: DocState;
        fresh.length = n;
        state[job] = fresh;
    }
    let first_len = state[job].length;
    var len = first_len;
    var journal_len = state[job].journal_len;
    var cur = 0u;  // the slot holding the stream S
    var steps = 0u;
    var committed = 0u;
    var reverted = 0u;
    let max_steps = select(0u, alg.max_steps, alg.rewrites != 0u && len > 0u);
    if (max_steps > 0u) {
        for (var r = 0u; r < nr; r++) {
            scratch[sb + SCRATCH_INHIBIT + r] = 0u;
        }
    }

    for (var step = 0u; step < max_steps; step++) {
        let sbase = slot_base(job, cur);
        var p0 = 0;
        var live = false;
        var n_win = 0u;
        var n_commit = 0u;
        for (var ph = 0u; ph <= n_win; ph++) {
            // What this phase matches: anchors [x_lo, x_hi), sides x rules.
            var x_lo = 0u;
            var x_hi = len;
            var sides = 1u;
            var w = 0u;
            var p = 0u;
            var z = 0u;
            var wlen = 0u;
            var removes = 0u;
            if (ph > 0u) {
                w = winner_at(sb, ph - 1u);
                let ri = rb + key_rule(scratch[w + WIN_KEY]);
                p = key_anchor(scratch[w + WIN_KEY]);
                z = scratch[w + WIN_EXT];
                wlen = z - p + 1u;
                if (rules[ri].kind == RULE_MERGE) {
                    removes = min(rules[ri].length, CAP_PATTERN) - 1u;
                    wlen = 1u;
                }
                scratch[w + WIN_WLEN] = wlen;
                scratch[w + WIN_REMOVES] = removes;
                build_window(sbase, tbase, len, p, ri, w);
                // Bids anchored before p - reach never reach p. Without guards, no check.
                x_lo = p - min(p, alg.reach);
                x_hi = select(x_lo, z + 1u, alg.guards != 0u);
                sides = 2u;
            }
            let sw = Src(sbase, tbase, p, wlen, removes);
            var delta = 0;
            for (var x = x_lo; x < x_hi; x++) {
                var best = 0u;
                var best_z = x;
                var best_phrase = 0u;
                for (var i = 0u; i < sides * nr; i++) {
                    // phase 0: S; phase i: side 0 = S_w (every rule), side 1 = S (guards)
                    let side = i / nr;
                    let r = i - side * nr;
                    let ri = rb + r;
                    var src = plain(sbase);
                    var n = len;
                    var wanted = true;
                    if (ph > 0u) {
                        if (side == 0u) {
                            // S_w's bids past z - removes do not touch w
                            wanted = x + removes <= z;
                            src = sw;
                            n = len - removes;
                        } else {
                            wanted = rules[ri].kind == RULE_GUARD;
                        }
                    }
                    var m = Match(false, 0u, 0u, 0u);
                    if (wanted) {
                        m = match_rule(src, n, x, ri);
                    }
                    if (m.ok) {
                        let signed = signed_score(ri, m.score);
                        if (ph > 0u) {
                            if (m.z >= p) {
                                delta += select(-signed, signed, side == 1u);
                            }
                        } else {
                            p0 += signed;
                            if (signed > 0) {
                                live = true;
                                let key = bid_key(m.score, x, r);
                                if (key > best && scratch[sb + SCRATCH_INHIBIT + r] == 0u) {
                                    best = key;
                                    best_z = m.z;
                                    best_phrase = m.phrase;
                                }
                            }
                        }
                    }
                }
                if (ph == 0u) {
                    scratch[sb + SCRATCH_CAND + x] = best;
                    scratch[sb + SCRATCH_EXT + x] = best_z;
                    scratch[sb + SCRATCH_PHRASE + x] = best_phrase;
                }
            }
            if (ph > 0u) {
                // Judge winner ph - 1 and journal it, in rank order.
                let key = scratch[w + WIN_KEY];
                let score = key_score(key);
                var outcome = REVERTED;
                if (delta <= i32(score + alg.tolerance)) {
                    outcome = COMMITTED;
                    n_commit += 1u;
                }
                scratch[w + WIN_OUTCOME] = outcome;
                if (journal_on) {
                    var entry: JournalEntry;
                    entry.step = step;
                    entry.rank = ph - 1u;
                    entry.rule = key_rule(key);
                    entry.pos = p;
                    entry.score = score;
                    entry.potential_before = p0;
                    entry.potential_after = p0 - delta;
                    entry.outcome = outcome;
                    journal[job * CAP_JOURNAL + journal_len + ph - 1u] = entry;
                }
                continue;
            }
            if (!live) {
                break;  // finished: nothing to rewrite, now or later
            }
            steps += 1u;
            // The winners, ranked by anchor, up to the journal's free room.
            let room = CAP_JOURNAL - journal_len;
            for (var q = 0u; q < len && n_win < room; q++) {
                let key = scratch[sb + SCRATCH_CAND + q];
                if (key == 0u) {
                    continue;
                }
                let ext = scratch[sb + SCRATCH_EXT + q];
                var wins = true;
                for (var o = q - min(q, alg.reach); o <= ext; o++) {
                    if (o != q && scratch[sb + SCRATCH_CAND + o] > key && scratch[sb + SCRATCH_EXT + o] >= q) {
                        wins = false;
                        break;
                    }
                }
                if (wins) {
                    let rec = winner_at(sb, n_win);
                    scratch[rec + WIN_KEY] = key;
                    scratch[rec + WIN_EXT] = ext;
                    scratch[rec + WIN_PHRASE] = scratch[sb + SCRATCH_PHRASE + q];
                    n_win += 1u;
                }
            }
            // §3 step 4: every step the document is not finished, winners or not.
            for (var r = 0u; r < nr; r++) {
                let held = scratch[sb + SCRATCH_INHIBIT + r];
                if (held > 0u) {
                    scratch[sb + SCRATCH_INHIBIT + r] = held - 1u;
                }
            }
        }
        if (!live) {
            break;
        }
        // Reverted rules are inhibited after the step's decrement.
        for (var i = 0u; i < n_win; i++) {
            let w = winner_at(sb, i);
            if (scratch[w + WIN_OUTCOME] == REVERTED) {
                scratch[sb + SCRATCH_INHIBIT + key_rule(scratch[w + WIN_KEY])] = alg.inhibit_steps;
            }
        }
        journal_len += n_win;
        committed += n_commit;
        reverted += n_win - n_commit;
        if (n_commit == 0u) {
            continue;  // idle, or every winner reverted: S stays
        }
        // -- apply every committed winner at once: S and the windows -> the other slot.
        // One copy: item j comes from the window slot inside a committed winner's window,
        // else from S; the items a merge consumed are skipped.
        let next = slot_base(job, 1u - cur);
        var c = 0u;  // the next committed winner (n_win: none)
        while (c < n_win && scratch[winner_at(sb, c) + WIN_OUTCOME] != COMMITTED) {
            c += 1u;
        }
        var out = 0u;
        var j = 0u;
        while (j < len) {
            var source = sbase + j;
            var skip = 0u;
            if (c < n_win) {
                let w = winner_at(sb, c);
                let p = key_anchor(scratch[w + WIN_KEY]);
                let end = p + scratch[w + WIN_WLEN];
                if (j >= p) {
                    source = tbase + j;
                    if (j + 1u == end) {
                        skip = scratch[w + WIN_REMOVES];
                        c += 1u;
                        while (c < n_win && scratch[winner_at(sb, c) + WIN_OUTCOME] != COMMITTED) {
                            c += 1u;
                        }
                    }
                }
            }
            copy_item(next + out, source);
            out += 1u;
            j += 1u + skip;
        }
        // The freed tail (up to the first stream's length: the slot may hold an older one).
        for (var word = out * ITEM_WORDS; word < first_len * ITEM_WORDS; word++) {
            items[next * ITEM_WORDS + word] = 0u;
        }
        cur = 1u - cur;
        len = out;
    }
    if (cur != 0u) {
        // The final stream back to slot 0, where the VM and the host read it.
        let last = slot_base(job, cur);
        let to = slot_base(job, 0u);
        for (var j = 0u; j < first_len; j++) {
            copy_item(to + j, last + j);
        }
    }
    var done: DocState;
    done.length = len;
    done.steps = steps;
    done.journal_len = journal_len;
    done.committed = committed;
    done.reverted = reverted;
    state[job] = done;
}
