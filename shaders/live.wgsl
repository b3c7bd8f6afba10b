// Pass "live": before each anneal dispatch, one workgroup lists the jobs still to anneal
// (a new batch's, and those not finished) and writes the dispatch's size, so that the
// anneal dispatch (indirect) runs a workgroup only for them: documents that finished in
// an earlier dispatch cost nothing, on a GPU and on lavapipe, and no host round trip
// decides it. The list is at params.live_base in the scratch buffer: the count (= the
// dispatch's x), 1, 1, then the jobs.

var<workgroup> wg_counts: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32) {
    let jobs = params.n_docs * params.n_algs;
    let per_thread = (jobs + WG - 1u) / WG;
    let first = t * per_thread;
    let last = min(first + per_thread, jobs);
    var count = 0u;
    for (var job = first; job < last; job++) {
        if (state[job].epoch != params.epoch || state[job].finished == 0u) {
            count += 1u;
        }
    }
    wg_counts[t] = count;
    workgroupBarrier();
    var at = 0u;
    for (var i = 0u; i < t; i++) {
        at += wg_counts[i];
    }
    for (var job = first; job < last; job++) {
        if (state[job].epoch != params.epoch || state[job].finished == 0u) {
            scratch[params.live_base + LIVE_JOBS + at] = job;
            at += 1u;
        }
    }
    if (t == WG - 1u) {
        scratch[params.live_base] = at;
        scratch[params.live_base + 1u] = 1u;
        scratch[params.live_base + 2u] = 1u;
    }
}
