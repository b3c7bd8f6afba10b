// Pass "potential": one workgroup per document. The potential is the sum of the
// scores of all bids (every rule, inhibited or not). Clears state.dirty: the keys
// and the potential now describe the current stream.

var<workgroup> wg_dirty: u32;
var<workgroup> wg_sum: atomic<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var dirty = 0u;
        if (d < params.n_docs) {
            dirty = state[d].dirty;
        }
        wg_dirty = dirty;
        atomicStore(&wg_sum, 0);
    }
    if (workgroupUniformLoad(&wg_dirty) == 0u) {
        return;
    }
    let base = keys_at(d);
    let n = state[d].length * params.n_rules;
    var sum = 0;
    for (var i = t; i < n; i += WG) {
        sum += i32(key_score(keys[base + i]));
    }
    atomicAdd(&wg_sum, sum);
    workgroupBarrier();
    if (t == 0u) {
        state[d].potential = atomicLoad(&wg_sum);
        state[d].dirty = 0u;
    }
}
