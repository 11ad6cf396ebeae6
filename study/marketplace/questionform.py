"""MTurk's QuestionForm: read one, show it to a worker as a working HTML form, turn the
submitted fields into QuestionFormAnswers, and score answers against an AnswerKey.

The form is MTurk's XML data schema (2005-10-01, and 2017-11-06 as Mephisto used it): an
Overview and Questions, each with QuestionContent and one AnswerSpecification (FreeTextAnswer,
SelectionAnswer or FileUploadAnswer). Content elements (Text, Title, List, Binary,
FormattedContent) are shown; FormattedContent is XHTML the requester wrote and is passed
through, as MTurk showed it.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from study.marketplace.errors import param_error

NAMESPACES = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionForm.xsd",
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd",
)
ANSWER_KEY_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"


@dataclass
class Question:
    identifier: str
    kind: str  # "free" | "selection" | "upload"
    required: bool
    content: str  # HTML
    selections: list[tuple[str, str]] = field(default_factory=list)  # (identifier, label HTML)
    multiple: bool = False
    other: bool = False
    max_bytes: int = 2_000_000


@dataclass
class Form:
    overview: str  # HTML
    questions: list[Question]

    def question(self, identifier: str) -> Question | None:
        return next((q for q in self.questions if q.identifier == identifier), None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(el, name: str) -> list:
    return [c for c in el if _local(c.tag) == name]


def _kid(el, name: str):
    found = _kids(el, name)
    return found[0] if found else None


def _text(el, name: str, default: str = "") -> str:
    k = _kid(el, name)
    return default if k is None or k.text is None else k.text.strip()


def _content(el) -> str:
    """The HTML of a content block (Overview, QuestionContent, Selection)."""
    parts = []
    for c in el:
        tag = _local(c.tag)
        if tag == "Title":
            parts.append(f"<h2>{html.escape(c.text or '')}</h2>")
        elif tag == "Text":
            parts.append(f"<p>{html.escape(c.text or '')}</p>")
        elif tag == "List":
            items = "".join(f"<li>{html.escape(i.text or '')}</li>" for i in _kids(c, "ListItem"))
            parts.append(f"<ul>{items}</ul>")
        elif tag == "FormattedContent":
            parts.append(f"<div class='formatted'>{c.text or ''}</div>")
        elif tag == "Binary":
            mime = _kid(c, "MimeType")
            kind = _text(mime, "Type") if mime is not None else "image"
            url = html.escape(_text(c, "DataURL"), quote=True)
            alt = html.escape(_text(c, "AltText"), quote=True)
            if not url.startswith(("http://", "https://")):
                continue
            if kind == "image":
                parts.append(f"<img src='{url}' alt='{alt}' style='max-width:100%'>")
            elif kind in ("video", "audio"):
                parts.append(f"<{kind} src='{url}' controls title='{alt}'></{kind}>")
            else:
                parts.append(f"<a href='{url}'>{alt or url}</a>")
    return "".join(parts)


def parse(xml_text: str) -> Form:
    """A QuestionForm document (raises ParameterValidationError)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise param_error(f"The QuestionForm is not well-formed XML: {exc}")
    if root.tag not in {f"{{{ns}}}QuestionForm" for ns in NAMESPACES}:
        raise param_error(f"The QuestionForm root element must be QuestionForm in the "
                          f"namespace {NAMESPACES[0]}.")
    overview = "".join(_content(o) for o in _kids(root, "Overview"))
    questions, seen = [], set()
    for q in _kids(root, "Question"):
        ident = _text(q, "QuestionIdentifier")
        if not ident or ident in seen:
            raise param_error(f"Each Question needs a unique QuestionIdentifier (got "
                              f"'{ident[:60]}').")
        seen.add(ident)
        spec = _kid(q, "AnswerSpecification")
        content = _kid(q, "QuestionContent")
        name = _text(q, "DisplayName")
        body = (f"<h3>{html.escape(name)}</h3>" if name else "") + \
            (_content(content) if content is not None else "")
        required = _text(q, "IsRequired", "false").lower() == "true"
        if spec is None or len(spec) != 1:
            raise param_error(f"Question {ident} needs one AnswerSpecification.")
        answer = spec[0]
        kind = _local(answer.tag)
        if kind == "FreeTextAnswer":
            questions.append(Question(ident, "free", required, body))
        elif kind == "SelectionAnswer":
            sel = _kid(answer, "Selections")
            options = [(_text(s, "SelectionIdentifier"), _content(s) or
                        html.escape(_text(s, "SelectionIdentifier")))
                       for s in (_kids(sel, "Selection") if sel is not None else [])]
            if not options or any(not i for i, _ in options):
                raise param_error(f"Question {ident}: a SelectionAnswer needs Selections, each "
                                  f"with a SelectionIdentifier.")
            style = _text(answer, "StyleSuggestion", "radiobutton")
            most = _text(answer, "MaxSelectionCount", "1")
            multiple = style in ("checkbox", "multichooser") or (most.isdigit() and int(most) > 1)
            other = sel is not None and _kid(sel, "OtherSelection") is not None
            questions.append(Question(ident, "selection", required, body, options, multiple,
                                      other))
        elif kind == "FileUploadAnswer":
            most = _text(answer, "MaxFileSizeInBytes", "2000000")
            questions.append(Question(ident, "upload", required, body,
                                      max_bytes=int(most) if most.isdigit() else 2_000_000))
        else:
            raise param_error(f"Question {ident}: unknown answer specification {kind}.")
    if not questions:
        raise param_error("A QuestionForm needs at least one Question.")
    return Form(overview, questions)


