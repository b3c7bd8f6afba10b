// Pass "plan": one invocation per job reads its final program once and sorts the items
// the VM will run into two lists in the scratch area (the annealing is done with it):
// ACC items (the row of their x in the float table, weight) and stack items (opcode,
// row, weight) in program order. An item's x is a row of the float table whether or not
// it carries a transform (transform m's copy of row r is row r + m * vector_rows), so the
// "vm" pass runs each list in its own loop and an ACC item costs two loads and its
// vector. Only a PUSH fills the stack: in a program without one, ADD, MUL and EMIT meet
// an empty stack and act as ACC (§5), so they go to the ACC list (the numpy VM takes the
// same shortcut).

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = gid.x;
    if (job >= params.n_docs * params.n_algs) {
        return;
    }
    let len = state[job].length;
    let base = slot_base(job, 0u);
    let sb = scratch_base(job);
    var pushes = false;
    for (var j = 0u; j < len; j++) {
        pushes = pushes || item_word(base + j, ITEM_OPCODE) == OP_PUSH;
    }
    var n_acc = 0u;
    var n_stack = 0u;
    for (var j = 0u; j < len; j++) {
        let op = item_word(base + j, ITEM_OPCODE);
        if (op == OP_NOP) {
            continue;
        }
        let arg0 = item_word(base + j, ITEM_ARG0);
        let row = arg0 + item_word(base + j, ITEM_MOD) * params.vector_rows;
        let w = weight_of(arg0) * (f32(bitcast<i32>(item_word(base + j, ITEM_ARG1))) * (1.0 / 65536.0));
        if (op == OP_ACC || !pushes) {
            scratch[sb + PLAN_ACC + 2u * n_acc] = row;
            scratch[sb + PLAN_ACC + 2u * n_acc + 1u] = bitcast<u32>(w);
            n_acc += 1u;
        } else {
            let at = sb + PLAN_STACK + 3u * n_stack;
            scratch[at] = op;
            scratch[at + 1u] = row;
            scratch[at + 2u] = bitcast<u32>(w);
            n_stack += 1u;
        }
    }
    scratch[sb + PLAN_COUNTS] = n_acc;
    scratch[sb + PLAN_COUNTS + 1u] = n_stack;
}
