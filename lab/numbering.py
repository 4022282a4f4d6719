"""Figure and table numbers in document order, and the references to them, for two-pass rendering.

    numbers = Numbering()                       # pass 1: numbers are handed out as the template places items
    html = render(numbers=numbers)
    final = Numbering(numbers.order())          # pass 2: every reference knows its number, also forward ones
    html = render(numbers=final); final.check()

Text anywhere in the report (captions, discussion, answers) refers to an item with a token: ``[[fig:p1_sweep]]``
or ``[[tab:p3_mc]]``. The templates turn tokens into "Figure 3" with a link (HTML anchor or Markdown link);
a token whose item is not placed in the report is an error, never a dangling "Figure ?".

References are collected from the rendered document, never from the template's source: Jinja folds a filter
applied to a constant ("[[tab:x]]" | refs) at compile time, even inside an ``{% if %}`` branch the render does
not take, so counting calls of the filter would count a reference that is not in the report.
"""

from __future__ import annotations

import re

import jinja2
from markupsafe import Markup, escape

from lab.errors import LabError

TOKEN = re.compile(r"\[\[(fig|tab):([A-Za-z0-9_.-]+)\]\]")
# a link to an item in each rendering, as html() and markdown() write it (escaped text cannot forge one: '"' and
# ']' in text are escaped by both)
_LINK = {"html": re.compile(r'<a class="ref" href="#(fig|tab)-([A-Za-z0-9_.-]+)">'),
         "markdown": re.compile(r"(?<!\\)\]\(#(fig|tab)-([A-Za-z0-9_.-]+)\)")}
KIND_WORD = {"fig": "Figure", "tab": "Table"}


def anchor(kind: str, name: str) -> str:
    """The id of an item in both renderings: fig-p1_sweep, tab-p3_mc."""
    return f"{kind}-{name}"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<|~])")  # > and # only matter at a line start


def md_escape(text: str) -> str:
    """Text that Markdown shows as written: punctuation it would read as markup backslash-escaped, line breaks
    as spaces (a table cell or a caption is one line)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


class Numbering:
    """Hands out numbers per kind in the order items are placed; with ``final`` it reproduces that order."""

    def __init__(self, final: dict[str, int] | None = None) -> None:
        self.final = final
        self.placed: list[str] = []  # "fig:name" in placement order
        self.referenced: set[str] = set()

    def place(self, kind: str, name: str) -> int:
        key = f"{kind}:{name}"
        if key in self.placed:
            raise LabError(f"report template places {KIND_WORD[kind].lower()} '{name}' twice")
        self.placed.append(key)
        return self.number(kind, name)

    def number(self, kind: str, name: str) -> int | None:
        key = f"{kind}:{name}"
        if self.final is not None:
            return self.final.get(key)
        same = [k for k in self.placed if k.startswith(kind + ":")]
        return same.index(key) + 1 if key in same else None

    def label(self, kind: str, name: str) -> str:
        self.referenced.add(f"{kind}:{name}")
        n = self.number(kind, name)
        return f"{KIND_WORD[kind]} {n if n is not None else '?'}"

    def order(self) -> dict[str, int]:
        """key -> number, per kind in placement order (what pass 2 is built from)."""
        out, count = {}, {"fig": 0, "tab": 0}
        for key in self.placed:
            kind = key.split(":", 1)[0]
            count[kind] += 1
            out[key] = count[kind]
        return out

    def check(self, document: str | None = None, kind: str = "html") -> None:
        """Every item the rendered ``document`` (``kind`` "html" or "markdown") links to is placed, and pass 2
        placed items in the order pass 1 numbered them. Without a document, the references handed out by
        label() (filters evaluated at render time only: see template_filters)."""
        referenced = self.referenced if document is None else {
            f"{k}:{name}" for k, name in _LINK[kind].findall(document)}
        dangling = sorted(referenced - set(self.placed))
        if dangling:
            raise LabError(f"the report refers to {', '.join(dangling)}, which it does not contain")
        if self.final is not None and self.order() != self.final:
            raise LabError("figure/table numbering differs between the two renderings of the report")

    # --- token substitution for the two renderings -------------------------------------------------------

    def html(self, text: str) -> Markup:
        """Escape text, then turn reference tokens into links: <a href="#fig-x">Figure 3</a>."""
        out, last = [], 0
        text = str(text)
        for m in TOKEN.finditer(text):
            out.append(escape(text[last : m.start()]))
            kind, name = m.groups()
            out.append(Markup('<a class="ref" href="#{}">{}</a>').format(anchor(kind, name), self.label(kind, name)))
            last = m.end()
        out.append(escape(text[last:]))
        return Markup("").join(out)

    def markdown(self, text: str) -> str:
        """Escape text for Markdown (md_escape), then reference tokens as links: [Figure 3](#fig-x)."""
        out, last = [], 0
        text = str(text)
        for m in TOKEN.finditer(text):
            out.append(md_escape(text[last : m.start()]))
            out.append(f"[{self.label(*m.groups())}](#{anchor(*m.groups())})")
            last = m.end()
        out.append(md_escape(text[last:]))
        return "".join(out)

    def plain(self, text: str) -> str:
        """Reference tokens as plain words (the terminal summary)."""
        return TOKEN.sub(lambda m: self.label(*m.groups()), str(text))


def template_filters(numbers: Numbering, markdown: bool) -> dict[str, object]:
    """The ``refs`` and ``plain`` filters of a template environment, evaluated only when the template renders.

    ``pass_context`` is what stops Jinja's optimiser from calling a filter on a constant at compile time, where a
    branch not taken would still record its reference and place a label in no document.
    """
    refs = numbers.markdown if markdown else numbers.html

    @jinja2.pass_context
    def refs_filter(_ctx, text):
        return refs(text)

    @jinja2.pass_context
    def plain_filter(_ctx, text):
        return numbers.plain(text)

    return {"refs": refs_filter, "plain": plain_filter}


__all__ = ["KIND_WORD", "Numbering", "TOKEN", "anchor", "md_escape", "template_filters"]
