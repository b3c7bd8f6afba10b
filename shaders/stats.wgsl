// Pass "stats": one workgroup adds up what the annealing did to the batch (committed and
// reverted rewrites, the most steps a document was live) into the DocState after the
// jobs' (the last of the state buffer), which the host reads with the embeddings: the
// journals stay on the device.

var<workgroup> wg_committed: atomic<u32>;
var<workgroup> wg_reverted: atomic<u32>;
var<workgroup> wg_steps: atomic<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32) {
    // Workgroup memory is not relied on to start at zero (lavapipe keeps it between dispatches).
    if (t == 0u) {
        atomicStore(&wg_committed, 0u);
        atomicStore(&wg_reverted, 0u);
        atomicStore(&wg_steps, 0u);
    }
    workgroupBarrier();
    var committed = 0u;
    var reverted = 0u;
    var steps = 0u;
    for (var job = t; job < params.n_docs * params.n_algs; job += WG) {
        committed += state[job].committed;
        reverted += state[job].reverted;
        steps = max(steps, state[job].steps);
    }
    atomicAdd(&wg_committed, committed);
    atomicAdd(&wg_reverted, reverted);
    atomicMax(&wg_steps, steps);
    workgroupBarrier();
    if (t == 0u) {
        var totals = DocState();
        totals.committed = atomicLoad(&wg_committed);
        totals.reverted = atomicLoad(&wg_reverted);
        totals.steps = atomicLoad(&wg_steps);
        state[arrayLength(&state) - 1u] = totals;
    }
}
