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
    // Divided by its largest component first, so that the squares neither under- nor
    // overflow f32 (docs/ENGINE.md §5); an acc that overflowed is normalized as its sums give it.
    var peak = 0.0;
    for (var c = 0u; c < n4; c++) {
        let a = abs(embeddings[at + c]);
        peak = max(peak, max(max(a.x, a.y), max(a.z, a.w)));
    }
    var scale = 1.0;
    if (peak > 0.0 && peak <= 3.40282347e+38) {
        scale = peak;
    }
    var sum = 0.0;
    for (var c = 0u; c < n4; c++) {
        let a = embeddings[at + c] / scale;
        sum += dot(a, a);
    }
    let norm = sqrt(sum);
    for (var c = 0u; c < n4; c++) {
        var value = vec4<f32>();
        if (norm > 0.0) {
            value = embeddings[at + c] / scale / norm;
        }
        embeddings[at + c] = value;
    }
}
