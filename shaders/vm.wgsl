// Pass "vm": the Semantic Forth VM (docs/ENGINE.md §5). One thread per (dimension,
// document): every dimension runs the same program with its own accumulator and
// its own column of the data stack (in registers), so the float operations of
// each dimension happen in exactly the order of the reference. Writes the
// unnormalized accumulator; the "normalize" pass divides by the norm.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let d = gid.y;
    let dim = params.dim;
    if (d >= params.n_docs || c >= dim) {
        return;
    }
    let len = state[d].length;
    var acc = 0.0;
    var stack: array<f32, CAP_STACK>;
    var sp = 0u;
    for (var i = 0u; i < len; i++) {
        let x = items[item_at(d, i)];
        if (x.opcode == OP_NOP) {
            continue;
        }
        let row = x.arg0;
        let w = floats[row] * (f32(x.arg1) * (1.0 / 65536.0));
        let v = w * floats[params.off_vectors + row * dim + c];
        switch x.opcode {
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
            case OP_ACC: {
                acc += v;
            }
            default: {}
        }
    }
    for (var i = 0u; i < sp; i++) {
        acc += stack[i];
    }
    embeddings[d * dim + c] = acc;
}
