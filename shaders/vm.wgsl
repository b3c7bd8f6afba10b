var<workgroup> wg_len: u32;
var<workgroup> tile_op: array<u32, CAP_STREAM>;
var<workgroup> tile_row: array<u32, CAP_STREAM>;
var<workgroup> tile_w: array<f32, CAP_STREAM>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.x;
    if (d >= params.n_docs) {
        return;
    }
    let job = wid.y * params.n_docs + d;
    let dim = params.dim;
    let base = slot_base(job, 0u);
    let out = job * dim;
    if (t == 0u) {
        wg_len = state[job].length;
    }
    let len = workgroupUniformLoad(&wg_len);
    for (var i = t; i < len; i += WG) {
        let x = items[base + i];
        tile_op[i] = x.opcode;
        tile_row[i] = x.arg0;
        tile_w[i] = floats[x.arg0] * (f32(x.arg1) * (1.0 / 65536.0));
    }
    workgroupBarrier();
    var sum = 0.0;
    for (var c = t; c < dim; c += WG) {
        var acc = 0.0;
        for (var j = 0u; j < len; j++) {
            acc += tile_w[j] * floats[params.off_vectors + tile_row[j] * dim + c];
        }
        embeddings[out + c] = acc;
        sum += acc * acc;
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
    for (var c = t; c < dim; c += WG) {
        var value = 0.0;
        if (norm > 0.0) {
            value = embeddings[out + c] / norm;
        }
        embeddings[out + c] = value;
    }
}