def render(form: Form, action: str, hidden: dict[str, str], preview: bool) -> str:
    """The form as a page that submits to `action` (multipart, for file answers)."""
    e = html.escape
    rows = []
    for q in form.questions:
        name = e(q.identifier, quote=True)
        req = " required" if q.required else ""
        if q.kind == "free":
            field = f"<textarea name='{name}' rows='3' cols='60'{req}></textarea>"
        elif q.kind == "upload":
            field = f"<input type='file' name='{name}'{req}>"
        else:
            kind = "checkbox" if q.multiple else "radio"
            field = "".join(
                f"<label><input type='{kind}' name='{name}' value='{e(i, quote=True)}'"
                f"{req if kind == 'radio' else ''}> {label}</label><br>"
                for i, label in q.selections)
            if q.other:
                field += (f"<label>Other: <input type='text' name='{name}.other'></label>")
        rows.append(f"<fieldset class='question' data-question='{name}'>{q.content}"
                    f"{field}</fieldset>")
    inputs = "".join(f"<input type='hidden' name='{e(k, quote=True)}' "
                     f"value='{e(v, quote=True)}'>" for k, v in hidden.items())
    button = ("<input type='submit' id='submitButton' disabled value='You must ACCEPT the HIT "
              "before you can submit the results.'>" if preview
              else "<input type='submit' id='submitButton' value='Submit'>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Task</title></head><body>"
            f"{form.overview}<form id='mturk_form' method='post' action='{e(action, quote=True)}'"
            f" enctype='multipart/form-data'>{inputs}{''.join(rows)}<p>{button}</p></form>"
            "</body></html>")


