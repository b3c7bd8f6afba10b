// Pass "vm": the Semantic Forth VM (docs/ENGINE.md §5). One thread per (dimension,
// document); a workgroup covers WG dimensions of one document. Every dimension runs
// the same program with its own accumulator and its own column of the data stack
// (in registers), so the float operations of each dimension happen in exactly the
// order of the reference. The workgroup loads the program in tiles of WG items into
// workgroup memory, with each item's weight w computed once. Writes the unnormalized
// accumulator; the "normalize" pass divides by the norm.

var<workgroup> wg_len: u32;
var<workgroup> tile_op: array<u32, WG>;
var<workgroup> tile_row: array<u32, WG>;
var<workgroup> tile_w: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d = wid.y;
    let dim = params.dim;
    let c = wid.x * WG + t;
    if (t == 0u) {
        var len = 0u;
        if (d < params.n_docs) {
            len = state[d].length;
        }
        wg_len = len;
    }
    let len = workgroupUniformLoad(&wg_len);
    let live = c < dim;
    var acc = 0.0;
    var stack: array<f32, CAP_STACK>;
    var sp = 0u;
    for (var base = 0u; base < len; base += WG) {
        let i = base + t;
        if (i < len) {
            let at = item_at(d, i);
            let row = items[at].arg0;
            tile_op[t] = items[at].opcode;
            tile_row[t] = row;
            tile_w[t] = floats[row] * (f32(items[at].arg1) * (1.0 / 65536.0));
        }
        workgroupBarrier();
        let count = min(WG, len - base);
        for (var j = 0u; live && j < count; j++) {
            let op = tile_op[j];
            if (op == OP_NOP) {
                continue;
            }
            let v = tile_w[j] * floats[params.off_vectors + tile_row[j] * dim + c];
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
        workgroupBarrier();
    }
    if (live) {
        for (var i = 0u; i < sp; i++) {
            acc += stack[i];
        }
        embeddings[d * dim + c] = acc;
    }
}
