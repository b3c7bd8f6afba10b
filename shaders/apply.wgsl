// Pass "apply": one workgroup per document with a candidate bid (state.cand).
// Copies the stream to its backup, then applies the rewrite or merge
// (docs/ENGINE.md §4), reading old items from the backup. Backs up the bid keys
// too, and marks the window of anchors whose keys the rewrite may change.

var<workgroup> wg_cand: u32;
var<workgroup> wg_merge: vec3<u32>;  // (1 if merge, first position, k)

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var cand = 0u;
        if (d < params.n_docs) {
            cand = state[d].cand;
        }
        wg_cand = cand;
    }
    let cand = workgroupUniformLoad(&wg_cand);
    if (cand == 0u) {
        return;
    }
    let len = state[d].length;
    for (var j = t; j < len; j += WG) {
        items[backup_at(d, j)] = items[item_at(d, j)];
    }
    let n_keys = len * params.n_rules;
    for (var i = t; i < n_keys; i += WG) {
        keys[keys_backup_at(d) + i] = keys[keys_at(d) + i];
    }
    storageBarrier();
    if (t == 0u) {
        let p = key_anchor(cand);
        let r = key_rule(cand);
        let m = match_rule(d, len, p, r);  // reads the untouched stream
        let k = m.k;
        let bit = 1u << r;
        state[d].backup_len = len;
        // Only anchors within reach of the rewritten items get new keys.
        state[d].dirty = KEYS_WINDOW;
        state[d].win_lo = m.q[0] - min(m.q[0], params.reach);
        state[d].win_hi = m.q[k - 1u];
        state[d].shift = 0u;
        if (rules[r].kind == RULE_MERGE) {
            var x = items[backup_at(d, m.q[0])];
            var span = 0u;
            var fired = bit;
            for (var e = 0u; e < k; e++) {
                let y = items[backup_at(d, m.q[e])];
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
            items[item_at(d, m.q[0])] = x;
            state[d].length = len - (k - 1u);
            state[d].win_hi = m.q[0];
            state[d].shift = k - 1u;
            wg_merge = vec3<u32>(1u, m.q[0], k);
        } else {
            for (var e = 0u; e < k; e++) {
                var x = items[backup_at(d, m.q[min(rules[r].perm[e], k - 1u)])];
                set_fields(&x, r, e);
                x.fired |= bit;
                items[item_at(d, m.q[e])] = x;
            }
            wg_merge = vec3<u32>(0u, 0u, 1u);
        }
    }
    workgroupBarrier();
    let merge = wg_merge;
    if (merge.x == 1u) {
        // Items after the span shift left by k - 1; the freed tail becomes zeros.
        let shift = merge.z - 1u;
        let new_len = len - shift;
        var zero: ProgramItem;
        for (var j = merge.y + 1u + t; j < len; j += WG) {
            if (j < new_len) {
                items[item_at(d, j)] = items[backup_at(d, j + shift)];
            } else {
                items[item_at(d, j)] = zero;
            }
        }
    }
}
