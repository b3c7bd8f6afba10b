// Pass "bids": one workgroup per document whose keys are not current (state.dirty);
// its threads stride over the (position, rule) pairs of the stream and write the bid
// key of every anchor p < length and rule r (0 = no bid). After a rewrite only the
// anchors in state.win_lo..win_hi are matched again: anchors before the window
// cannot reach the rewritten items, and anchors after it see the same items as
// before, `shift` positions further right (a merge), so their keys are the backed-up
// keys re-encoded with the new anchor. Keys at and after the length are never read.

struct BidsJob {
    mode: u32,
    len: u32,
    lo: u32,
    hi: u32,
    shift: u32,
}

var<workgroup> wg_job: BidsJob;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var job: BidsJob;
        if (d < params.n_docs) {
            job.mode = state[d].dirty;
            job.len = state[d].length;
            job.lo = state[d].win_lo;
            job.hi = state[d].win_hi;
            job.shift = state[d].shift;
        }
        wg_job = job;
    }
    let job = workgroupUniformLoad(&wg_job);
    if (job.mode == KEYS_CURRENT) {
        return;
    }
    let n_rules = params.n_rules;
    let base = keys_at(d);
    for (var i = t; i < job.len * n_rules; i += WG) {
        let p = i / n_rules;
        let r = i % n_rules;
        if (job.mode == KEYS_WINDOW && (p < job.lo || p > job.hi)) {
            if (p > job.hi && job.shift > 0u) {
                let old = keys[keys_backup_at(d) + i + job.shift * n_rules];
                var moved = 0u;
                if (old != 0u) {
                    moved = bid_key(key_score(old), p, r);
                }
                keys[base + i] = moved;
            }
            continue;
        }
        let m = match_rule(d, job.len, p, r);
        var key = 0u;
        if (m.ok) {
            key = bid_key(m.score, p, r);
        }
        keys[base + i] = key;
    }
}
