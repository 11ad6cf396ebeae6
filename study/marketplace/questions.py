"""Question and answer XML: HTMLQuestion/ExternalQuestion/QuestionForm in, QuestionFormAnswers
out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache

from study.marketplace import questionform
from study.marketplace.errors import param_error

MAX_QUESTION_BYTES = 65535
QUESTION_FORM_HEIGHT = 0  # a QuestionForm has no FrameHeight: the page gets the window
HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
EXTERNAL_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
ANSWERS_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"


@dataclass
class Question:
    kind: str  # "html" | "external" | "form"
    content: str  # HTMLContent, ExternalURL or the QuestionForm document
    frame_height: int


@lru_cache(maxsize=4096)
def parse_question(xml_text: str) -> Question:
    """Parse an HTMLQuestion, ExternalQuestion or QuestionForm document (raises RequestError)."""
    if len(xml_text.encode("utf-8")) > MAX_QUESTION_BYTES:
        raise param_error(f"The Question is {len(xml_text.encode('utf-8'))} bytes; the XML "
                          f"question data must not be larger than {MAX_QUESTION_BYTES} bytes.")
    if "<!DOCTYPE" in xml_text[:2000].upper() and "<!ENTITY" in xml_text.upper():
        raise param_error("The Question must not declare XML entities.")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise param_error(f"The Question is not well-formed XML: {exc}")

    def child(name: str, ns: str) -> str | None:
        el = root.find(f"{{{ns}}}{name}")
        return None if el is None else (el.text or "")

    def frame(ns: str) -> int:
        text = child("FrameHeight", ns)
        if text is None or not text.strip().isdigit():
            raise param_error("The Question needs a FrameHeight with a whole number of pixels "
                              "(0 for the full window).")
        return int(text.strip())

    if root.tag == f"{{{HTML_QUESTION_NS}}}HTMLQuestion":
        content = child("HTMLContent", HTML_QUESTION_NS)
        if content is None or not content.strip():
            raise param_error("The HTMLQuestion has no HTMLContent.")
        return Question("html", content, frame(HTML_QUESTION_NS))
    if root.tag == f"{{{EXTERNAL_QUESTION_NS}}}ExternalQuestion":
        url = (child("ExternalURL", EXTERNAL_QUESTION_NS) or "").strip()
        if not re.match(r"^https?://[^\s]+$", url):
            raise param_error(f"The ExternalURL '{url[:200]}' is not an http(s) URL.")
        return Question("external", url, frame(EXTERNAL_QUESTION_NS))
    if root.tag.endswith("}QuestionForm"):
        questionform.parse(xml_text)  # refuses what it cannot show
        return Question("form", xml_text, QUESTION_FORM_HEIGHT)
    if root.tag.endswith("}HTMLQuestion") or root.tag.endswith("}ExternalQuestion"):
        tag = root.tag
        raise param_error(f"The Question root element {tag} does not use the official namespace "
                          f"({HTML_QUESTION_NS} or {EXTERNAL_QUESTION_NS}).")
    raise param_error("The Question must be an HTMLQuestion or an ExternalQuestion document "
                      "(root element with the official namespace).")


def answers_xml(fields: list[tuple[str, str]]) -> str:
    """The QuestionFormAnswers document MTurk stored for an externalSubmit: one FreeText
    answer per submitted form field."""
    return answer_document([(name, [("FreeText", value)]) for name, value in fields])


def answer_document(answers: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """QuestionFormAnswers from (QuestionIdentifier, [(element, text), ...]) pairs."""
    def esc(text: str) -> str:
        # Characters XML 1.0 cannot carry become U+FFFD so the document always parses.
        text = re.sub(r"[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]", "\uFFFD",
                      text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return text.encode("ascii", "xmlcharrefreplace").decode("ascii")

    parts = [f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{ANSWERS_NS}">']
    for name, elements in answers:
        inner = "".join(f"<{el}>{esc(text)}</{el}>" for el, text in elements)
        parts.append(f"<Answer><QuestionIdentifier>{esc(name)}</QuestionIdentifier>{inner}"
                     f"</Answer>")
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)
