// Pass "select": one workgroup per document (docs/ENGINE.md §3, steps 1-3).
// A document with no bid is finished for good. Otherwise: best = the largest key of
// a rule with inhibit == 0, next = the largest such key of another rule; then every
// non-zero inhibition counter is decremented and best becomes the candidate.

var<workgroup> wg_live: u32;
var<workgroup> wg_best: atomic<u32>;
var<workgroup> wg_next: atomic<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var is_live = 0u;
        if (d < params.n_docs) {
            is_live = state[d].live;
            if (is_live != 0u && state[d].potential == 0) {
                is_live = 0u;
                state[d].live = 0u;
                state[d].cand = 0u;
            }
        }
        wg_live = is_live;
        atomicStore(&wg_best, 0u);
        atomicStore(&wg_next, 0u);
    }
    if (workgroupUniformLoad(&wg_live) == 0u) {
        return;
    }
    let n_rules = params.n_rules;
    let base = keys_at(d);
    let n = state[d].length * n_rules;
    for (var i = t; i < n; i += WG) {
        let key = keys[base + i];
        if (key != 0u && state[d].inhibit[i % n_rules] == 0u) {
            atomicMax(&wg_best, key);
        }
    }
    workgroupBarrier();
    let best = atomicLoad(&wg_best);
    let best_rule = key_rule(best);
    for (var i = t; i < n; i += WG) {
        let key = keys[base + i];
        let r = i % n_rules;
        if (key != 0u && r != best_rule && state[d].inhibit[r] == 0u) {
            atomicMax(&wg_next, key);
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        for (var r = 0u; r < n_rules; r++) {
            if (state[d].inhibit[r] > 0u) {
                state[d].inhibit[r] -= 1u;
            }
        }
        let step = state[d].next_step;
        state[d].step = step;
        state[d].next_step = step + 1u;
        state[d].p0 = state[d].potential;
        state[d].best = best;
        state[d].second = atomicLoad(&wg_next);
        state[d].cand = best;
        state[d].attempt = 0u;
    }
}
