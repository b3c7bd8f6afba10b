// Pass "vm": the Semantic Forth VM (docs/ENGINE.md §5) on the lists "plan" made. One
// invocation per (job, block of VM_BLOCK vec4 = 4 * VM_BLOCK dimensions): grid x over
// jobs, y over blocks. Every item's contribution to acc is a sum, so the two lists run
// one after the other (§5 allows reassociating the float sums): the ACC items, then the
// stack items in program order, each dimension with its own stack as the reference has
// it. Every x is a row of the float table, transformed or not. Writes the unnormalized
// accumulator.

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = gid.x;
    if (job >= params.n_docs * params.n_algs) {
        return;
    }
    let n4 = dim4();
    let c0 = gid.y * VM_BLOCK;  // first vec4 of the block
    let sb = scratch_base(job);
    var acc = array<vec4<f32>, VM_BLOCK>();
    // ACC items: two loads and the vector
    let n_acc = scratch[sb + PLAN_COUNTS];
    for (var i = 0u; i < n_acc; i++) {
        let row = scratch[sb + PLAN_ACC + 2u * i];
        let w = bitcast<f32>(scratch[sb + PLAN_ACC + 2u * i + 1u]);
        let v = params.off_vectors + row * n4 + c0;
        for (var b = 0u; b < VM_BLOCK; b++) {
            acc[b] += w * floats[v + b];
        }
    }
    // stack items, in program order
    let n_stack = scratch[sb + PLAN_COUNTS + 1u];
    var stack = array<array<vec4<f32>, VM_BLOCK>, CAP_STACK>();
    var sp = 0u;
    for (var i = 0u; i < n_stack; i++) {
        let op = scratch[sb + PLAN_STACK + 3u * i];
        let row = scratch[sb + PLAN_STACK + 3u * i + 1u];
        let w = bitcast<f32>(scratch[sb + PLAN_STACK + 3u * i + 2u]);
        var v = array<vec4<f32>, VM_BLOCK>();
        for (var b = 0u; b < VM_BLOCK; b++) {
            v[b] = w * vector_of(row, c0 + b);
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
            // PUSH on a full stack, ADD, MUL and EMIT on an empty one: as ACC
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
}
