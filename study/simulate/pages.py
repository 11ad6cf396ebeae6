"""Reading the worker site's pages and the HIT page the way a browser would see them, with the
standard library's HTML parser: what the marketplace and HIT page contracts promise (element
ids and classes, form fields), nothing else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    item: int | None = None          # data-position of the enclosing section.item
    form: str | None = None          # id of the enclosing form

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._sections: list[int | None] = []
        self._forms: list[str | None] = []

    def _item(self) -> int | None:
        for p in reversed(self._sections):
            if p is not None:
                return p
        return None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        el = Element(tag, a, self._item(), self._forms[-1] if self._forms else None)
        if tag == "section":
            pos = None
            if "item" in el.classes:
                try:
                    pos = int(a.get("data-position", ""))
                except ValueError:
                    pos = None
            self._sections.append(pos)
            el.item = self._item()
        elif tag == "form":
            self._forms.append(a.get("id", ""))
            el.form = a.get("id", "")
        self.elements.append(el)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "section" and self._sections:
            self._sections.pop()
        elif tag == "form" and self._forms:
            self._forms.pop()

    def handle_endtag(self, tag):
        if tag == "section" and self._sections:
            self._sections.pop()
        elif tag == "form" and self._forms:
            self._forms.pop()


def parse(html: str) -> list[Element]:
    c = _Collector()
    c.feed(html)
    c.close()
    return c.elements


def find(elements: list[Element], tag: str | None = None, id: str | None = None,
         cls: str | None = None) -> list[Element]:
    return [e for e in elements
            if (tag is None or e.tag == tag)
            and (id is None or e.attrs.get("id") == id)
            and (cls is None or cls in e.classes)]


class PageError(Exception):
    """A page does not hold what the contract says it holds."""


@dataclass
class HitGroup:
    hit_type_id: str
    url: str


def hit_groups(html: str, page_url: str) -> list[HitGroup]:
    out = []
    for e in find(parse(html), "a", cls="hit-group"):
        href = e.attrs.get("href")
        if href:
            out.append(HitGroup(e.attrs.get("data-hit-type-id", ""), urljoin(page_url, href)))
    return out


_WORKER_ID = re.compile(r'id="worker-id"[^>]*>\s*([^<\s]+)\s*<')


def worker_id(html: str) -> str | None:
    """The signed-in worker's id, as the worker site shows it (#worker-id)."""
    m = _WORKER_ID.search(html)
    return m.group(1) if m else None


def question_frame_src(html: str, page_url: str) -> str:
    frames = find(parse(html), "iframe", id="question-frame")
    if not frames or not frames[0].attrs.get("src"):
        raise PageError("no iframe#question-frame with a src")
    return urljoin(page_url, frames[0].attrs["src"])


def accept_action(html: str, page_url: str) -> str | None:
    forms = find(parse(html), "form", id="accept-form")
    if not forms:
        return None
    return urljoin(page_url, forms[0].attrs.get("action") or page_url)


