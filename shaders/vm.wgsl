// Pass "vm": the Semantic Forth VM and the normalization (docs/ENGINE.md §5). One
// workgroup per job; thread t runs the program for dimensions t, t + WG, ... with its own
// accumulator and its own column of the data stack (registers), so each dimension's
// float operations happen in the reference's order. The program is staged in tiles of
// WG items in workgroup memory (opcode, vector row, transform, weight computed once).
// An item with a transform (mod >= 1) uses T[mod-1] . vectors[row] + t[mod-1]; thread t
// computes its dimensions' rows of that product. Then ||acc||_2 is reduced in workgroup
// memory and the embedding written as acc / norm (zeros for a zero norm).

var<workgroup> wg_len: u32;
var<workgroup> tile_op: array<u32, WG>;
var<workgroup> tile_row: array<u32, WG>;
var<workgroup> tile_mod: array<u32, WG>;
var<workgroup> tile_w: array<f32, WG>;
var<workgroup> partial: array<f32, WG>;

// Component c of the vector item j of the tile contributes before its weight.
fn component(j: u32, c: u32, dim: u32) -> f32 {
    let row = tile_row[j];
    let md = tile_mod[j];
    if (md == 0u) {
        return floats[params.off_vectors + row * dim + c];
    }
    // [T | t] of transform md - 1, row c: T[c, :] then t[c].
    let tr = params.off_transforms + ((md - 1u) * dim + c) * (dim + 1u);
    let v = params.off_vectors + row * dim;
    var x = 0.0;
    for (var i = 0u; i < dim; i++) {
        x += floats[tr + i] * floats[v + i];
    }
    return x + floats[tr + dim];
}

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
    let tiles = (len + WG - 1u) / WG;
    let chunks = (dim + WG - 1u) / WG;
    var sum = 0.0;
    for (var chunk = 0u; chunk < chunks; chunk++) {
        let c = chunk * WG + t;
        let live = c < dim;
        var acc = 0.0;
        var stack: array<f32, CAP_STACK>;
        var sp = 0u;
        for (var tile = 0u; tile < tiles; tile++) {
            if (chunk == 0u || tiles > 1u) {
                // (re)load the tile: once when the whole program fits one
                workgroupBarrier();
                let i = tile * WG + t;
                if (i < len) {
                    let x = items[base + i];
                    tile_op[t] = x.opcode;
                    tile_row[t] = x.arg0;
                    tile_mod[t] = x.mod_;
                    tile_w[t] = floats[x.arg0] * (f32(x.arg1) * (1.0 / 65536.0));
                }
                workgroupBarrier();
            }
            let count = min(WG, len - tile * WG);
            for (var j = 0u; live && j < count; j++) {
                let op = tile_op[j];
                if (op == OP_NOP) {
                    continue;
                }
                let v = tile_w[j] * component(j, c, dim);
                switch op {
                    case OP_ACC: {
                        acc += v;
                    }
                    case OP_PUSH: {
                        if (sp < CAP_STACK) {
                            stack[sp] = v;
                            sp += 1u;
                        } else {
                            acc += v;
                        }
                    }
                    case OP_ADD: {
                        if (sp > 0u) {
                            stack[sp - 1u] += v;
                        } else {
                            acc += v;
                        }
                    }
                    case OP_MUL: {
                        if (sp > 0u) {
                            stack[sp - 1u] *= v;
                        } else {
                            acc += v;
                        }
                    }
                    case OP_EMIT: {
                        if (sp > 0u) {
                            sp -= 1u;
                            acc += stack[sp] + v;
                        } else {
                            acc += v;
                        }
                    }
                    default: {}
                }
            }
        }
        if (live) {
            for (var i = 0u; i < sp; i++) {
                acc += stack[i];
            }
            embeddings[out + c] = acc;
            sum += acc * acc;
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
    for (var c = t; c < dim; c += WG) {
        var value = 0.0;
        if (norm > 0.0) {
            value = embeddings[out + c] / norm;
        }
        embeddings[out + c] = value;
    }
}
