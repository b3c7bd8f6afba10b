"""A readable text form of rules, for writing them by hand.

One rule per line; ``#`` outside double quotes starts a comment::

    rule merge_word score 200: [word] [cont] => merge
    rule negate score 150: [neg] ~2 [word] => set 0 op=PUSH; set 1 op=MUL
    rule soften_stop score 40: [op=ACC stop] [word] => set 0 scale=0.25
    rule scope score 90 mark 3: [neg] [!punct]+6 => set 1 mod=1
    rule opening score 30: [^ stop &cont] => set 0 arg1=0
    rule no_double_push score 500: [op=PUSH] [op=PUSH] => guard
    rule swap score 20: [word] [word] => perm 1 0

An element ``[...]`` holds terms: a class name (the item has any of these classes),
``&name`` (it has all of them), ``!name`` (none of them), ``op=NAME``, ``sym=ID`` or
``sym="token"`` (``!sym=...`` negates it), ``mod=N`` (the item's transform), ``^`` (the
first item of the stream) and ``$`` (the last). ``~N`` before an element lets it skip
up to ``N`` items; ``+R`` right after it makes it a run of 1..R items.

The action is ``merge`` (optionally ``; set 0 ...``), ``guard``, or any of
``perm ...`` and ``set E op=NAME arg0=N arg1=N scale=F mod=N`` joined by ``;`` (a
rewrite), or ``keep``. ``scale=F`` multiplies the weight by ``F`` (stored as Q16,
``round(F * 65536)``). ``mark M`` after the score picks the rule's mark bit.
:func:`parse_rules` turns the text into :class:`~sae.algorithm.Rule` values, which
the Algorithm stores as canonical JSON; :func:`format_rules` prints them back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from sae.algorithm import ItemUpdate, PatternElement, Rule
from sae.errors import InputError, short_repr
from sae.layout import ANY, Q16_ONE, Op

#: A rule line's head; the rest is the pattern and the action, split at the first "=>"
#: outside double quotes (a regular expression over both was quadratic in the line).
_HEAD = re.compile(r"rule\s+(?P<name>[^\s\"#]+)\s+score\s+(?P<score>-?[0-9]+)(\s+mark\s+(?P<mark>[0-9]+))?\s*:")
_ELEMENT = re.compile(r'(~(?P<gap>[0-9]+)\s*)?\[(?P<body>(?:[^\]"]|"[^"]*")*)\](\+(?P<run>[0-9]+))?')
#: A rule name the text form carries: no space, and no '"' or '#', which quote and comment.
_NAME = re.compile(r'[^\s"#]+')
_TERM = re.compile(r'"[^"]*"|\S+')
_TOKEN_SAFE = re.compile(r'[^\s"]+')
#: A class name the text form reads back as that class: no space, quote, comment, bracket or
#: '=', not one of the markers '^' and '$', not starting with '&' or '!' (all / none of).
_CLASS_SAFE = re.compile(r'(?![&!])[^\s"#\[\]=]+')


def strip_comment(line: str) -> str:
    """``line`` without its comment: ``#`` starts one only outside double quotes."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i]
    return line


def parse_rules(
    text: str, token_to_id: Callable[[str], int | None] | None = None, source: str = "<rules>"
) -> tuple[Rule, ...]:
    """Parse the text form; raises :class:`InputError` naming ``source``, line and reason.

    Values are range-checked against an Algorithm (its classes, symbols, rows and the
    capacities) by :func:`~sae.algorithm.check_rules`, which :class:`~sae.Engine`,
    :func:`~sae.algorithm.save_algorithm` and the loader apply.
    """
    rules = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = strip_comment(raw).strip()
        if not line:
            continue

        def fail(reason: str, lineno: int = lineno) -> InputError:
            return InputError(f"{source}: line {lineno}: {reason}")

        m = _HEAD.match(line)
        arrow = _outside_quotes(line, "=>", m.end()) if m else -1
        if not m or arrow < 0:
            raise fail("expected 'rule NAME score N: [..] [..] => ACTION' (a NAME without spaces, '\"' or '#')")
        pattern = _parse_pattern(line[m.end():arrow].strip(), token_to_id, fail)
        kind, perm, updates = _parse_action(line[arrow + 2:].strip(), len(pattern), fail)
        mark = int(m["mark"]) if m["mark"] is not None else None
        rules.append(Rule(m["name"], int(m["score"]), pattern, kind, perm, updates, mark))
    return tuple(rules)


