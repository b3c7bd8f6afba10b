// Bindings and helpers shared by every pass of the GPU backend (docs/GPU.md).
// Compiled after sae.layout.wgsl_prelude(caps): ProgramItem, JournalEntry, Rule,
// Params, DocState and the CAP_* / OP_* constants come from there.
//
// Every pass uses the same bind group layout, so the buffers are bound once.
// Items of document d live at d * CAP_STREAM; its backup at params.backup_base + that.
// Bid keys of document d, position p, rule r live at (d * CAP_STREAM + p) * n_rules + r;
// their backup (taken by "apply") at (params.backup_base + d * CAP_STREAM + p) * n_rules + r.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rules: array<Rule>;
// lexicon keys, phrase_bonus, symbol_classes, symbol_rows (offsets in params)
@group(0) @binding(2) var<storage, read> tables: array<u32>;
// weights (at 0), then vectors (at params.off_vectors), row-major
@group(0) @binding(3) var<storage, read> floats: array<f32>;
@group(0) @binding(4) var<storage, read_write> items: array<ProgramItem>;
@group(0) @binding(5) var<storage, read_write> keys: array<u32>;
@group(0) @binding(6) var<storage, read_write> state: array<DocState>;
@group(0) @binding(7) var<storage, read_write> journal: array<JournalEntry>;
@group(0) @binding(8) var<storage, read_write> embeddings: array<f32>;

// WG, the threads per workgroup of every pass, comes from sae.gpu.device.WORKGROUP.

fn item_at(d: u32, p: u32) -> u32 {
    return d * CAP_STREAM + p;
}

fn backup_at(d: u32, p: u32) -> u32 {
    return params.backup_base + d * CAP_STREAM + p;
}

fn keys_at(d: u32) -> u32 {
    return d * CAP_STREAM * params.n_rules;
}

fn keys_backup_at(d: u32) -> u32 {
    return (params.backup_base + d * CAP_STREAM) * params.n_rules;
}

// state.dirty: the bid keys of the stream are current, must all be recomputed, or
// only those of anchors win_lo..win_hi (a rewrite's reach), later ones being the
// backed-up keys of the anchor `shift` further right.
const KEYS_CURRENT: u32 = 0u;
const KEYS_ALL: u32 = 1u;
const KEYS_WINDOW: u32 = 2u;

// The packed bid key (docs/ENGINE.md §2): highest score, then lowest anchor, then rule.
fn bid_key(score: u32, p: u32, r: u32) -> u32 {
    return (score << 16u) | (0xFFFFu - ((p << 5u) | r));
}

fn key_score(key: u32) -> u32 {
    return key >> 16u;
}

fn key_anchor(key: u32) -> u32 {
    return (0xFFFFu - (key & 0xFFFFu)) >> 5u;
}

fn key_rule(key: u32) -> u32 {
    return (0xFFFFu - (key & 0xFFFFu)) & 31u;
}

// Does pattern element e of rule r match item j of document d (of length len)?
fn element_matches(d: u32, len: u32, j: u32, r: u32, e: u32) -> bool {
    if (j >= len) {
        return false;
    }
    let x = items[item_at(d, j)];
    let op = rules[r].opcode[e];
    if (op != ANY && x.opcode != op) {
        return false;
    }
    let sym = rules[r].symbol[e];
    if (sym != ANY && x.symbol != sym) {
        return false;
    }
    let cls = rules[r].classes[e];
    if (cls != 0u && (tables[params.off_classes + x.symbol] & cls) == 0u) {
        return false;
    }
    return true;
}

// -1, 0 or 1 as lexicon row `row` sorts before, equal to or after `key`.
fn lexicon_cmp(row: u32, key: array<u32, CAP_PHRASE>) -> i32 {
    for (var w = 0u; w < CAP_PHRASE; w++) {
        let a = tables[params.off_lexicon + row * CAP_PHRASE + w];
        if (a < key[w]) {
            return -1;
        }
        if (a > key[w]) {
            return 1;
        }
    }
    return 0;
}

struct Match {
    ok: bool,
    k: u32,
    q: array<u32, CAP_PATTERN>,  // matched positions
    score: u32,  // rule score + phrase bonus
    phrase: u32,  // lexicon index (merge rules)
}

// Rule r at anchor p of document d (docs/ENGINE.md §2): greedy, leftmost.
fn match_rule(d: u32, len: u32, p: u32, r: u32) -> Match {
    var m: Match;
    m.ok = false;
    if (p >= len || !element_matches(d, len, p, r, 0u)) {
        return m;
    }
    if (((items[item_at(d, p)].fired >> r) & 1u) != 0u) {
        return m;
    }
    let k = min(rules[r].length, CAP_PATTERN);
    m.k = k;
    m.q[0] = p;
    var prev = p;
    for (var e = 1u; e < k; e++) {
        let gap = min(rules[r].gap[e], CAP_GAP);
        var found = false;
        for (var g = 0u; g <= gap; g++) {
            let j = prev + 1u + g;
            if (element_matches(d, len, j, r, e)) {
                found = true;
                prev = j;
                break;
            }
        }
        if (!found) {
            return m;
        }
        m.q[e] = prev;
    }
    m.score = rules[r].score;
    if (rules[r].kind == RULE_MERGE) {
        var key: array<u32, CAP_PHRASE>;
        for (var w = 0u; w < CAP_PHRASE; w++) {
            key[w] = ANY;
        }
        for (var e = 0u; e < k; e++) {
            let s = items[item_at(d, m.q[e])].symbol;
            if (s >= params.vocab_size) {
                return m;
            }
            key[e] = s;
        }
        // Binary search (lower bound) of the sorted, unique lexicon keys.
        var lo = 0u;
        var hi = params.n_phrases;
        for (var it = 0u; it < 32u && lo < hi; it++) {
            let mid = (lo + hi) / 2u;
            if (lexicon_cmp(mid, key) < 0) {
                lo = mid + 1u;
            } else {
                hi = mid;
            }
        }
        if (lo >= params.n_phrases || lexicon_cmp(lo, key) != 0) {
            return m;
        }
        m.phrase = lo;
        m.score += tables[params.off_bonus + lo];
    }
    m.ok = true;
    return m;
}
