"""The glyph atlas: characters the bundled font lacks are drawn as their escapes."""

from __future__ import annotations

from sae.viewer.font import GlyphAtlas


def test_characters_without_a_glyph_show_as_escapes():
    """The bundled font covers ASCII: "日", "é" and "П" were the same blank box."""
    atlas = GlyphAtlas()
    assert atlas.shown("a dog, 42.") == "a dog, 42."
    assert atlas.shown("日本 é П 😀") == "\\u65e5\\u672c \\xe9 \\u041f \\U0001f600"
    assert atlas.layout("日").width == atlas.layout("\\u65e5").width > atlas.layout("a").width
