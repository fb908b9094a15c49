r"""A griffe extension: rewrite the docstrings' reST math into arithmatex markup.

refscore's docstrings are numpydoc with reST math (``:math:`...``` roles and ``.. math::``
blocks), as Sphinx expects. mkdocstrings renders docstrings as Markdown, where those would show
as raw text. Before griffe parses a docstring, this extension turns

- ``:math:`a+b``` into ``\(a+b\)`` (inline, typeset by MathJax through pymdownx.arithmatex),
- ``.. math:: body`` (one line, or an indented block) into a display ``\[ body \]`` (a body
  with ``&`` alignment and no environment of its own inside ``aligned``: Sphinx adds one, MathJax
  shows "Misplaced &" without it),
- ``:func:`x``` / ``:class:`x``` / ``:meth:`x``` / ``:mod:`x``` into code ``x``,
- doctest lines (``>>> ...`` and their output) into a fenced ``pycon`` block,
- a free paragraph that follows the entries of a numpydoc list section (Parameters, Attributes,
  Returns, ...) into a ``Notes`` section: numpydoc ends a section only at the next header, so
  griffe would otherwise read each such line as one more (undeclared) parameter.

Registered in mkdocs.yml under the python handler's ``extensions``.
"""
from __future__ import annotations

import re

import griffe

ROLE_MATH = re.compile(r":math:`([^`]+)`")
ROLE_CODE = re.compile(r":(?:func|class|meth|mod|attr|obj|data):`~?([^`]+)`")
ALIGN = re.compile(r"(?<!\\)&")  # an alignment point, not an escaped \&
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")


def _math_blocks(lines):
    """Replace every ``.. math::`` directive (with its indented body) by a ``\\[...\\]`` block."""
    out, i = [], 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, body = m.group("indent"), [m.group("first").strip()] if m.group("first").strip() else []
        i += 1
        # the body: following lines that are blank or indented deeper than the directive
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
            i -= 1  # give trailing blank lines back to the text
        tex = " ".join(b for b in body if b)
        if ALIGN.search(tex) and "\\begin" not in tex:  # Sphinx aligns a bare '&'; MathJax needs aligned
            tex = "\\begin{aligned}" + tex + "\\end{aligned}"
        out.extend(["", f"{indent}\\[{tex}\\]", ""])
    return out


LIST_SECTIONS = {"parameters", "other parameters", "attributes", "returns", "yields", "receives", "raises",
                 "warns"}
# an entry line of a list section: "name : type", "a, b : type", "ErrorType", "module.Error, other.Error"
ENTRY = re.compile(r"^[\w.*]+(?:\s*,\s*[\w.*]+)*\s*(?::.*)?$")


def _is_header(lines, i):
    return (i + 1 < len(lines) and lines[i].strip() and set(lines[i + 1].strip()) == {"-"}
            and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 1)


def _free_text_as_notes(lines):
    """Give a free paragraph after a list section's entries its own ``Notes`` header."""
    out, section, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if _is_header(lines, i):
            section = line.strip().lower()
            out += [line, lines[i + 1]]
            i += 2
            continue
        if (section in LIST_SECTIONS and line.strip() and not line[:1].isspace() and i > 0
                and not lines[i - 1].strip() and not ENTRY.match(line.strip())):
            out += ["Notes", "-----"]
            section = "notes"
        out.append(line)
        i += 1
    return out


def _doctests(lines):
    """Fence every run of doctest lines (from a ``>>>`` line to the next blank line) as pycon."""
    out, i = [], 0
    while i < len(lines):
        if not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        out += ["", f"{indent}```pycon"]
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out += [f"{indent}```", ""]
    return out


def rest_math_to_arithmatex(text: str) -> str:
    r"""Docstring text with reST math and cross-reference roles rewritten for Markdown.

    >>> rest_math_to_arithmatex("x :math:`a^2` y")
    'x \\(a^2\\) y'
    """
    text = "\n".join(_free_text_as_notes(_doctests(_math_blocks(text.split("\n")))))
    text = ROLE_MATH.sub(lambda m: "\\(" + m.group(1) + "\\)", text)
    return ROLE_CODE.sub(lambda m: "`" + m.group(1) + "`", text)


class RestMath(griffe.Extension):
    """Rewrite reST math in every docstring griffe loads (see the module docstring)."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rest_math_to_arithmatex(obj.docstring.value)
