// Pass "vm": the Semantic Forth VM (docs/ENGINE.md §5). One invocation per (job, block
// of VM_BLOCK vec4 = 4 * VM_BLOCK dimensions): grid x over jobs, y over blocks. Each
// dimension runs the program in item order with its own accumulator and stack, as the
// reference does. An ACC item with a transform is linear in its vector, so those are
// summed per transform into the sum area (with their total weight) and the "transform"
// pass applies each transform once to its sum (§5 allows the reassociation; the numpy
// path does the same); an item on the stack applies its transform itself. Writes the
// unnormalized accumulator; "normalize" divides by the norm.

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = gid.x;
    if (job >= params.n_docs * params.n_algs) {
        return;
    }
    let n4 = dim4();
    let c0 = gid.y * VM_BLOCK;  // first vec4 of the block
    let len = state[job].length;
    let base = slot_base(job, 0u);
    let sums = sum_at(job);
    var acc: array<vec4<f32>, VM_BLOCK>;
    var stack: array<array<vec4<f32>, VM_BLOCK>, CAP_STACK>;
    var sp = 0u;
    var used = 0u;  // bit m: an ACC item carries transform m + 1
    for (var j = 0u; j < len; j++) {
        let op = item_word(base + j, ITEM_OPCODE);
        if (op == OP_NOP) {
            continue;
        }
        let md = item_word(base + j, ITEM_MOD);
        let row = item_word(base + j, ITEM_ARG0);
        let w = weight_of(row) * (f32(bitcast<i32>(item_word(base + j, ITEM_ARG1))) * (1.0 / 65536.0));
        if (op == OP_ACC && md > 0u) {
            // summed here, transformed once by the "transform" pass
            let at = sums + (md - 1u) * (n4 + 1u);
            if ((used & (1u << (md - 1u))) == 0u) {
                used |= 1u << (md - 1u);
                for (var b = 0u; b < VM_BLOCK && c0 + b < n4; b++) {
                    embeddings[at + c0 + b] = vec4<f32>();
                }
                if (gid.y == 0u) {
                    embeddings[at + n4] = vec4<f32>();
                }
            }
            for (var b = 0u; b < VM_BLOCK && c0 + b < n4; b++) {
                embeddings[at + c0 + b] += w * vector_of(row, c0 + b);
            }
            if (gid.y == 0u) {
                embeddings[at + n4].x += w;
            }
            continue;
        }
        var v: array<vec4<f32>, VM_BLOCK>;
        for (var b = 0u; b < VM_BLOCK; b++) {
            var x = vector_of(row, c0 + b);
            if (md > 0u) {
                x = linear(md, c0 + b, params.off_vectors + row * n4, false) + offset(md, c0 + b);
            }
            v[b] = w * x;
        }
        let has = sp > 0u;
        let top = max(sp, 1u) - 1u;
        if (op == OP_PUSH && sp < CAP_STACK) {
            stack[sp] = v;
            sp += 1u;
        } else if (op == OP_ADD && has) {
            for (var b = 0u; b < VM_BLOCK; b++) {
                stack[top][b] += v[b];
            }
        } else if (op == OP_MUL && has) {
            for (var b = 0u; b < VM_BLOCK; b++) {
                stack[top][b] *= v[b];
            }
        } else if (op == OP_EMIT && has) {
            for (var b = 0u; b < VM_BLOCK; b++) {
                acc[b] += stack[top][b] + v[b];
            }
            sp -= 1u;
        } else {
            // ACC, and the stack opcodes on a full or empty stack
            for (var b = 0u; b < VM_BLOCK; b++) {
                acc[b] += v[b];
            }
        }
    }
    for (var i = 0u; i < sp; i++) {
        for (var b = 0u; b < VM_BLOCK; b++) {
            acc[b] += stack[i][b];
        }
    }
    for (var b = 0u; b < VM_BLOCK; b++) {
        if (c0 + b < n4) {
            embeddings[job * n4 + c0 + b] = acc[b];
        }
    }
    if (gid.y == 0u) {
        scratch[scratch_base(job) + VM_USED] = used;
    }
}
