"""The browse site's stylesheet and script (written to ``assets/``; no framework, no CDN).

``site.js`` does three things: title search on the index page (over ``window.BG_INDEX``, from
``assets/search_index.js``), thumbnail tooltips on the map, and, when the page's address ends in
``#selftest``, a report for the browser tests: page errors, each image's decoded width, the
neighbour count and a search round trip, written as JSON into ``<pre id="bg-selftest">``.
"""
from __future__ import annotations

__all__ = ["SITE_CSS", "SITE_JS"]

SITE_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
nav{background:#234;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}
main{padding:12px 16px;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.4em}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{width:120px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:12px}
.card a{color:inherit;text-decoration:none}.card img{display:block;border-radius:4px}
.card .title{display:block;margin-top:4px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.textcard{width:96px;height:96px;background:#e8eef5;border-radius:4px;font-size:11px;padding:4px;
  box-sizing:border-box;overflow:hidden}
.score{color:#567}.heldout{outline:3px solid #e69f00}.found{color:#070}.missed{color:#b00}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>section{flex:1;min-width:300px}
table.meta td{padding:2px 8px;border-bottom:1px solid #eee}
#results li{margin:2px 0}#search{font-size:1.1em;padding:4px 8px;width:320px}
#tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #999;padding:4px;display:none;
  font-size:12px;max-width:200px}
svg circle{stroke:#fff;stroke-width:0.5}.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
"""

SITE_JS = r"""
(function () {
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function search(query) {
    var list = document.getElementById('results');
    if (!list || !window.BG_INDEX) return 0;
    var q = query.trim().toLowerCase(), shown = 0, html = [];
    for (var i = 0; i < BG_INDEX.length && shown < 50; i++) {
      var e = BG_INDEX[i];
      if (q && e.t.toLowerCase().indexOf(q) < 0 && e.i.toLowerCase().indexOf(q) < 0) continue;
      html.push('<li><a href="' + e.h + '">' + esc(e.t || e.i) + '</a> <span class="score">' + esc(e.i) + '</span></li>');
      shown++;
    }
    list.innerHTML = html.join('');
    return shown;
  }
  var box = document.getElementById('search');
  if (box) {
    box.addEventListener('input', function () { search(box.value); });
    search(box.value);
  }
  var tip = document.getElementById('tip');
  if (tip) {
    document.querySelectorAll('svg [data-title]').forEach(function (el) {
      el.addEventListener('mouseenter', function () {
        var img = el.getAttribute('data-thumb');
        tip.innerHTML = (img ? '<img src="' + esc(img) + '" width="96" height="96"><br>' : '') +
          esc(el.getAttribute('data-title'));
        tip.style.display = 'block';
      });
      el.addEventListener('mousemove', function (ev) {
        tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
      });
      el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    });
  }
  if (location.hash === '#selftest') {
    window.addEventListener('load', function () {
      var out = {errors: window.__bgErrors || [], images: [], neighbours: -1, search: null};
      document.querySelectorAll('img').forEach(function (im) { out.images.push(im.naturalWidth); });
      var nb = document.getElementById('neighbours');
      if (nb) out.neighbours = nb.querySelectorAll('.card').length;
      if (box && window.BG_INDEX && BG_INDEX.length) {
        var all = search(''), term = BG_INDEX[BG_INDEX.length - 1].t || BG_INDEX[BG_INDEX.length - 1].i;
        box.value = term; box.dispatchEvent(new Event('input'));
        out.search = {all: all, term: term, hits: document.querySelectorAll('#results li').length};
      }
      var pre = document.createElement('pre');
      pre.id = 'bg-selftest';
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    });
  }
})();
"""
