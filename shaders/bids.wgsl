// Pass "bids": one workgroup per document whose keys are not current (state.dirty:
// the initial stream, or one an "apply" pass just rewrote). Its threads stride over
// the (position, rule) pairs of the stream and write the bid key of every anchor
// p < length and rule r (0 = no bid). Keys at and after the length are never read.

var<workgroup> wg_len: u32;  // items to bid on, 0 = keys current (or no document)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var len = 0u;
        if (d < params.n_docs && state[d].dirty != 0u) {
            len = state[d].length;
        }
        wg_len = len;
    }
    let len = workgroupUniformLoad(&wg_len);
    let n_rules = params.n_rules;
    let stream = item_at(d, 0u);
    let base = keys_at(d);
    for (var i = t; i < len * n_rules; i += WG) {
        let p = i / n_rules;
        let r = i % n_rules;
        let m = match_rule(stream, len, p, r);
        var key = 0u;
        if (m.ok) {
            key = bid_key(m.score, p, r);
        }
        keys[base + i] = key;
    }
}
