#!/usr/bin/env python3
"""render.py - turn the course slides (slides/*.md) into HTML decks.

    python3 slides/render.py [OUTDIR [DECK.md ...]]

Every deck becomes one self-contained OUTDIR/<name>.html (inline CSS and
JavaScript, nothing fetched from the network), with one <section> per
slide; OUTDIR/index.html links them all. OUTDIR defaults to build/slides
at the top of the repository. Without DECK arguments every slides/*.md
except README.md is rendered.

Slides are separated by a line holding only "---". The Markdown is the
small subset the decks use: ATX headings, paragraphs, bullet and numbered
lists (nested by indentation), block quotes, fenced code blocks, pipe
tables, and inline **bold**, *italic*, `code` and [links](url).

Standard library only: it must run with the system's /usr/bin/python3.
Exit codes: 0 done, 1 a deck could not be read or the output written,
2 wrong usage.
"""

import html
import os
import re
import sys

SLIDES_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(SLIDES_DIR), "build", "slides")
NOT_DECKS = {"README.md"}


class RenderError(Exception):
    """A problem that stops the run, already worded for the user."""


# ------------------------------------------------------------------ inline

CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
ITALIC = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.I)
SAFE_SCHEMES = {"http", "https", "mailto"}


def inline(text):
    """Markdown inline markup to HTML, escaping everything else."""
    held = []

    def hold(fragment):
        held.append(fragment)
        return "\x00%d\x00" % (len(held) - 1)

    def code(m):
        body = m.group(2)
        if body.startswith(" ") and body.endswith(" ") and body.strip():
            body = body[1:-1]
        # Let long topics wrap after a slash instead of overflowing.
        return hold("<code>%s</code>" % html.escape(body).replace("/", "/<wbr>"))

    text = CODE_SPAN.sub(code, text)
    text = re.sub(r"\\([\\`*_\[\]()#+\-.!|{}<>])", lambda m: hold(html.escape(m.group(1))), text)
    text = html.escape(text, quote=False)

    def link(m):
        url = html.unescape(m.group(2))
        scheme = SCHEME.match(url)
        if scheme and scheme.group(1).lower() not in SAFE_SCHEMES:
            return m.group(0)
        return '<a href="%s">%s</a>' % (html.escape(url), m.group(1))

    text = LINK.sub(link, text)
    text = BOLD.sub(lambda m: "<strong>%s</strong>" % (m.group(1) or m.group(2)), text)
    text = ITALIC.sub(lambda m: "<em>%s</em>" % (m.group(1) or m.group(2)), text)
    # Held fragments may hold others (a code span inside a link text).
    while "\x00" in text:
        text = re.sub("\x00(\\d+)\x00", lambda m: held[int(m.group(1))], text)
    return text


