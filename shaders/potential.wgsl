// Pass "potential": one workgroup per document whose keys were just recomputed
// (state.dirty). Writes, per anchor, the sum of the scores of its bids (every rule,
// inhibited or not) to the scratch area, where "select" and "health" sum them over
// windows; the potential is their total. Clears state.dirty: the keys, the sums and
// the potential now describe the current stream.

var<workgroup> wg_len: u32;
var<workgroup> wg_dirty: u32;
var<workgroup> wg_sum: atomic<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var dirty = 0u;
        if (d < params.n_docs) {
            dirty = state[d].dirty;
            wg_len = state[d].length;
        }
        wg_dirty = dirty;
        atomicStore(&wg_sum, 0);
    }
    if (workgroupUniformLoad(&wg_dirty) == 0u) {
        return;
    }
    let len = wg_len;
    let n_rules = params.n_rules;
    let sums = scratch_at(d) + SCRATCH_SUM;
    var total = 0;
    for (var p = t; p < len; p += WG) {
        let at = keys_at(d) + p * n_rules;
        var sum = 0u;
        for (var r = 0u; r < n_rules; r++) {
            sum += key_score(keys[at + r]);
        }
        keys[sums + p] = sum;
        total += i32(sum);
    }
    atomicAdd(&wg_sum, total);
    workgroupBarrier();
    if (t == 0u) {
        state[d].potential = atomicLoad(&wg_sum);
        state[d].dirty = 0u;
    }
}