def query_params(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@dataclass
class TaskItem:
    position: int
    # The left photo ("" where the page shows one photo alone) and the right (or only) one.
    reference_url: str
    result_url: str
    levels: list[str] = field(default_factory=list)
    # The level that means "identical to the reference" (the page's anchor), if marked, and
    # the one a mostly different output gets.
    identical: str = ""
    # Pairwise pages: img.result-a is `result_url`, img.result-b this; the radio value
    # choosing each side (data-key "a" / "b").
    result_b_url: str = ""
    choices: dict[str, str] = field(default_factory=dict)
    different: str = ""

    @property
    def alone(self) -> bool:
        """The page shows one photo, to be rated without the reference (ACR)."""
        return not self.reference_url

    @property
    def two_sided(self) -> bool:
        """The scale has "identical" in its middle (CCR): the answer says which photo is the
        better one, as well as by how much."""
        return bool(self.identical) and self.identical not in (self.levels[:1] + self.levels[-1:])

    def level(self, difference: float, steps: int, mirrored: bool = False) -> str:
        """The page's level for a difference of `difference` on a 0..`steps` scale (0 is
        identical), whichever way and on however many levels the page orders its scale. On a
        two-sided scale, the difference goes toward the "different" anchor, or toward the
        other end when `mirrored` (the reference is the photo the question asks about)."""
        ordered = list(self.levels)
        if not ordered:
            return str(difference)
        if self.two_sided:
            middle = ordered.index(self.identical)
            lower, upper = ordered[middle::-1], ordered[middle:]
            worse, better = (lower, upper) if self.different in lower else (upper, lower)
            ordered = better if mirrored else worse
        elif self.identical and ordered[-1] == self.identical:
            ordered.reverse()
        index = round(difference * (len(ordered) - 1) / steps)
        return ordered[min(max(index, 0), len(ordered) - 1)]

    def picked(self, share: float) -> str:
        """The level at `share` (0 first .. 1 last) of the page's own order: where a worker
        who does not look at the photos clicks."""
        return self.levels[round(share * (len(self.levels) - 1))]


@dataclass
class TaskPage:
    items: list[TaskItem]
    action: str | None                 # the form's action as written (HTMLQuestion sets it by JS)
    hidden: dict[str, str]             # hidden fields of the rating form, as written

    @property
    def positions(self) -> list[int]:
        return [it.position for it in self.items]


_RATING = re.compile(r"^rating_(\d+)$")


def task_page(html: str, page_url: str) -> TaskPage:
    """The HIT page contract: form#rating-form, one section.item[data-position] per item with
    its photos, left then right: img.reference and img.result, or img.first and img.second (the
    page does not say which is the reference), or img.result alone (rated without the
    reference), or img.reference with img.result-a and img.result-b (pairwise, with radios
    marked data-key="a" / "b"); radio inputs rating_P (the scale's levels, the level of an
    output identical to the reference marked data-anchor="identical", of a mostly different one
    "different"), hidden seconds_P (seconds the pair was on screen) and hidden view_P (the
    viewing record as compact JSON: {"s": seconds, "z": largest zoom in screen pixels per image
    pixel, "f": flips, "w", "h": window in CSS pixels, "r": devicePixelRatio}). The page shows
    one item at a time; all of them are in its source."""
    elements = parse(html)
    forms = find(elements, "form", id="rating-form")
    if not forms:
        raise PageError("no form#rating-form on the task page")
    items: dict[int, TaskItem] = {}
    for e in elements:
        if e.item is None:
            continue
        it = items.setdefault(e.item, TaskItem(e.item, "", ""))
        if e.tag == "img" and e.classes & {"reference", "first"} and not it.reference_url:
            it.reference_url = urljoin(page_url, e.attrs.get("src", ""))
        elif e.tag == "img" and e.classes & {"result", "second", "result-a"} and not it.result_url:
            it.result_url = urljoin(page_url, e.attrs.get("src", ""))
        elif e.tag == "img" and "result-b" in e.classes and not it.result_b_url:
            it.result_b_url = urljoin(page_url, e.attrs.get("src", ""))
        elif e.tag == "input" and e.attrs.get("type", "").lower() == "radio":
            m = _RATING.match(e.attrs.get("name", ""))
            if m and int(m.group(1)) == e.item:
                it.levels.append(e.attrs.get("value", ""))
                if e.attrs.get("data-key"):
                    it.choices[e.attrs["data-key"]] = e.attrs.get("value", "")
                if e.attrs.get("data-anchor") == "identical":
                    it.identical = e.attrs.get("value", "")
                elif e.attrs.get("data-anchor") == "different":
                    it.different = e.attrs.get("value", "")
    bad = [p for p, it in items.items() if not it.result_url]
    if bad:
        raise PageError(f"item(s) {bad} lack img.result (or img.second)")
    if not items:
        raise PageError("no section.item on the task page")
    hidden = {}
    for e in elements:
        if (e.tag == "input" and e.form == "rating-form"
                and e.attrs.get("type", "").lower() == "hidden" and e.attrs.get("name")):
            hidden[e.attrs["name"]] = e.attrs.get("value", "")
    return TaskPage([items[p] for p in sorted(items)], forms[0].attrs.get("action"), hidden)
