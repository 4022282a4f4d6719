"""Figure and table numbers in document order, and the references to them, for two-pass rendering.

    numbers = Numbering()                       # pass 1: numbers are handed out as the template places items
    html = render(numbers=numbers)
    final = Numbering(numbers.order())          # pass 2: every reference knows its number, also forward ones
    html = render(numbers=final); final.check()

Text anywhere in the report (captions, discussion, answers) refers to an item with a token: ``[[fig:p1_sweep]]``
or ``[[tab:p3_mc]]``. The templates turn tokens into "Figure 3" with a link (HTML anchor or Markdown link);
a token whose item is not placed in the report is an error, never a dangling "Figure ?".
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from lab.errors import LabError

TOKEN = re.compile(r"\[\[(fig|tab):([A-Za-z0-9_.-]+)\]\]")
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

    def check(self) -> None:
        """Every referenced item is placed, and pass 2 placed items in the order pass 1 numbered them."""
        dangling = sorted(self.referenced - set(self.placed))
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


__all__ = ["KIND_WORD", "Numbering", "TOKEN", "anchor", "md_escape"]
