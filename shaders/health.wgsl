// Pass "health": one workgroup per document that attempted winners this step
// (docs/ENGINE.md §3, steps 5-6), run on the tentative stream's keys and score sums.
// Each winner w (anchor p, last item l, score s, D, m) compares the score sum of its
// old window, anchors max(p - reach, 0) ..= l of the stream the step started from
// (summed by "select"), with that of its new window, anchors
// max(p - D - reach, 0) ..= l - D - m of the tentative stream: it commits iff
// old - new <= s + tolerance. Journals every winner in rank order. If any reverted,
// inhibits their rules and leaves only the committed winners' records (D recounted)
// for "apply" to rebuild the stream from the backup.

struct HealthJob {
    n: u32,  // winners
    p0: i32,
    step: u32,
    slot: u32,  // journal entry of rank 0
}

var<workgroup> wg_job: HealthJob;
var<workgroup> wg_reverted: atomic<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var job: HealthJob;
        if (d < params.n_docs) {
            job.n = state[d].n_win;
            job.p0 = state[d].p0;
            job.step = state[d].step;
            job.slot = d * CAP_JOURNAL + state[d].journal_len;
        }
        wg_job = job;
        atomicStore(&wg_reverted, 0u);
    }
    let job = workgroupUniformLoad(&wg_job);
    if (job.n == 0u) {
        return;
    }
    let sums = scratch_at(d) + SCRATCH_SUM;
    for (var i = t; i < job.n; i += WG) {
        let rec = winner_at(d, i);
        let key = keys[rec + WIN_KEY];
        let p = key_anchor(key);
        let r = key_rule(key);
        let score = key_score(key);
        let at = p - keys[rec + WIN_SHIFT];  // the anchor in the tentative stream
        let end = keys[rec + WIN_LAST] - keys[rec + WIN_SHIFT] - removed_by(r);
        var new_sum = 0u;
        for (var x = at - min(at, params.reach); x <= end; x++) {
            new_sum += keys[sums + x];
        }
        let delta = i32(keys[rec + WIN_SUM]) - i32(new_sum);
        var entry: JournalEntry;
        entry.step = job.step;
        entry.rank = i;
        entry.rule = r;
        entry.pos = p;
        entry.score = score;
        entry.potential_before = job.p0;
        entry.potential_after = job.p0 - delta;
        entry.outcome = COMMITTED;
        if (delta > i32(score + params.tolerance)) {
            entry.outcome = REVERTED;
            atomicAdd(&wg_reverted, 1u);
        }
        journal[job.slot + i] = entry;
    }
    storageBarrier();  // the journal entries
    workgroupBarrier();  // wg_reverted
    if (t == 0u) {
        state[d].journal_len += job.n;
        if (atomicLoad(&wg_reverted) > 0u) {
            // Keep the committed winners' records, in order, with D among them only.
            var kept = 0u;
            var shift = 0u;
            for (var i = 0u; i < job.n; i++) {
                let entry = journal[job.slot + i];
                if (entry.outcome == REVERTED) {
                    state[d].inhibit[entry.rule] = params.inhibit_steps;
                    continue;
                }
                let src = winner_at(d, i);
                let dst = winner_at(d, kept);
                keys[dst + WIN_KEY] = keys[src + WIN_KEY];
                keys[dst + WIN_LAST] = keys[src + WIN_LAST];
                keys[dst + WIN_SHIFT] = shift;
                shift += removed_by(entry.rule);
                kept += 1u;
            }
            state[d].n_apply = kept;
            state[d].apply = APPLY_COMMITTED;
        }
    }
}
