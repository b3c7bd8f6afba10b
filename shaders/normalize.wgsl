// Pass "normalize": one workgroup per document; embedding = acc / ||acc||_2, or the
// zero vector when the norm is 0.

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    let dim = params.dim;
    let base = d * dim;
    let live = d < params.n_docs;
    var sum = 0.0;
    if (live) {
        for (var c = t; c < dim; c += WG) {
            let a = embeddings[base + c];
            sum += a * a;
        }
    }
    partial[t] = sum;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (t < half) {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    let norm = sqrt(partial[0]);
    if (live) {
        for (var c = t; c < dim; c += WG) {
            var value = 0.0;
            if (norm > 0.0) {
                value = embeddings[base + c] / norm;
            }
            embeddings[base + c] = value;
        }
    }
}
