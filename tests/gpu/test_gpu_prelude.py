"""Pure checks of the generated WGSL text and the shader loader (no GPU needed)."""

from __future__ import annotations

import re

import pytest

from sae.gpu.shaders import PASSES, backend_source, shader_dir, shader_source
from sae.layout import (
    GPU_PARAMS,
    GPU_PARAMS_FIELDS,
    PROGRAM_ITEM_FIELDS,
    Capacities,
    alg_record_fields,
    doc_state_fields,
    wgsl_name,
    wgsl_prelude,
)


def _members(text: str, struct: str) -> list[tuple[str, str]]:
    body = re.search(rf"struct {struct} \{{\n(.*?)\n\}};", text, re.S)
    assert body, f"struct {struct} missing from the prelude"
    return re.findall(r"^\s+(\w+): ([\w<>, ]+),", body.group(1), re.M)


@pytest.mark.parametrize(
    ("struct", "fields"),
    [("ProgramItem", PROGRAM_ITEM_FIELDS), ("Params", GPU_PARAMS_FIELDS), ("AlgRecord", alg_record_fields()),
     ("DocState", doc_state_fields())],
)
def test_prelude_members_follow_the_fields(struct, fields):
    expected = [(wgsl_name(f[0]), f[2] if f[3] == 1 else f"array<{f[2]}, {f[3]}>") for f in fields]
    assert _members(wgsl_prelude(), struct) == expected


def test_reserved_words_get_other_member_names():
    assert wgsl_name("mod") == "mod_" and wgsl_name("symbol") == "symbol"
    assert "    mod_: u32," in wgsl_prelude()


def test_params_fit_a_uniform_buffer():
    assert GPU_PARAMS.itemsize % 16 == 0
    assert all(f[3] == 1 and f[2] == "u32" for f in GPU_PARAMS_FIELDS)


def test_alg_record_is_read_field_by_field():
    src = backend_source(Capacities())
    for i, (name, *_rest) in enumerate(alg_record_fields()):
        assert f"x.{wgsl_name(name)} = tables[at + {i}u];" in src


def test_every_pass_loads_with_the_prelude():
    caps = Capacities(stream=64, rules=16)
    for name in PASSES:
        src = shader_source(name, caps)
        assert src.startswith(wgsl_prelude(caps))
        assert "const CAP_STREAM: u32 = 64u;" in src
        assert "fn main(" in src
    assert {p.stem for p in shader_dir().glob("*.wgsl")} == {*PASSES, "common"}


def test_shaders_never_retype_layouts():
    for path in shader_dir().glob("*.wgsl"):
        text = path.read_text()
        for struct in ("ProgramItem", "JournalEntry", "Rule", "Params", "AlgRecord", "DocState"):
            assert f"struct {struct} " not in text, f"{path.name} redefines {struct}"
        assert "const CAP_" not in text and "const OP_" not in text, f"{path.name} retypes a constant"
        assert "fn bid_key" not in text and "KEY_TIE" not in text, f"{path.name} retypes the key packing"
        assert "<< 16u) |" not in text, f"{path.name} packs keys by hand"
        assert "f16" not in text and "subgroup" not in text, f"{path.name}: not core WGSL"


def test_unknown_pass_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pass"):
        shader_source("nope", Capacities())
