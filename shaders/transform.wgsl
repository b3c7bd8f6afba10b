// Pass "transform" (only for Algorithms with transforms): one invocation per (vec4 of
// dimensions, job): grid x over a job's vec4s, so neighbouring invocations work on the
// same job, branch alike and read neighbouring vec4s of the transform; y (and z past the
// grid's limit) over jobs. For every transform m the job's ACC items carry, adds
// T_m s_m + W_m t_m to the accumulator, s_m the sum of their weighted vectors and W_m of
// their weights (the "vm" pass left both in the sum area). Before "normalize".

@compute @workgroup_size(TRANSFORM_X, TRANSFORM_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let job = gid.z * GRID_MAX * TRANSFORM_Y + gid.y;
    let n4 = dim4();
    if (job >= params.n_docs * params.n_algs || c >= n4) {
        return;
    }
    let used = scratch[scratch_base(job) + PLAN_COUNTS + 3u];
    if (used == 0u) {
        return;
    }
    var add = vec4<f32>();
    for (var m = 0u; m < CAP_TRANSFORMS; m++) {
        if ((used & (1u << m)) != 0u) {
            let at = sum_at(job) + m * (n4 + 1u);
            add += linear(m + 1u, c, at, true) + embeddings[at + n4].x * offset(m + 1u, c);
        }
    }
    embeddings[job * n4 + c] += add;
}