def _integer(text: str) -> int:
    """An integer written in ASCII digits: ``int()`` also reads ``1_0``, ``１２`` and
    surrounding spaces, which no rule means."""
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def _outside_quotes(line: str, needle: str, start: int) -> int:
    """Where ``needle`` first stands in ``line`` from ``start`` outside double quotes; -1."""
    quoted = False
    for i in range(start, len(line)):
        if line[i] == '"':
            quoted = not quoted
        elif not quoted and line.startswith(needle, i):
            return i
    return -1


def _symbol(value: str, token_to_id, fail) -> int:
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        if token_to_id is None:
            raise fail(f"sym={value} needs a tokenizer to resolve")
        resolved = token_to_id(value[1:-1])
        if resolved is None:
            raise fail(f"token {value} is not in the vocabulary")
        return resolved
    if value.isascii() and value.isdigit():
        return int(value)
    raise fail(f"sym= takes a number or a quoted token, got {value!r}")


def _parse_pattern(text: str, token_to_id, fail) -> tuple[PatternElement, ...]:
    elements, pos = [], 0
    for m in _ELEMENT.finditer(text):
        if text[pos : m.start()].strip():
            raise fail(f"unexpected {short_repr(text[pos:m.start()].strip())} in pattern")
        pos = m.end()
        fields: dict = {"gap": int(m["gap"] or 0), "run": int(m["run"] or 0)}
        any_of, all_of, none_of = [], [], []
        for term in _TERM.findall(m["body"]):
            if term == "^":
                fields["at_start"] = True
            elif term == "$":
                fields["at_end"] = True
            elif term.startswith("op="):
                name = term[3:]
                if name not in Op.__members__:
                    raise fail(f"unknown opcode {name!r}")
                fields["opcode"] = int(Op[name])
            elif term.startswith(("sym=", "!sym=")):
                fields["not_symbol"] = term.startswith("!")
                fields["symbol"] = _symbol(term.split("=", 1)[1], token_to_id, fail)
            elif term.startswith("mod="):
                if not (term[4:].isascii() and term[4:].isdigit()):
                    raise fail(f"mod= takes a number, got {term[4:]!r}")
                fields["mod"] = int(term[4:])
            elif term.startswith("&"):
                all_of.append(term[1:])
            elif term.startswith("!"):
                none_of.append(term[1:])
            elif "=" in term or '"' in term:
                raise fail(f"unknown term {short_repr(term)} in an element")
            else:
                any_of.append(term)
        elements.append(PatternElement(classes=tuple(any_of), all_classes=tuple(all_of),
                                       none_classes=tuple(none_of), **fields))
    if text[pos:].strip():
        raise fail(f"unexpected {short_repr(text[pos:].strip())} in pattern")
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
        elif words == ["guard"]:
            kind = "guard"
        elif words == ["keep"]:
            pass
        elif words[0] == "perm":
            try:
                perm = tuple(_integer(w) for w in words[1:])
            except ValueError:
                raise fail(f"perm takes numbers, got {part!r}") from None
        elif words[0] == "set" and len(words) >= 3 and words[1].isascii() and words[1].isdigit():
            e = int(words[1])
            if e >= k:
                raise fail(f"set {e}: the pattern has {k} elements")
            sets[e] = _parse_set(words[2:], fail)
        else:
            raise fail(f"unknown action {short_repr(part)} (merge, guard, keep, perm ..., set E ...)")
    updates = tuple(sets.get(e, ItemUpdate()) for e in range(max(sets) + 1)) if sets else ()
    return kind, perm, updates


