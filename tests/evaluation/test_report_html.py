"""``report.html`` (``boardgraph.evaluation.report_html``): the report Markdown as one page."""
from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd

from boardgraph.evaluation.report import write_report
from boardgraph.evaluation.report_html import markdown_to_html, report_page

MD = """# Title <b>

Some `code` and **bold** text
on two lines.

| model | recall@10 |
| --- | --- |
| <script>alert(1)</script> | 0.5 |

- one
- two `x`

```
a < b
```

![plot](plot.png)
![secret](../secret.png)
"""


def test_markdown_subset_renders_escaped(tmp_path):
    (tmp_path / "plot.png").write_bytes(b"\\x89PNG fake")
    (tmp_path.parent / "secret.png").write_bytes(b"secret")
    html = markdown_to_html(MD, tmp_path)
    assert "<h1>Title &lt;b&gt;</h1>" in html
    assert "<p>Some <code>code</code> and <strong>bold</strong> text on two lines.</p>" in html
    assert "<tr><th>model</th><th>recall@10</th></tr>" in html and "<td>0.5</td>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<ul><li>one</li><li>two <code>x</code></li></ul>" in html and "<pre>a &lt; b</pre>" in html
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert [base64.b64decode(e) for e in embedded] == [b"\\x89PNG fake"]       # never a file outside the folder
    assert "[figure: secret (../secret.png)]" in html
    page = report_page(MD, tmp_path)
    assert page.startswith("<!doctype html>") and "<title>Title &lt;b&gt;</title>" in page


def test_write_report_writes_report_html_with_the_plots_embedded(tmp_path):
    table = pd.DataFrame({"warm recall@10": ["0.1"]}, index=pd.Index(["m"], name="model"))
    curves = {"m": {"warm": {1: 0.0, 10: 0.1, 100: 0.5}}}
    write_report(tmp_path, table, title="A <report>", recall_curves=curves,
                 similarity={"m": (np.linspace(0, 1, 20), np.linspace(-1, 0, 20))})
    html = (tmp_path / "report.html").read_text()
    assert "<h1>A &lt;report&gt;</h1>" in html and "<td>0.1</td>" in html
    assert html.count("data:image/png;base64,") == 2 and not list(tmp_path.glob(".report-*"))
