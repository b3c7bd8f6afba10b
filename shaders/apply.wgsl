// Pass "apply": one workgroup per document with winners to apply (state.apply).
// APPLY_ALL backs the stream up and applies every winner of the step (the tentative
// stream); APPLY_COMMITTED rebuilds the stream from the backup with only the winners
// "health" committed (it leaves their records first, with D recounted). Either way
// the new stream is built from the backup (docs/ENGINE.md §4): winners' spans are
// disjoint, so every item moves left by the positions the merges before it remove
// (each record's D), items a merge consumes are dropped, and each winner's rewritten
// items, built from the backup, land at their matched positions minus D. The freed
// tail becomes zeros. Marks the keys for "bids" to recompute.

struct ApplyJob {
    mode: u32,
    len: u32,  // length of the stream the winners were selected on (the backup's)
    n: u32,  // winner records to apply
    removed: u32,  // positions they remove in all
}

var<workgroup> wg_job: ApplyJob;

fn set_fields(x: ptr<function, ProgramItem>, r: u32, e: u32) {
    let op = rules[r].set_opcode[e];
    if (op != KEEP) {
        (*x).opcode = u32(op);
    }
    let a0 = rules[r].set_arg0[e];
    if (a0 != KEEP) {
        (*x).arg0 = u32(a0);
    }
    let a1 = rules[r].set_arg1[e];
    if (a1 != KEEP) {
        (*x).arg1 = a1;
    }
}

// Where backup item j goes: (1 if a merge consumes it, positions it moves left).
// The winner records are sorted by anchor: find the last one anchored at or before j.
fn place(d: u32, n: u32, j: u32) -> vec2<u32> {
    var lo = 0u;
    var hi = n;
    for (var it = 0u; it < 32u && lo < hi; it++) {
        let mid = (lo + hi) / 2u;
        if (key_anchor(keys[winner_at(d, mid) + WIN_KEY]) <= j) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    if (lo == 0u) {
        return vec2<u32>(0u, 0u);
    }
    let rec = winner_at(d, lo - 1u);
    let key = keys[rec + WIN_KEY];
    let shift = keys[rec + WIN_SHIFT];
    let removed = removed_by(key_rule(key));
    if (j <= keys[rec + WIN_LAST]) {
        return vec2<u32>(select(0u, 1u, removed > 0u && j > key_anchor(key)), shift);
    }
    return vec2<u32>(0u, shift + removed);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var job: ApplyJob;
        if (d < params.n_docs) {
            job.mode = state[d].apply;
            if (job.mode == APPLY_ALL) {
                state[d].backup_len = state[d].length;
            }
            job.len = state[d].backup_len;
            job.n = state[d].n_apply;
            if (job.n > 0u) {
                let rec = winner_at(d, job.n - 1u);
                job.removed = keys[rec + WIN_SHIFT] + removed_by(key_rule(keys[rec + WIN_KEY]));
            }
        }
        wg_job = job;
    }
    let job = workgroupUniformLoad(&wg_job);
    if (job.mode == APPLY_NONE) {
        return;
    }
    let len = job.len;
    if (job.mode == APPLY_ALL) {
        for (var j = t; j < len; j += WG) {
            items[backup_at(d, j)] = items[item_at(d, j)];
        }
        storageBarrier();
    }
    // Items no winner rewrites: moved left past the merges before them (an item that
    // does not move is already in place in the tentative stream).
    for (var j = t; j < len; j += WG) {
        let where_to = place(d, job.n, j);
        if (where_to.x == 0u && (where_to.y != 0u || job.mode == APPLY_COMMITTED)) {
            items[item_at(d, j - where_to.y)] = items[backup_at(d, j)];
        }
    }
    let new_len = len - job.removed;
    var zero: ProgramItem;
    for (var j = new_len + t; j < len; j += WG) {
        items[item_at(d, j)] = zero;
    }
    storageBarrier();
    // The winners' items, overwriting the copies above.
    let backup = backup_at(d, 0u);
    for (var i = t; i < job.n; i += WG) {
        let rec = winner_at(d, i);
        let key = keys[rec + WIN_KEY];
        let shift = keys[rec + WIN_SHIFT];
        let r = key_rule(key);
        let m = match_rule(backup, len, key_anchor(key), r);  // as selected
        let k = m.k;
        let bit = 1u << r;
        if (rules[r].kind == RULE_MERGE) {
            var x = items[backup + m.q[0]];
            var span = 0u;
            var fired = bit;
            for (var e = 0u; e < k; e++) {
                let y = items[backup + m.q[e]];
                span += y.span;
                fired |= y.fired;
            }
            x.symbol = params.vocab_size + m.phrase;
            x.span = span;
            x.opcode = OP_ACC;
            x.arg0 = tables[params.off_rows + x.symbol];
            x.arg1 = Q16_ONE;
            x.fired = fired;
            set_fields(&x, r, 0u);
            items[item_at(d, m.q[0] - shift)] = x;
        } else {
            for (var e = 0u; e < k; e++) {
                var x = items[backup + m.q[min(rules[r].perm[e], k - 1u)]];
                set_fields(&x, r, e);
                x.fired |= bit;
                items[item_at(d, m.q[e] - shift)] = x;
            }
        }
    }
    if (t == 0u) {
        state[d].length = new_len;
        state[d].apply = APPLY_NONE;
        state[d].dirty = 1u;
    }
}