def plain(text):
    """A heading as plain text, for <title> and the index."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = LINK.sub(lambda m: m.group(1), text)
    return re.sub(r"[*_]{1,2}(?=\S)(.+?)(?<=\S)[*_]{1,2}", r"\1", text).strip()


# ------------------------------------------------------------------ blocks

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+.-]*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ITEM = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
QUOTE = re.compile(r"^\s*>\s?(.*)$")


def split_row(line):
    """The cells of a pipe-table row; pipes inside `code` or escaped stay."""
    cells, cur, i, tick = [], [], 0, 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur.append(line[i:i + 2])
            i += 2
            continue
        if c == "`":
            n = len(line[i:]) - len(line[i:].lstrip("`"))
            tick = 0 if tick == n else (n if tick == 0 else tick)
            cur.append("`" * n)
            i += n
            continue
        if c == "|" and not tick:
            cells.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    cells.append("".join(cur))
    line = line.strip()
    if line.startswith("|"):
        cells = cells[1:]
    if line.endswith("|") and not line.endswith("\\|") and cells:
        cells = cells[:-1]
    return [c.strip() for c in cells]


def is_block_start(lines, i):
    line = lines[i]
    return bool(FENCE.match(line) or HEADING.match(line) or ITEM.match(line) or QUOTE.match(line)
                or (line.lstrip().startswith("|") and i + 1 < len(lines) and TABLE_RULE.match(lines[i + 1])))


def render_table(rows):
    head, rule, body = rows[0], rows[1], rows[2:]
    aligns = []
    for cell in split_row(rule):
        if cell.startswith(":") and cell.endswith(":"):
            aligns.append("center")
        elif cell.endswith(":"):
            aligns.append("right")
        else:
            aligns.append(None)

    def cells(row, tag):
        out = []
        for n, cell in enumerate(split_row(row)):
            align = aligns[n] if n < len(aligns) else None
            style = ' style="text-align:%s"' % align if align else ""
            out.append("<%s%s>%s</%s>" % (tag, style, inline(cell), tag))
        return "<tr>%s</tr>" % "".join(out)

    parts = ["<table>", "<thead>%s</thead>" % cells(head, "th")]
    if body:
        parts.append("<tbody>%s</tbody>" % "".join(cells(r, "td") for r in body))
    parts.append("</table>")
    return "".join(parts)


def render_list(lines):
    """Lines of one list (items and their continuation lines) to HTML.
    Deeper-indented items open a nested list inside the current item."""
    out, stack = [], []  # stack of (indent, tag)

    def close_to(indent):
        while stack and stack[-1][0] > indent:
            out.append("</li></%s>" % stack.pop()[1])

    for line in lines:
        m = ITEM.match(line)
        if not m:  # continuation of the current item
            out.append(" " + inline(line.strip()))
            continue
        indent = len(m.group(1).expandtabs(4))
        tag = "ol" if m.group(2)[0].isdigit() else "ul"
        close_to(indent)
        if stack and stack[-1][0] == indent and stack[-1][1] != tag:
            out.append("</li></%s>" % stack.pop()[1])
        if not stack or stack[-1][0] < indent:
            start = ""
            if tag == "ol" and int(m.group(2)[:-1]) != 1:
                start = ' start="%d"' % int(m.group(2)[:-1])
            out.append("<%s%s><li>" % (tag, start))
            stack.append((indent, tag))
        else:
            out.append("</li><li>")
        out.append(inline(m.group(3)))
    close_to(-1)
    return "".join(out)


def render_blocks(lines, where):
    """Markdown lines (one slide) to a list of HTML blocks."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        m = FENCE.match(line)
        if m:
            indent, mark, lang = len(m.group(1)), m.group(2), m.group(3)
            body, i = [], i + 1
            while i < len(lines) and not re.match(r"^\s*%s%s*\s*$" % (re.escape(mark), re.escape(mark[0])), lines[i]):
                body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
                i += 1
            if i >= len(lines):
                raise RenderError("%s: code block opened with %s is never closed" % (where, mark))
            i += 1
            cls = ' class="language-%s"' % html.escape(lang) if lang else ""
            out.append("<pre><code%s>%s</code></pre>" % (cls, html.escape("\n".join(body), quote=False)))
            continue
        m = HEADING.match(line)
        if m:
            n = len(m.group(1))
            out.append("<h%d>%s</h%d>" % (n, inline(m.group(2)), n))
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and TABLE_RULE.match(lines[i + 1]):
            rows = [line, lines[i + 1]]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            out.append(render_table(rows))
            continue
        if QUOTE.match(line):
            body = []
            while i < len(lines) and lines[i].strip() and QUOTE.match(lines[i]):
                body.append(QUOTE.match(lines[i]).group(1))
                i += 1
            out.append("<blockquote>%s</blockquote>" % "".join(render_blocks(body, where)))
            continue
        if ITEM.match(line):
            body = []
            while i < len(lines):
                if not lines[i].strip():
                    # A blank line ends the list unless another item follows.
                    if i + 1 < len(lines) and ITEM.match(lines[i + 1]):
                        i += 1
                        continue
                    break
                if body and not ITEM.match(lines[i]) and is_block_start(lines, i):
                    break
                body.append(lines[i])
                i += 1
            out.append(render_list(body))
            continue
        para = []
        while i < len(lines) and lines[i].strip() and (not para or not is_block_start(lines, i)):
            para.append(lines[i])
            i += 1
        # A line ending in two spaces or a backslash breaks the line.
        text = ""
        for n, p in enumerate(para):
            last = n == len(para) - 1
            if not last and (p.endswith("  ") or p.endswith("\\")):
                text += inline(p.rstrip().rstrip("\\")) + "<br>\n"
            else:
                text += inline(p.strip()) + ("" if last else "\n")
        out.append("<p>%s</p>" % text)
    return out


