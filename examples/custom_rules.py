"""Write a rule by hand in the text form, add it to the default Algorithm, and see what
it does to one sentence: the journal, and the program before and after."""

from dataclasses import replace

from sae import Engine, load_algorithm
from sae.layout import Op
from sae.rules_text import format_rules, parse_rules

base = load_algorithm()  # the bundled default
# A negation word stacks with the next word (up to two items later): PUSH 'not', then
# MUL the word into it, so "not happy" contributes their elementwise product.
mine = parse_rules(
    'rule bind_negation score 150: [neg op=ACC] ~2 [word op=ACC] => set 0 op=PUSH; set 1 op=MUL',
    base.tokenizer.token_to_id,
)
algorithm = replace(base, name="default+negation", rules=base.rules + mine)
print(format_rules(algorithm.rules, base.tokenizer.id_to_token))

engine = Engine(algorithm, backend="cpu")
x = engine.explain("The footballers are not very happy with 3 goals!")
for entry in x.journal:
    outcome = "commit" if entry["outcome"] == 1 else "revert"
    print(f"step {entry['step']:2}  {x.rule_names[entry['rule']]:>26} @ {entry['pos']:2}  {outcome}")
print("before:", " ".join(x.tokens))
print("after: ", " ".join(f"{name}[{Op(int(op)).name}]" for name, op in zip(x.symbols, x.final["opcode"])))
