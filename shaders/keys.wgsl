// Pass "keys": the bid key of every anchor and rule of the current streams (0 = no bid),
// for Backend.bids() (`sae compare`'s first stage): not part of embedding. One workgroup
// per document of Algorithm 0, from document params.key_first on; the keys of the d-th
// go to scratch[d * CAP_STREAM * n_rules ..], (position, rule) order. Anchors at and
// after a document's length are left unwritten (the host reads them as 0).

var<workgroup> wg_len: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let doc = params.key_first + wid.x;
    if (doc >= params.n_docs) {
        return;
    }
    if (t == 0u) {
        wg_len = state[doc].length;
    }
    let len = workgroupUniformLoad(&wg_len);
    let alg = alg_record(0u);
    let nr = alg.n_rules;
    let s = plain(slot_base(doc, 0u));
    let out = wid.x * CAP_STREAM * nr;
    for (var i = t; i < len * nr; i += WG) {
        let p = i / nr;
        let r = i - p * nr;
        let m = match_rule(s, len, p, alg.rule_base + r, tests_of(alg));
        var key = 0u;
        if (m.ok) {
            key = bid_key(m.score, p, r);
        }
        scratch[out + i] = key;
    }
}
