// Pass "bids": one thread per (position, rule) of a document (y = document).
// Writes the bid key of every anchor p < max_len of every document whose stream
// changed since its keys were last computed (state.dirty); 0 = no bid.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.y;
    let n_rules = params.n_rules;
    if (d >= params.n_docs || gid.x >= params.max_len * n_rules) {
        return;
    }
    if (state[d].dirty == 0u) {
        return;
    }
    let p = gid.x / n_rules;
    let r = gid.x % n_rules;
    let m = match_rule(d, state[d].length, p, r);
    var key = 0u;
    if (m.ok) {
        key = bid_key(m.score, p, r);
    }
    keys[keys_at(d) + gid.x] = key;
}
