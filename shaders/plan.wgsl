// Pass "plan": one invocation per job reads its final program once and sorts the items
// the VM will run into three lists in the scratch area (the annealing is done with it):
// plain ACC items (row, weight), stack items (opcode | transform << 8, row, weight) in
// program order, and ACC items with a transform (transform, row, weight). The "vm" pass
// then runs each list in its own loop, so a program of plain ACC items, the common
// case, costs two loads an item and its vector.

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = gid.x;
    if (job >= params.n_docs * params.n_algs) {
        return;
    }
    let len = state[job].length;
    let base = slot_base(job, 0u);
    let sb = scratch_base(job);
    var n_acc = 0u;
    var n_stack = 0u;
    var n_tf = 0u;
    var used = 0u;  // bit m: an ACC item carries transform m + 1
    for (var j = 0u; j < len; j++) {
        let op = item_word(base + j, ITEM_OPCODE);
        let md = item_word(base + j, ITEM_MOD);
        let row = item_word(base + j, ITEM_ARG0);
        let w = weight_of(row) * (f32(bitcast<i32>(item_word(base + j, ITEM_ARG1))) * (1.0 / 65536.0));
        var at = sb + PLAN_ACC + 2u * n_acc;
        var first = row;
        if (op == OP_ACC && md > 0u) {
            at = sb + PLAN_TF + 3u * n_tf;
            first = md;
            n_tf += 1u;
            used |= 1u << (md - 1u);
        } else if (op != OP_ACC) {
            at = sb + PLAN_STACK + 3u * n_stack;
            first = op | (md << 8u);
            n_stack += 1u;
        } else {
            n_acc += 1u;
        }
        if (op != OP_NOP) {
            scratch[at] = first;
            if (op == OP_ACC && md == 0u) {
                scratch[at + 1u] = bitcast<u32>(w);
            } else {
                scratch[at + 1u] = row;
                scratch[at + 2u] = bitcast<u32>(w);
            }
        } else {
            n_stack -= 1u;  // a NOP is nothing: undo its count
        }
    }
    scratch[sb + PLAN_COUNTS] = n_acc;
    scratch[sb + PLAN_COUNTS + 1u] = n_stack;
    scratch[sb + PLAN_COUNTS + 2u] = n_tf;
    scratch[sb + PLAN_COUNTS + 3u] = used;
}
