// Bindings and helpers shared by every pass of the GPU backend (docs/GPU.md).
// Compiled after sae.layout.wgsl_prelude(caps) (ProgramItem, JournalEntry, Rule,
// Params, AlgRecord, DocState, the CAP_* / OP_* / FLAG_* constants and the bid-key
// functions) and sae.gpu.shaders' backend constants (WG, the item slots, the scratch
// layout, alg_record()).
//
// A job is one document evaluated with one Algorithm: job = alg * n_docs + doc (one
// Algorithm unless a population is evaluated). Every pass uses the same bind group
// layout, so the buffers are bound once.

@group(0) @binding(0) var<uniform> params: Params;
// Every Algorithm's compiled rules; Algorithm a's rule r is rules[alg.rule_base + r].
@group(0) @binding(1) var<storage, read> rules: array<Rule>;
// u32 words: lexicon keys, phrase_bonus, symbol_classes, symbol_rows, the AlgRecords,
// then the batch's token ids and token counts (offsets in params).
@group(0) @binding(2) var<storage, read> tables: array<u32>;
// vec4s: weights (4 a vec4, at params.off_weights), then at params.off_vectors the
// vectors followed by their transformed copies (sae.vector_table.VectorTable; rows
// padded to DIM4 vec4; transform m's copy of row r is row r + m * params.vector_rows)
@group(0) @binding(3) var<storage, read> floats: array<vec4<f32>>;
// ITEM_SLOTS slots of CAP_STREAM items per job, slot-major (params.slot_stride items
// per slot): the stream (slot 0, where it starts and ends), its other buffer, the
// winners' rewritten windows of a step (WINDOW_SLOT). Addressed by word (ITEM_WORDS
// words an item, ITEM_<FIELD> the word of a field): a struct copy would be ITEM_WORDS
// memory accesses in the code, and on a CPU adapter every access site costs.
@group(0) @binding(4) var<storage, read_write> items: array<u32>;
// SCRATCH_WORDS u32 words per job (the scratch layout); the keys pass writes bid keys here.
@group(0) @binding(5) var<storage, read_write> scratch: array<u32>;
@group(0) @binding(6) var<storage, read_write> state: array<DocState>;
@group(0) @binding(7) var<storage, read_write> journal: array<JournalEntry>;
// DIM4 vec4 per job (the first dim floats of them are the embedding).
@group(0) @binding(8) var<storage, read_write> embeddings: array<vec4<f32>>;

fn slot_base(job: u32, slot: u32) -> u32 {
    return slot * params.slot_stride + job * CAP_STREAM;
}

fn item_word(i: u32, field: u32) -> u32 {
    return items[i * ITEM_WORDS + field];
}

fn set_item_word(i: u32, field: u32, value: u32) {
    items[i * ITEM_WORDS + field] = value;
}

fn copy_item(to: u32, from_item: u32) {
    for (var f = 0u; f < ITEM_WORDS; f++) {
        items[to * ITEM_WORDS + f] = items[from_item * ITEM_WORDS + f];
    }
}

fn scratch_base(job: u32) -> u32 {
    return job * SCRATCH_WORDS;
}

// -- reading a stream -------------------------------------------------------------------

// A stream to match on: the items from item base on, or, for the stream S_w of a winner
// w applied alone (docs/ENGINE.md §3 step 5), S with w's rewritten window: position j in
// p .. p + wlen - 1 comes from item tbase + j (tbase = where the window starts - p,
// wrapping) and positions after it from S shifted by the m items a merge removes. A
// plain stream has wlen = 0 and m = 0.
struct Src {
    base: u32,
    tbase: u32,
    p: u32,
    wlen: u32,
    m: u32,
}

fn plain(base: u32) -> Src {
    return Src(base, 0u, 0u, 0u, 0u);
}

// (Branch-free: a CPU adapter runs both sides of a branch.)
fn at(src: Src, j: u32) -> u32 {
    let after = j >= src.p;
    return select(src.base + j + select(0u, src.m, after), src.tbase + j, after && j - src.p < src.wlen);
}

// Where an Algorithm's per-symbol element test bits are (AlgRecord.off_symbols, .symbol_words).
struct Tests {
    symbols: u32,
    words: u32,
}

fn tests_of(alg: AlgRecord) -> Tests {
    return Tests(alg.off_symbols, alg.symbol_words);
}

// Does element e of rule ri pass for the item at position j of a stream of n items?
// The symbol and class tests were answered per symbol on the host (sae.gpu.tables.
// element_tests: one bit per distinct test); opcode, mod, anchors and the target mark
// are packed in one word.
fn passes(src: Src, n: u32, j: u32, ri: u32, e: u32, tests: Tests) -> bool {
    if (j >= n) {
        return false;
    }
    let i = at(src, j);
    let element = params.off_elements + (ri * CAP_PATTERN + e) * ELEMENT_WORDS;
    let slot = tables[element];
    let packed = tables[element + 1u];
    let symbol = item_word(i, ITEM_SYMBOL);
    if (((tables[tests.symbols + symbol * tests.words + slot / 32u] >> (slot % 32u)) & 1u) == 0u) {
        return false;
    }
    let op = packed & 0xFFu;
    let md = (packed >> 8u) & 0xFFu;
    let flags = (packed >> 16u) & 0xFFu;
    if ((op != 0xFFu && item_word(i, ITEM_OPCODE) != op) || (md != 0xFFu && item_word(i, ITEM_MOD) != md)) {
        return false;
    }
    if (((flags & FLAG_AT_START) != 0u && j != 0u) || ((flags & FLAG_AT_END) != 0u && j + 1u != n)) {
        return false;
    }
    return (flags & FLAG_TARGET) == 0u || ((item_word(i, ITEM_MARKS) >> (packed >> 24u)) & 1u) == 0u;
}