def _parse_set(words: list[str], fail) -> ItemUpdate:
    fields = {}
    for w in words:
        key, _, value = w.partition("=")
        if key == "op":
            if value not in Op.__members__:
                raise fail(f"unknown opcode {value!r}")
            fields["opcode"] = int(Op[value])
        elif key in ("arg0", "arg1", "mod"):
            try:
                fields[key] = _integer(value)
            except ValueError:
                raise fail(f"{key} takes an integer, got {value!r}") from None
        elif key == "scale":
            try:
                factor = float(value)
            except ValueError:
                factor = math.nan
            if not math.isfinite(factor * Q16_ONE):  # 1e300 is finite, its fixed-point value is not
                raise fail(f"scale takes a number, got {value!r}")
            fields["scale"] = round(factor * Q16_ONE)
        else:
            raise fail(f"unknown field {key!r} in set (op, arg0, arg1, scale, mod)")
    return ItemUpdate(**fields)


def _format_element(el: PatternElement, id_to_token) -> str:
    terms = ["^"] if el.at_start else []
    terms += list(el.classes) + [f"&{c}" for c in el.all_classes] + [f"!{c}" for c in el.none_classes]
    if el.opcode != ANY:
        terms.append(f"op={Op(el.opcode).name}")
    if el.symbol != ANY:
        token = id_to_token(el.symbol) if id_to_token else None
        value = f'"{token}"' if token is not None and _TOKEN_SAFE.fullmatch(token) else str(el.symbol)
        terms.append(f"{'!' if el.not_symbol else ''}sym={value}")
    if el.mod != ANY:
        terms.append(f"mod={el.mod}")
    if el.at_end:
        terms.append("$")
    gap = f"~{el.gap} " if el.gap else ""
    run = f"+{el.run}" if el.run else ""
    return f"{gap}[{' '.join(terms)}]{run}"


def format_rules(rules: tuple[Rule, ...] | list[Rule], id_to_token: Callable[[int], str | None] | None = None) -> str:
    """The text form of ``rules`` (parses back to the same rules); ``ValueError`` for a rule
    name the text form cannot hold."""
    lines = []
    for rule in rules:
        if not _NAME.fullmatch(rule.name):
            raise ValueError(f"format_rules: the rule name {rule.name!r} has a space, '\"' or '#', which the text "
                             "form cannot hold (algorithm.json can)")
        for el in rule.pattern:
            for c in (*el.classes, *el.all_classes, *el.none_classes):
                if not _CLASS_SAFE.fullmatch(c) or c in ("^", "$"):
                    raise ValueError(f"format_rules: rule {rule.name!r} names the class {c!r}, which the text form "
                                     "cannot hold (algorithm.json can)")
        elements = [_format_element(el, id_to_token) for el in rule.pattern]
        parts = [rule.kind] if rule.kind in ("merge", "guard") else []
        if rule.perm:
            parts.append("perm " + " ".join(str(p) for p in rule.perm))
        for e, up in enumerate(rule.updates):
            fields = []
            if up.opcode is not None:
                fields.append(f"op={Op(up.opcode).name}")
            for key in ("arg0", "arg1", "mod"):
                if getattr(up, key) is not None:
                    fields.append(f"{key}={getattr(up, key)}")
            if up.scale is not None:
                fields.append(f"scale={up.scale / Q16_ONE!r}")
            if fields:
                parts.append(f"set {e} " + " ".join(fields))
        if not parts:
            parts.append("keep")  # a rewrite that only marks its anchor
        mark = f" mark {rule.mark}" if rule.mark is not None else ""
        lines.append(f"rule {rule.name} score {rule.score}{mark}: {' '.join(elements)} => {'; '.join(parts)}")
    return "\n".join(lines) + ("\n" if lines else "")
