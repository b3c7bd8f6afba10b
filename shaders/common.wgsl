// Bindings and helpers shared by every pass of the GPU backend (docs/GPU.md).
// Compiled after sae.layout.wgsl_prelude(caps): ProgramItem, JournalEntry, Rule,
// Params, DocState and the CAP_* / OP_* constants come from there; WG and the
// SCRATCH_* / WINNER_* constants from sae.gpu.shaders.
//
// Every pass uses the same bind group layout, so the buffers are bound once.
// Items of document d live at d * CAP_STREAM; its backup at params.backup_base + that.
// Bid keys of document d, position p, rule r live at (d * CAP_STREAM + p) * n_rules + r;
// after every key, at params.scratch_base + d * SCRATCH_WORDS, each document has a
// scratch area: per position the candidate key, its last item and the sum of the
// bid scores there, then the winner records of the step.

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

fn scratch_at(d: u32) -> u32 {
    return params.scratch_base + d * SCRATCH_WORDS;
}

// Word w of winner record i of document d: the winner's key, its last matched item,
// how many positions the applied merges left of it remove (D), and the sum of the
// bid scores of its old window.
const WIN_KEY: u32 = 0u;
const WIN_LAST: u32 = 1u;
const WIN_SHIFT: u32 = 2u;
const WIN_SUM: u32 = 3u;

fn winner_at(d: u32, i: u32) -> u32 {
    return scratch_at(d) + SCRATCH_WINNERS + i * WINNER_WORDS;
}

// state.apply: what the next "apply" pass does to the document.
const APPLY_NONE: u32 = 0u;
const APPLY_ALL: u32 = 1u;  // back the stream up, then apply every winner (the tentative stream)
const APPLY_COMMITTED: u32 = 2u;  // rebuild from the backup with the committed winners only

// Positions a merge rule removes (k - 1), 0 for a rewrite.
fn removed_by(r: u32) -> u32 {
    if (rules[r].kind == RULE_MERGE) {
        return min(rules[r].length, CAP_PATTERN) - 1u;
    }
    return 0u;
}

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

// Does pattern element e of rule r match item j of the stream at items[base..]
// (of length len)?
fn element_matches(base: u32, len: u32, j: u32, r: u32, e: u32) -> bool {
    if (j >= len) {
        return false;
    }
    let x = items[base + j];
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

// Rule r at anchor p of the stream at items[base..] of length len (docs/ENGINE.md §2):
// greedy, leftmost. base is item_at(d, 0) for a document's stream, backup_at(d, 0)
// for its backup.
fn match_rule(base: u32, len: u32, p: u32, r: u32) -> Match {
    var m: Match;
    m.ok = false;
    if (p >= len || !element_matches(base, len, p, r, 0u)) {
        return m;
    }
    if (((items[base + p].fired >> r) & 1u) != 0u) {
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
            if (element_matches(base, len, j, r, e)) {
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
            let s = items[base + m.q[e]].symbol;
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
