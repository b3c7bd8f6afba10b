// Pass "vm": the Semantic Forth VM and the normalization (docs/ENGINE.md §5), one
// invocation per job, four dimensions at a time (vec4; rows of the vectors are padded
// to DIM4 vec4). Each dimension runs the program in item order with its own accumulator
// and stack, as the reference does. An ACC item with a transform is linear in its
// vector, so those are summed per transform first and the transform is applied once to
// the sum (§5 allows the reassociation; the numpy path does the same); an item on the
// stack applies its transform itself. Then acc / ||acc||_2, or zeros for a zero norm.
// Like "anneal", an invocation loops over jobs (one each on a GPU, many on a CPU adapter).

fn dim4() -> u32 {
    return (params.dim + 3u) / 4u;
}

fn weight_of(row: u32) -> f32 {
    return floats[params.off_weights + row / 4u][row % 4u];
}

fn vector_of(row: u32, c: u32) -> vec4<f32> {
    return floats[params.off_vectors + row * dim4() + c];
}

// Dimensions 4c .. 4c + 3 of T x for transform md (1-based), x the DIM4 vec4 from x_at
// on, in the float table (a vector) or in the embeddings buffer (the VM's sum area).
fn linear(md: u32, c: u32, x_at: u32, from_sum: bool) -> vec4<f32> {
    let n4 = dim4();
    let tr = params.off_transforms + (md - 1u) * (params.dim + 1u) * n4;
    var out = vec4<f32>();
    for (var k = 0u; k < 4u && 4u * c + k < params.dim; k++) {
        let row = tr + (4u * c + k) * n4;
        var acc = 0.0;
        for (var i = 0u; i < n4; i++) {
            var x: vec4<f32>;
            if (from_sum) {
                x = embeddings[x_at + i];
            } else {
                x = floats[x_at + i];
            }
            acc += dot(floats[row + i], x);
        }
        out[k] = acc;
    }
    return out;
}

// Dimensions 4c .. 4c + 3 of the offset t of transform md (1-based).
fn offset(md: u32, c: u32) -> vec4<f32> {
    let n4 = dim4();
    return floats[params.off_transforms + ((md - 1u) * (params.dim + 1u) + params.dim) * n4 + c];
}

fn vm_job(job: u32) {
    let n4 = dim4();
    let len = state[job].length;
    let base = slot_base(job, 0u);
    let sb = scratch_base(job);
    let out = job * n4;
    let sum_at = params.sum_base + job * n4;
    // Each item once: opcode and transform, vector row, weight w (in the scratch area).
    var transforms_used = 0u;  // bit m: an ACC item carries transform m + 1
    for (var j = 0u; j < len; j++) {
        let op = item_word(base + j, ITEM_OPCODE);
        let md = item_word(base + j, ITEM_MOD);
        let row = item_word(base + j, ITEM_ARG0);
        let w = weight_of(row) * (f32(bitcast<i32>(item_word(base + j, ITEM_ARG1))) * (1.0 / 65536.0));
        scratch[sb + VM_CODE + j] = op | (md << 8u);
        scratch[sb + VM_ROW + j] = row;
        scratch[sb + VM_WEIGHT + j] = bitcast<u32>(w);
        if (op == OP_ACC && md > 0u) {
            transforms_used |= 1u << min(md - 1u, 31u);
        }
    }
    var sum = 0.0;
    for (var c = 0u; c < n4; c++) {
        var acc = vec4<f32>();
        var stack: array<vec4<f32>, CAP_STACK>;
        var sp = 0u;
        for (var j = 0u; j < len; j++) {
            let code = scratch[sb + VM_CODE + j];
            let op = code & 0xFFu;
            let md = code >> 8u;
            if (op == OP_NOP || (op == OP_ACC && md > 0u)) {
                continue;  // a NOP does nothing; a transformed ACC is summed below
            }
            let row = scratch[sb + VM_ROW + j];
            var x = vector_of(row, c);
            if (md > 0u) {
                x = linear(md, c, params.off_vectors + row * n4, false) + offset(md, c);
            }
            let v = bitcast<f32>(scratch[sb + VM_WEIGHT + j]) * x;
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
        for (var i = 0u; i < sp; i++) {
            acc += stack[i];
        }
        embeddings[out + c] = acc;
    }
    // The ACC items with a transform: T (sum of w x) + (sum of w) t, per transform.
    for (var m = 0u; transforms_used != 0u && m < 32u; m++) {
        if ((transforms_used & (1u << m)) == 0u) {
            continue;
        }
        var total_w = 0.0;
        for (var c = 0u; c < n4; c++) {
            embeddings[sum_at + c] = vec4<f32>();
        }
        for (var j = 0u; j < len; j++) {
            if (scratch[sb + VM_CODE + j] != (OP_ACC | ((m + 1u) << 8u))) {
                continue;
            }
            let w = bitcast<f32>(scratch[sb + VM_WEIGHT + j]);
            let row = scratch[sb + VM_ROW + j];
            total_w += w;
            for (var c = 0u; c < n4; c++) {
                embeddings[sum_at + c] += w * vector_of(row, c);
            }
        }
        for (var c = 0u; c < n4; c++) {
            embeddings[out + c] += linear(m + 1u, c, sum_at, true) + total_w * offset(m + 1u, c);
        }
    }
    for (var c = 0u; c < n4; c++) {
        let a = embeddings[out + c];
        sum += dot(a, a);
    }
    let norm = sqrt(sum);
    for (var c = 0u; c < n4; c++) {
        var value = vec4<f32>();
        if (norm > 0.0) {
            value = embeddings[out + c] / norm;
        }
        embeddings[out + c] = value;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var d = gid.x; d < params.n_docs; d += groups.x * WG) {
        vm_job(gid.y * params.n_docs + d);
    }
}