def split_slides(text):
    """Split on lines that hold only '---', except inside code fences."""
    slides, cur, fence = [], [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(2)
            elif m.group(2).startswith(fence) and not m.group(3):
                fence = None
        if fence is None and line.strip() == "---":
            slides.append(cur)
            cur = []
        else:
            cur.append(line)
    slides.append(cur)
    return [s for s in slides if any(l.strip() for l in s)]


# ------------------------------------------------------------------ pages

CSS = """
*{box-sizing:border-box}
html,body{margin:0;background:#20242b;color:#1d232b;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{display:flex;flex-direction:column;align-items:center;gap:2vh;padding:2vh 0}
.slide{position:relative;width:min(96vw,160vh);height:min(54vw,90vh);overflow:hidden;background:#fdfdfc;
  border-radius:6px;padding:4% 5%;font-size:calc(min(96vw,160vh)/48);line-height:1.35;box-shadow:0 2px 12px #0008}
.js main{height:100vh;justify-content:center;padding:0}
.js .slide{display:none}.js .slide.current{display:block}
h1{font-size:1.75em;margin:0 0 .6em;color:#0b4f6c;line-height:1.15}
h2{font-size:1.35em;margin:.4em 0 .5em;color:#0b4f6c}h3,h4,h5,h6{font-size:1.1em;margin:.4em 0}
p{margin:.45em 0}ul,ol{margin:.35em 0;padding-left:1.3em}li{margin:.22em 0}li>ul,li>ol{margin:.1em 0}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.88em;background:#eef1f4;padding:.05em .25em;border-radius:3px}
pre{background:#1f2630;color:#e6edf3;padding:.7em 1em;border-radius:5px;overflow:auto;line-height:1.3;margin:.5em 0;font-size:.8em}
pre code{background:none;padding:0;font-size:1em;color:inherit;white-space:pre}
table{border-collapse:collapse;margin:.5em 0;font-size:.8em;width:100%}
th,td{border-bottom:1px solid #cfd6dd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#e4edf2;color:#0b4f6c}
blockquote{margin:.5em 0;padding:.2em 1em;border-left:4px solid #0b4f6c;color:#3b4652}
strong{color:#8a2b0b}a{color:#0b4f6c}
.num{position:absolute;right:1.2em;bottom:.7em;font-size:.55em;color:#8a949e}
nav{position:fixed;left:0;right:0;bottom:0;display:none;justify-content:space-between;align-items:center;
  padding:.3em .8em;font-size:14px;color:#aab4be}
.js nav{display:flex}nav a{color:#aab4be;text-decoration:none}
nav button{background:none;border:1px solid #56606b;color:#d0d7de;border-radius:4px;padding:.1em .7em;font-size:14px;cursor:pointer}
@media print{html,body{background:#fff}main{display:block;padding:0}nav{display:none!important}
  .slide,.js .slide{display:block;width:100%;height:auto;min-height:0;box-shadow:none;page-break-after:always;font-size:16pt!important}}
"""

JS = """
(function(){
  var d=document, slides=d.querySelectorAll('.slide'), n=slides.length, cur=0;
  function fit(s){
    // Shrink a slide's text until it fits its box (long code, wide tables).
    var f=1; s.style.fontSize='';
    var base=parseFloat(getComputedStyle(s).fontSize);
    while((s.scrollHeight>s.clientHeight+1||s.scrollWidth>s.clientWidth+1)&&f>0.5){
      f-=0.05; s.style.fontSize=(base*f)+'px';
    }
  }
  function show(i){
    if(!n)return;
    cur=Math.max(0,Math.min(n-1,i));
    for(var k=0;k<n;k++)slides[k].classList.toggle('current',k===cur);
    fit(slides[cur]);
    d.getElementById('pos').textContent=(cur+1)+' / '+n;
    if(history.replaceState)history.replaceState(null,'','#'+(cur+1));
  }
  d.addEventListener('keydown',function(e){
    if(e.altKey||e.ctrlKey||e.metaKey)return;
    var k=e.key;
    if(k==='ArrowRight'||k==='PageDown'||k===' '||k==='n'){show(cur+1);e.preventDefault();}
    else if(k==='ArrowLeft'||k==='PageUp'||k==='p'){show(cur-1);e.preventDefault();}
    else if(k==='Home'){show(0);e.preventDefault();}
    else if(k==='End'){show(n-1);e.preventDefault();}
  });
  d.getElementById('prev').onclick=function(){show(cur-1);};
  d.getElementById('next').onclick=function(){show(cur+1);};
  window.addEventListener('resize',function(){fit(slides[cur]);});
  window.addEventListener('hashchange',function(){show((parseInt(location.hash.slice(1),10)||1)-1);});
  show((parseInt(location.hash.slice(1),10)||1)-1);
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script>document.documentElement.className+=" js";</script>
</head>
<body>
<main>
{slides}
</main>
<nav><a href="index.html">{title}</a><span><button id="prev" title="&#8592;">&#9664;</button>
<span id="pos"></span> <button id="next" title="&#8594;">&#9654;</button></span></nav>
<script>{js}</script>
</body>
</html>
"""

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mqlab · slides</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;max-width:46em;margin:3em auto;padding:0 1em;color:#1d232b}}
h1{{color:#0b4f6c}}li{{margin:.4em 0}}a{{color:#0b4f6c}}.lang{{font-size:.85em;color:#6a747e}}
</style>
</head>
<body>
<h1>mqlab · slides</h1>
<p>One deck per lab, in each language. In a deck: &#8592; / &#8594; (or PageUp / PageDown, Space) move between slides.</p>
<ul>
{items}
</ul>
</body>
</html>
"""


def read_deck(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RenderError("cannot read %s: %s" % (path, e.strerror or e))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RenderError("%s is not valid UTF-8 (byte %d)" % (path, e.start))


def deck_lang(name):
    """'01-hello.es.md' -> 'es'; decks without a language tag are English."""
    parts = name.split(".")
    return parts[-2] if len(parts) >= 3 and re.match(r"^[a-z]{2}$", parts[-2]) else "en"


def render_deck(path):
    """Returns (title, html, number of slides)."""
    name = os.path.basename(path)
    text = read_deck(path)
    slides = split_slides(text)
    if not slides:
        raise RenderError("%s has no slides" % path)
    title = None
    sections = []
    for n, lines in enumerate(slides, 1):
        if title is None:
            for l in lines:
                m = HEADING.match(l)
                if m:
                    title = plain(m.group(2))
                    break
        body = "\n".join(render_blocks(lines, "%s, slide %d" % (name, n)))
        sections.append('<section class="slide" id="s%d">\n%s\n<div class="num">%d</div>\n</section>' % (n, body, n))
    title = title or name
    page = PAGE.format(lang=deck_lang(name), title=html.escape(title), css=CSS.strip(), js=JS.strip(),
                       slides="\n".join(sections))
    return title, page, len(slides)


def write(path, text):
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise RenderError("cannot write %s: %s" % (path, e.strerror or e))


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    if any(a.startswith("-") for a in argv):
        print("render.py: unknown option %s (usage: render.py [OUTDIR [DECK.md ...]])" %
              next(a for a in argv if a.startswith("-")), file=sys.stderr)
        return 2
    out = argv[0] if argv else DEFAULT_OUT
    decks = argv[1:]
    if not decks:
        decks = sorted(os.path.join(SLIDES_DIR, f) for f in os.listdir(SLIDES_DIR)
                       if f.endswith(".md") and f not in NOT_DECKS)
    if not decks:
        print("render.py: no decks (*.md) in %s" % SLIDES_DIR, file=sys.stderr)
        return 1
    try:
        rendered = [(d,) + render_deck(d) for d in decks]
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise RenderError("cannot create %s: %s" % (out, e.strerror or e))
        items = []
        for deck, title, page, count in rendered:
            base = os.path.basename(deck)[:-3] if deck.endswith(".md") else os.path.basename(deck)
            write(os.path.join(out, base + ".html"), page)
            items.append('<li><a href="%s.html">%s</a> <span class="lang">(%s, %d slides)</span></li>'
                         % (html.escape(base), html.escape(title), deck_lang(os.path.basename(deck)), count))
            print("%s.html: %d slides" % (os.path.join(out, base), count))
        write(os.path.join(out, "index.html"), INDEX.format(items="\n".join(items)))
    except RenderError as e:
        print("render.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
