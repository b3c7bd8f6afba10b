"""A readable text form of rules, for writing them by hand.

One rule per line; ``#`` starts a comment::

    rule merge_word score 200: [word] [cont] => merge
    rule negate score 150: [neg] ~2 [word] => set 0 op=PUSH; set 1 op=MUL
    rule soften_stop score 40: [op=ACC stop] => set 0 arg1=16384
    rule swap score 20: [word] [word] => perm 1 0

An element ``[...]`` holds class names (any of them matches), ``op=NAME`` and
``sym=ID`` or ``sym="token"``; ``~N`` before an element lets it skip up to ``N``
items. The action is ``merge`` (optionally ``; set 0 ...``) or any of ``perm ...``
and ``set E op=NAME arg0=N arg1=N`` joined by ``;`` (a rewrite), or ``keep``.
:func:`parse_rules` turns the text into :class:`~sae.algorithm.Rule` values, which
the Algorithm stores as canonical JSON; :func:`format_rules` prints them back.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sae.algorithm import ItemUpdate, PatternElement, Rule
from sae.errors import InputError
from sae.layout import ANY, Op

_RULE = re.compile(r"^rule\s+(?P<name>\S+)\s+score\s+(?P<score>-?\d+)\s*:\s*(?P<pattern>.*?)\s*=>\s*(?P<action>.*)$")
_ELEMENT = re.compile(r"(~(?P<gap>\d+)\s*)?\[(?P<body>[^\]]*)\]")


def parse_rules(
    text: str, token_to_id: Callable[[str], int | None] | None = None, source: str = "<rules>"
) -> tuple[Rule, ...]:
    """Parse the text form; raises :class:`InputError` naming ``source``, line and reason.

    Values are range-checked when the rules are loaded into an Algorithm.
    """
    rules = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue

        def fail(reason: str, lineno: int = lineno) -> InputError:
            return InputError(f"{source}: line {lineno}: {reason}")

        m = _RULE.match(line)
        if not m:
            raise fail("expected 'rule NAME score N: [..] [..] => ACTION'")
        pattern = _parse_pattern(m["pattern"], token_to_id, fail)
        kind, perm, updates = _parse_action(m["action"], len(pattern), fail)
        rules.append(Rule(m["name"], int(m["score"]), pattern, kind, perm, updates))
    return tuple(rules)


def _parse_pattern(text: str, token_to_id, fail) -> tuple[PatternElement, ...]:
    elements, pos = [], 0
    for m in _ELEMENT.finditer(text):
        if text[pos : m.start()].strip():
            raise fail(f"unexpected {text[pos:m.start()].strip()!r} in pattern")
        pos = m.end()
        opcode, symbol, classes = ANY, ANY, []
        for term in m["body"].split():
            if term.startswith("op="):
                name = term[3:]
                if name not in Op.__members__:
                    raise fail(f"unknown opcode {name!r}")
                opcode = int(Op[name])
            elif term.startswith("sym="):
                value = term[4:]
                if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                    if token_to_id is None:
                        raise fail(f"sym={value} needs a tokenizer to resolve")
                    resolved = token_to_id(value[1:-1])
                    if resolved is None:
                        raise fail(f"token {value} is not in the vocabulary")
                    symbol = resolved
                elif value.isdigit():
                    symbol = int(value)
                else:
                    raise fail(f"sym= takes a number or a quoted token, got {value!r}")
            else:
                classes.append(term)
        elements.append(PatternElement(int(m["gap"] or 0), opcode, symbol, tuple(classes)))
    if text[pos:].strip():
        raise fail(f"unexpected {text[pos:].strip()!r} in pattern")
    if not elements:
        raise fail("a pattern needs at least one [element]")
    return tuple(elements)


def _parse_action(text: str, k: int, fail) -> tuple[str, tuple[int, ...], tuple[ItemUpdate, ...]]:
    kind, perm, sets = "rewrite", (), {}
    for part in (p.strip() for p in text.split(";")):
        words = part.split()
        if not words:
            raise fail("empty action")
        if words == ["merge"]:
            kind = "merge"
        elif words == ["keep"]:
            pass
        elif words[0] == "perm":
            try:
                perm = tuple(int(w) for w in words[1:])
            except ValueError:
                raise fail(f"perm takes numbers, got {part!r}") from None
        elif words[0] == "set" and len(words) >= 3 and words[1].isdigit():
            e = int(words[1])
            if e >= k:
                raise fail(f"set {e}: the pattern has {k} elements")
            fields = {}
            for w in words[2:]:
                key, _, value = w.partition("=")
                if key == "op":
                    if value not in Op.__members__:
                        raise fail(f"unknown opcode {value!r}")
                    fields["opcode"] = int(Op[value])
                elif key in ("arg0", "arg1"):
                    try:
                        fields[key] = int(value)
                    except ValueError:
                        raise fail(f"{key} takes an integer, got {value!r}") from None
                else:
                    raise fail(f"unknown field {key!r} in set (op, arg0, arg1)")
            sets[e] = ItemUpdate(**fields)
        else:
            raise fail(f"unknown action {part!r} (merge, perm ..., set E ...)")
    updates = tuple(sets.get(e, ItemUpdate()) for e in range(max(sets) + 1)) if sets else ()
    return kind, perm, updates


def format_rules(rules: tuple[Rule, ...] | list[Rule], id_to_token: Callable[[int], str | None] | None = None) -> str:
    """The text form of ``rules`` (parses back to the same rules)."""
    lines = []
    for rule in rules:
        elements = []
        for el in rule.pattern:
            terms = list(el.classes)
            if el.opcode != ANY:
                terms.append(f"op={Op(el.opcode).name}")
            if el.symbol != ANY:
                token = id_to_token(el.symbol) if id_to_token else None
                safe = token is not None and re.fullmatch(r'[^\s"\]\[#;]+', token)
                terms.append(f'sym="{token}"' if safe else f"sym={el.symbol}")
            gap = f"~{el.gap} " if el.gap else ""
            elements.append(f"{gap}[{' '.join(terms)}]")
        parts = ["merge"] if rule.kind == "merge" else []
        if rule.perm:
            parts.append("perm " + " ".join(str(p) for p in rule.perm))
        for e, up in enumerate(rule.updates):
            fields = []
            if up.opcode is not None:
                fields.append(f"op={Op(up.opcode).name}")
            if up.arg0 is not None:
                fields.append(f"arg0={up.arg0}")
            if up.arg1 is not None:
                fields.append(f"arg1={up.arg1}")
            if fields:
                parts.append(f"set {e} " + " ".join(fields))
        if not parts:
            parts.append("keep")  # a rewrite that only marks its items as fired
        lines.append(f"rule {rule.name} score {rule.score}: {' '.join(elements)} => {'; '.join(parts)}")
    return "\n".join(lines) + ("\n" if lines else "")
