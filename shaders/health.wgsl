// Pass "health": one workgroup per document that attempted a bid (docs/ENGINE.md §3,
// steps 4-5). Commit iff P0 - P1 <= score + tolerance; otherwise restore the stream
// and its bid keys from the backup and inhibit the rule. Journals the attempt either way, and makes
// the next-best bid the candidate after a reverted best bid.

var<workgroup> wg_restore: u32;  // items to copy back from the backup (0 = none)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var restore = 0u;
        if (d < params.n_docs && state[d].cand != 0u) {
            let cand = state[d].cand;
            let score = key_score(cand);
            let rule = key_rule(cand);
            let p0 = state[d].p0;
            let p1 = state[d].potential;
            let commit = p0 - p1 <= i32(score + params.tolerance);
            var entry: JournalEntry;
            entry.step = state[d].step;
            entry.attempt = state[d].attempt;
            entry.rule = rule;
            entry.pos = key_anchor(cand);
            entry.score = score;
            entry.potential_before = p0;
            entry.potential_after = p1;
            entry.outcome = COMMITTED;
            var next_cand = 0u;
            if (!commit) {
                entry.outcome = REVERTED;
                restore = state[d].backup_len;
                state[d].length = restore;
                state[d].inhibit[rule] = params.inhibit_steps;
                // The restored stream's keys come back from their backup.
                state[d].potential = p0;
                state[d].dirty = KEYS_CURRENT;
                if (state[d].attempt == 0u) {
                    next_cand = state[d].second;
                }
            }
            let slot = state[d].journal_len;
            if (slot < 2u * CAP_STEPS) {
                journal[d * 2u * CAP_STEPS + slot] = entry;
                state[d].journal_len = slot + 1u;
            }
            state[d].cand = next_cand;
            state[d].attempt = 1u;
        }
        wg_restore = restore;
    }
    let restore = workgroupUniformLoad(&wg_restore);
    for (var j = t; j < restore; j += WG) {
        items[item_at(d, j)] = items[backup_at(d, j)];
    }
    let n_keys = restore * params.n_rules;
    for (var i = t; i < n_keys; i += WG) {
        keys[keys_at(d) + i] = keys[keys_backup_at(d) + i];
    }
}
