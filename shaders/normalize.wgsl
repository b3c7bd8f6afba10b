// Pass "normalize": one invocation per job; embedding = acc / ||acc||_2, or the zero
// vector when the norm is 0 (docs/ENGINE.md §5).

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = gid.x;
    if (job >= params.n_docs * params.n_algs) {
        return;
    }
    let n4 = dim4();
    let at = job * n4;
    var sum = 0.0;
    for (var c = 0u; c < n4; c++) {
        let a = embeddings[at + c];
        sum += dot(a, a);
    }
    let norm = sqrt(sum);
    for (var c = 0u; c < n4; c++) {
        var value = vec4<f32>();
        if (norm > 0.0) {
            value = embeddings[at + c] / norm;
        }
        embeddings[at + c] = value;
    }
}
