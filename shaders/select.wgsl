// Pass "select": one workgroup per document (docs/ENGINE.md §3, steps 1-4).
// A document with no bid is finished for good. Otherwise:
//   candidates: per anchor p, cand[p] = the largest key at p of a rule with
//     inhibit == 0, and last[p] = the last item it matches (scratch);
//   winners: cand[p] wins iff no other candidate whose span overlaps [p, last[p]]
//     has a larger key; such a candidate is anchored in [p - reach, last[p]];
//   ranks: winners by anchor, as many as the journal has room for, go to the winner
//     records with D (positions the merges left of them remove) and the score sum of
//     their old window;
// then every non-zero inhibition counter is decremented.

struct SelectJob {
    live: u32,
    len: u32,
    eligible: u32,  // bit r: rule r is not inhibited
}

var<workgroup> wg_job: SelectJob;
// bit p: cand[p] wins
var<workgroup> wg_wins: array<atomic<u32>, (CAP_STREAM + 31u) / 32u>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (t == 0u) {
        var job: SelectJob;
        if (d < params.n_docs && state[d].live != 0u) {
            state[d].n_win = 0u;
            state[d].n_apply = 0u;
            state[d].apply = APPLY_NONE;
            if (state[d].potential == 0) {
                state[d].live = 0u;  // no bid at all: finished
            } else {
                job.live = 1u;
                job.len = state[d].length;
                for (var r = 0u; r < params.n_rules; r++) {
                    if (state[d].inhibit[r] == 0u) {
                        job.eligible |= 1u << r;
                    }
                }
            }
        }
        wg_job = job;
    }
    let job = workgroupUniformLoad(&wg_job);
    if (job.live == 0u) {
        return;
    }
    let n_rules = params.n_rules;
    let len = job.len;
    let scratch = scratch_at(d);
    let cand = scratch + SCRATCH_CAND;
    let last = scratch + SCRATCH_LAST;
    for (var w = t; w < (len + 31u) / 32u; w += WG) {
        atomicStore(&wg_wins[w], 0u);
    }
    // Candidates.
    for (var p = t; p < len; p += WG) {
        let at = keys_at(d) + p * n_rules;
        var best = 0u;
        for (var r = 0u; r < n_rules; r++) {
            let key = keys[at + r];
            if (((job.eligible >> r) & 1u) != 0u && key > best) {
                best = key;
            }
        }
        var end = p;
        if (best != 0u) {
            let m = match_rule(item_at(d, 0u), len, p, key_rule(best));
            end = m.q[m.k - 1u];
        }
        keys[cand + p] = best;
        keys[last + p] = end;
    }
    storageBarrier();  // cand and last of every anchor
    workgroupBarrier();  // wg_wins cleared
    // Winners.
    for (var p = t; p < len; p += WG) {
        let key = keys[cand + p];
        if (key == 0u) {
            continue;
        }
        let end = keys[last + p];
        var wins = true;
        for (var x = p - min(p, params.reach); x <= end; x++) {
            let other = keys[cand + x];
            // A candidate left of p overlaps iff its span reaches p; one right of p
            // and at most at `end` always does.
            if (x != p && other > key && (x > p || keys[last + x] >= p)) {
                wins = false;
                break;
            }
        }
        if (wins) {
            atomicOr(&wg_wins[p / 32u], 1u << (p % 32u));
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        // Ranks, the journal's room, D and the old windows, in anchor order.
        let room = CAP_JOURNAL - state[d].journal_len;
        let sums = scratch + SCRATCH_SUM;
        var rank = 0u;
        var shift = 0u;
        for (var w = 0u; w < (len + 31u) / 32u && rank < room; w++) {
            var bits = atomicLoad(&wg_wins[w]);
            while (bits != 0u && rank < room) {
                let p = w * 32u + countTrailingZeros(bits);
                bits &= bits - 1u;
                let key = keys[cand + p];
                let end = keys[last + p];
                var sum = 0u;
                for (var x = p - min(p, params.reach); x <= end; x++) {
                    sum += keys[sums + x];
                }
                let rec = winner_at(d, rank);
                keys[rec + WIN_KEY] = key;
                keys[rec + WIN_LAST] = end;
                keys[rec + WIN_SHIFT] = shift;
                keys[rec + WIN_SUM] = sum;
                shift += removed_by(key_rule(key));
                rank += 1u;
            }
        }
        for (var r = 0u; r < n_rules; r++) {
            if (state[d].inhibit[r] > 0u) {
                state[d].inhibit[r] -= 1u;
            }
        }
        let step = state[d].next_step;
        state[d].step = step;
        state[d].next_step = step + 1u;
        state[d].p0 = state[d].potential;
        state[d].n_win = rank;
        state[d].n_apply = rank;
        if (rank > 0u) {
            state[d].apply = APPLY_ALL;
        }
    }
}