// -1, 0 or 1 as lexicon row `row` sorts before, equal to or after the key of the k
// symbols at positions p .. p + k - 1 of a stream, padded with ANY.
fn lexicon_cmp(row: u32, src: Src, p: u32, k: u32) -> i32 {
    for (var w = 0u; w < CAP_PHRASE; w++) {
        let a = tables[params.off_lexicon + row * CAP_PHRASE + w];
        var b = ANY;
        if (w < k) {
            b = item_word(at(src, p + w), ITEM_SYMBOL);
        }
        if (a != b) {
            return select(1, -1, a < b);
        }
    }
    return 0;
}

// What a match is. The positions of its elements are only needed to rewrite it
// (place() again). No arrays, and one call site per helper in each pass: on a CPU
// adapter (Mesa lavapipe) every inlined memory access costs each invocation at entry.
struct Match {
    ok: bool,
    score: u32,  // rule score + phrase bonus
    z: u32,  // last item of the extent
    phrase: u32,  // lexicon index (merges)
}

// Element e of rule ri, its start position given: (first item, last item), or ANY when
// it cannot be placed (docs/ENGINE.md §2: the first passing item within the gap, then a
// run extended greedily, without backtracking).
fn place(src: Src, n: u32, start: u32, ri: u32, e: u32, tests: Tests) -> vec2<u32> {
    let gap = min(rules[ri].gap[e], CAP_GAP);
    let items_max = max(min(rules[ri].run[e], CAP_RUN), 1u);
    var f = ANY;
    var j = start;
    loop {
        if ((f == ANY && j > start + gap) || (f != ANY && j >= f + items_max)) {
            break;
        }
        let ok = passes(src, n, j, ri, e, tests);
        if (f == ANY) {
            if (ok) {
                f = j;
            }
        } else if (!ok) {
            break;
        }
        j += 1u;
    }
    if (f == ANY) {
        return vec2<u32>(ANY, ANY);
    }
    return vec2<u32>(f, j - 1u);
}

// Rule ri at anchor p of a stream of n items.
fn match_rule(src: Src, n: u32, p: u32, ri: u32, tests: Tests) -> Match {
    var m = Match(false, 0u, 0u, 0u);
    if (p >= n) {
        return m;
    }
    let k = min(rules[ri].length, CAP_PATTERN);
    var fq = vec2<u32>(p, p);
    var start = p;
    for (var e = 0u; e < k; e++) {
        fq = place(src, n, start, ri, e, tests);
        if (fq.x == ANY) {
            return m;
        }
        start = fq.y + 1u;
    }
    // The extent reaches the probe that ended a trailing run early.
    m.z = fq.y;
    let last_run = rules[ri].run[k - 1u];
    if (last_run > 0u && fq.y + 1u - fq.x < last_run && fq.y + 1u < n) {
        m.z = fq.y + 1u;
    }
    m.score = rules[ri].score;
    if (rules[ri].kind == RULE_MERGE) {
        // A merge has no gaps or runs: its items are p .. p + k - 1, every one a token.
        for (var e = 0u; e < k; e++) {
            if (item_word(at(src, p + e), ITEM_SYMBOL) >= params.vocab_size) {
                return m;
            }
        }
        // Binary search of the sorted, unique lexicon keys that start with the first token.
        let first = item_word(at(src, p), ITEM_SYMBOL);
        var lo = tables[params.off_lexstarts + first];
        var hi = tables[params.off_lexstarts + first + 1u];
        var found = ANY;
        for (var it = 0u; it < 32u && lo < hi; it++) {
            let mid = (lo + hi) / 2u;
            let order = lexicon_cmp(mid, src, p, k);
            if (order == 0) {
                found = mid;
                break;
            }
            if (order < 0) {
                lo = mid + 1u;
            } else {
                hi = mid;
            }
        }
        if (found == ANY) {
            return m;
        }
        m.phrase = found;
        m.score += tables[params.off_bonus + found];
    }
    m.ok = true;
    return m;
}

// arg1 * scale / 65536, rounded toward zero, clamped to +-ARG1_LIMIT (docs/ENGINE.md §4),
// exactly, from 16-bit pieces: |arg1| <= 2^24 and |scale| <= 2^22, so every partial
// product and their sum (< 2^31) fit in u32.
fn scale_q16(arg1: i32, scale: i32) -> i32 {
    let a = u32(abs(arg1));
    let b = u32(abs(scale));
    let a_hi = a >> 16u;
    let a_lo = a & 0xFFFFu;
    let mag = min(a_hi * b + a_lo * (b >> 16u) + ((a_lo * (b & 0xFFFFu)) >> 16u), u32(ARG1_LIMIT));
    if ((arg1 < 0) != (scale < 0)) {
        return -i32(mag);
    }
    return i32(mag);
}

// -- the VM's tables (float buffer layout: sae.gpu.tables.float_table) ----------------

fn dim4() -> u32 {
    return (params.dim + 3u) / 4u;
}

fn weight_of(row: u32) -> f32 {
    return floats[params.off_weights + row / 4u][row % 4u];
}

fn vector_of(row: u32, c: u32) -> vec4<f32> {
    return floats[params.off_vectors + row * dim4() + c];
}

// A bid's score with the sign the potential counts it with (guards negative).
fn signed_score(ri: u32, score: u32) -> i32 {
    if (rules[ri].kind == RULE_GUARD) {
        return -i32(score);
    }
    return i32(score);
}
