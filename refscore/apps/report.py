"""A small report writer: Markdown with image links, and a self-contained HTML twin
(figures embedded as base64 PNG), so ``report.html`` can be mailed as one file."""
from __future__ import annotations

import base64
import html
import os

import numpy as onp


class Report:
    """The tour's report: sections, figures and tables written as ``report.md`` and a
    self-contained ``report.html`` (figures inlined) in ``out``."""

    def __init__(self, out, title):
        self.out, self.title, self.items = out, title, []
        os.makedirs(out, exist_ok=True)

    def heading(self, text):
        self.items.append(("h", text))

    def text(self, text):
        self.items.append(("p", text))

    def figure(self, fig, name, caption):
        import matplotlib.pyplot as plt

        path = os.path.join(self.out, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.items.append(("fig", (name, caption)))
        return path

    def table(self, table):
        self.items.append(("table", table))

    def write(self):
        md = [f"# {self.title}", ""]
        body = []
        for kind, v in self.items:
            if kind == "h":
                md += [f"## {v}", ""]
                body.append(f"<h2>{html.escape(v)}</h2>")
            elif kind == "p":
                md += [v, ""]
                body.append(f"<p>{html.escape(v)}</p>")
            elif kind == "fig":
                name, cap = v
                md += [f"![{cap}]({name})", "", f"*{cap}*", ""]
                with open(os.path.join(self.out, name), "rb") as f:
                    b64 = base64.b64encode(f.read()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(cap)}">'
                            f"<figcaption>{html.escape(cap)}</figcaption></figure>")
            else:
                md += [v.markdown(), ""]
                fmt = lambda x: f"{x:.4g}" if isinstance(x, float) else str(x)
                head = "".join(f"<th>{html.escape(c)}</th>" for c in v.columns)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(x))}</td>" for x in r) + "</tr>" for r in v.rows)
                note = f"<p><em>{html.escape(v.note)}</em></p>" if v.note else ""
                body.append(f"<h3>{html.escape(v.title)}</h3><table><tr>{head}</tr>{rows}</table>{note}")
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write("\n".join(md))
        style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.45}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
                 "font-size:90%}img{max-width:100%}figcaption{font-style:italic;color:#444}")
        with open(os.path.join(self.out, "report.html"), "w") as f:
            f.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                    f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(body)}</body></html>")


class Table:
    """A small table: ``columns`` (names) and ``rows`` (tuples of numbers/strings)."""

    def __init__(self, title, columns, rows, note=""):
        self.title, self.columns, self.rows, self.note = title, list(columns), [tuple(r) for r in rows], note

    def column(self, name):
        i = self.columns.index(name)
        return onp.array([r[i] for r in self.rows])

    def markdown(self):
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def as_dict(self):
        return {"title": self.title, "columns": self.columns, "rows": [list(r) for r in self.rows]}

    __str__ = markdown
