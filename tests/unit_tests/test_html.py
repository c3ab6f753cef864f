"""The linear HTML tag scanner and the script-object reader, on odd inputs."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_chatgptes.protocols._html import Tag, json_attribute, script_object, start_tags


def tags(html: str) -> list[tuple[str, dict[str, str]]]:
    return [(tag.name, tag.attrs) for tag in start_tags(html)]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("", []),
        ("no tags at all", []),
        ("<", []),
        ("<<<", []),
        ("<>", []),
        ("< div>", []),  # a space after < is text, not a tag
        ("</div>", []),  # end tags are not start tags
        ("<!-- c --><p>", [("p", {})]),
        ("<!DOCTYPE html><html>", [("html", {})]),
        ("<1a><a1>", [("a1", {})]),
        ("<DIV ID=x>", [("div", {"id": "x"})]),
        ("<svg:rect x=1>", [("svg:rect", {"x": "1"})]),
        ("<br/>", [("br", {})]),
        ("<a b=c/>", [("a", {"b": "c/"})]),
        ("<a b c=d>", [("a", {"b": "", "c": "d"})]),
        ("<a b=1 b=2 B=3>", [("a", {"b": "1"})]),  # the first wins, names are lower-cased
        ('<a title="x > y" z>', [("a", {"title": "x > y", "z": ""})]),
        ("<a title='<b c=d>' e=f>", [("a", {"title": "<b c=d>", "e": "f"})]),
        ('<a b="1"c="2">', [("a", {"b": "1", "c": "2"})]),
        ("<a b='q' c=\"r\" d=s>", [("a", {"b": "q", "c": "r", "d": "s"})]),
        ('<a\tb\n=\n"v"\r\nc=w>', [("a", {"b": "v", "c": "w"})]),
        ("<a b=&amp;&lt;&#62;>", [("a", {"b": "&<>"})]),
        ('<a b="&quot;x&quot;">', [("a", {"b": '"x"'})]),
        ("<a<b c=d>", [("a", {}), ("b", {"c": "d"})]),
        ('<a b="unclosed', [("a", {"b": ""})]),  # a quote that never closes is no value
        ("<a b=", [("a", {"b": ""})]),
        ("<a", [("a", {})]),
        ("<p>text<span class='x y'>more</span></p>", [("p", {}), ("span", {"class": "x y"})]),
    ],
)
def test_start_tags_on_odd_inputs(html: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    assert tags(html) == expected


def test_start_tags_is_lazy() -> None:
    iterator = start_tags("<a><b>")
    assert next(iterator) == Tag("a", {})


def test_tag_classes() -> None:
    (tag,) = start_tags('<div class="  wpaicg-chat-shortcode\tother\n">')
    assert tag.classes == frozenset({"wpaicg-chat-shortcode", "other"})
    assert Tag("div", {}).classes == frozenset()


PARAMS = "wpaicgParams"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("", None),
        (PARAMS, None),
        (f"{PARAMS}=", None),
        (f"{PARAMS} = ", None),
        (f'var {PARAMS} = {{"a":1}};', {"a": 1}),
        (f'{PARAMS}={{"a":1}}', {"a": 1}),  # no semicolon
        (f'{PARAMS}\n=\n{{"a":1}}', {"a": 1}),
        (f'{{{PARAMS}: {{"a":1}}}}', {"a": 1}),  # a property, with ':'
        (f'"{PARAMS}": {{"a":1}}', None),  # a JSON key: a quote before ':'
        (f'{PARAMS}={{"a":1}}{{"b":2}}', {"a": 1}),  # what follows the object is not read
        (f'{PARAMS}={{"a":"}};"}}', {"a": "};"}),  # a '};' inside a string
        (f'{PARAMS}=[1]; {PARAMS}={{"b":2}}', {"b": 2}),  # not an object: the next one
        (f'{PARAMS}={{bad}} {PARAMS}={{"c":3}}', {"c": 3}),  # not JSON: the next one
        (f'{PARAMS}={{"a":1', None),  # cut off
        (f'{PARAMS}={{"a":' + "[" * 100_000, None),  # absurdly nested
        (f'x{PARAMS}={{"d":4}}', {"d": 4}),  # a longer name ending in it (as a search does)
        (f'{PARAMS}={{"a":"\\u00e9\\/"}}', {"a": "é/"}),
    ],
)
def test_script_object_on_odd_inputs(html: str, expected: dict[str, Any] | None) -> None:
    assert script_object(f"<script>{html}</script>", PARAMS) == expected


@pytest.mark.parametrize(
    "html",
    [
        f'<!-- <script>var {PARAMS} = {{"a":1}};</script> -->',
        f'<textarea>var {PARAMS} = {{"a":1}};</textarea>',
        f'<template><script>var {PARAMS} = {{"a":1}};</script></template>',
        f'<p>var {PARAMS} = {{"a":1}};</p>',
    ],
)
def test_script_object_reads_scripts_only(html: str) -> None:
    # Text that a browser does not run is not the plugin's script (a decoy, an old copy).
    assert script_object(html + f'<script>var {PARAMS} = {{"real":1}};</script>', PARAMS) == {
        "real": 1
    }


@pytest.mark.parametrize(
    "hidden",
    [
        "<!-- {box} -->",
        "<!---->{box}<!-- x -->".replace("{box}", ""),
        "<template>{box}</template>",
        "<template><template></template>{box}</template>",
        '<script type="text/template">{box}</script>',
        "<SCRIPT>{box}</SCRIPT >",
        "<style>{box}</style>",
        "<textarea>{box}</textarea>",
        "<title>{box}</title>",
        "<noscript>{box}</noscript>",
        "<xmp>{box}</xmp>",
        "<![CDATA[ x ]]><!DOCTYPE html>",
    ],
)
def test_markup_a_browser_does_not_render_holds_no_tags(hidden: str) -> None:
    box = '<div class="decoy">'
    tags = list(start_tags(hidden.replace("{box}", box) + '<div class="real">'))
    assert [tag.attrs.get("class") for tag in tags if tag.name == "div"] == ["real"]


def test_an_empty_comment_closes_at_once() -> None:
    # "<!-->" and "<!--->" are whole (empty) comments to a browser.
    for comment in ("<!-->", "<!--->"):
        assert [t.attrs for t in start_tags(comment + '<div class="a">-->')] == [{"class": "a"}]


def test_an_unclosed_comment_or_text_element_hides_the_rest() -> None:
    assert list(start_tags('<!-- <div class="a">')) == []
    assert [t.name for t in start_tags('<script>x<div class="a">')] == ["script"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [('{"a": [1]}', {"a": [1]}), ("[1]", [1]), ("", None), ("{", None), ("[" * 100_000, None)],
)
def test_json_attribute(value: str, expected: Any) -> None:
    assert json_attribute(value) == expected