def answers(form: Form, fields: list[tuple[str, str]],
            uploads: dict[str, tuple[int, str]] | None = None) -> list[tuple[str, list]]:
    """Submitted fields as (QuestionIdentifier, [(element, text), ...]) in MTurk's answer forms:
    FreeText; repeated SelectionIdentifier (+ OtherSelectionText); UploadedFileSizeInBytes then
    UploadedFileKey. Fields that are no question of the form are dropped."""
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)
    out = []
    for q in form.questions:
        if q.kind == "upload":
            if uploads and q.identifier in uploads:
                size, key = uploads[q.identifier]
                out.append((q.identifier, [("UploadedFileSizeInBytes", str(size)),
                                           ("UploadedFileKey", key)]))
            continue
        got = values.get(q.identifier, [])
        if q.kind == "free":
            if got:
                out.append((q.identifier, [("FreeText", "|".join(got))]))
            continue
        known = {i for i, _ in q.selections}
        parts = [("SelectionIdentifier", v) for v in got if v in known]
        other = "".join(values.get(q.identifier + ".other", [])).strip()
        if other:
            parts.append(("OtherSelectionText", other))
        if parts:
            out.append((q.identifier, parts))
    return out


def missing_required(form: Form, given: list[tuple[str, list]]) -> list[str]:
    answered = {ident for ident, _ in given}
    return [q.identifier for q in form.questions if q.required and q.identifier not in answered]


# -- AnswerKey ----------------------------------------------------------------------------------
@dataclass
class AnswerKey:
    # question -> ([(set of selection ids, score)], default score)
    questions: dict[str, tuple[list[tuple[frozenset, int]], int]]
    mapping: tuple | None  # ("percentage", max) | ("scale", multiplier) | ("range", [...], out)


def parse_answer_key(xml_text: str) -> AnswerKey:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise param_error(f"The AnswerKey is not well-formed XML: {exc}")
    if _local(root.tag) != "AnswerKey":
        raise param_error(f"The AnswerKey root element must be AnswerKey ({ANSWER_KEY_NS}).")

    def integer(el, name: str, default: int | None = None) -> int:
        text = _text(el, name)
        if not re.fullmatch(r"-?\d+", text or ""):
            if default is not None:
                return default
            raise param_error(f"The AnswerKey's {name} must be a whole number.")
        return int(text)

    questions = {}
    for q in _kids(root, "Question"):
        options = [(frozenset(s.text.strip() for s in _kids(o, "SelectionIdentifier") if s.text),
                    integer(o, "AnswerScore")) for o in _kids(q, "AnswerOption")]
        questions[_text(q, "QuestionIdentifier")] = (options, integer(q, "DefaultScore", 0))
    mapping = None
    m = _kid(root, "QualificationValueMapping")
    if m is not None:
        if _kid(m, "PercentageMapping") is not None:
            mapping = ("percentage", integer(_kid(m, "PercentageMapping"), "MaximumSummedScore"))
        elif _kid(m, "ScaleMapping") is not None:
            mapping = ("scale", integer(_kid(m, "ScaleMapping"), "SummedScoreMultiplier"))
        elif _kid(m, "RangeMapping") is not None:
            r = _kid(m, "RangeMapping")
            ranges = [(integer(x, "InclusiveLowerBound"), integer(x, "InclusiveUpperBound"),
                       integer(x, "QualificationValue")) for x in _kids(r, "SummedScoreRange")]
            mapping = ("range", ranges, integer(r, "OutOfRangeQualificationValue"))
    return AnswerKey(questions, mapping)


def score(key: AnswerKey, given: list[tuple[str, list]]) -> int:
    """The qualification value the AnswerKey gives these answers: per question, the score of
    the option whose selections are exactly those chosen (else DefaultScore), summed, then
    mapped as the QualificationValueMapping says."""
    chosen = {ident: frozenset(v for el, v in parts if el == "SelectionIdentifier")
              for ident, parts in given}
    total = 0
    for ident, (options, default) in key.questions.items():
        picked = chosen.get(ident, frozenset())
        total += next((s for sel, s in options if sel == picked), default)
    if key.mapping is None:
        return total
    if key.mapping[0] == "percentage":
        return int(total * 100 / key.mapping[1] + 0.5) if key.mapping[1] else 0
    if key.mapping[0] == "scale":
        return total * key.mapping[1]
    _, ranges, outside = key.mapping
    return next((v for lo, hi, v in ranges if lo <= total <= hi), outside)
