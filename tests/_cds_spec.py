"""The CDS Hooks 2.0 response rules a card must meet (cds-hooks.hl7.org, "CDS Service Response" and
"Card Attributes"), as a checker that returns every problem found (an empty list: conformant).

Response: ``cards`` (REQUIRED array), ``systemActions`` (OPTIONAL array). Card: ``summary``
(REQUIRED, "one-sentence, <140-character"), ``indicator`` (REQUIRED: info, warning, critical),
``source`` (REQUIRED object with a REQUIRED ``label``; OPTIONAL ``url``, ``icon``, ``topic``),
``uuid`` (OPTIONAL string; this service always sends one, used by feedback), ``detail`` (OPTIONAL
GitHub-flavoured Markdown string), ``suggestions`` (OPTIONAL; then ``selectionBehavior`` is
REQUIRED: at-most-one or any), ``overrideReasons`` (OPTIONAL Codings), ``links`` (OPTIONAL: each a
``label``, ``url`` and ``type`` absolute or smart), ``extension`` (OPTIONAL object).
"""
from __future__ import annotations

import re

CARD_KEYS = {"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
             "overrideReasons", "links", "extension"}
INDICATORS = ("info", "warning", "critical")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def card_problems(card: dict, where: str = "card") -> list[str]:
    out = []
    if not isinstance(card, dict):
        return [f"{where} is not an object"]
    out += [f"{where}.{k}: not a card attribute" for k in card if k not in CARD_KEYS]
    s = card.get("summary")
    if not isinstance(s, str) or not s.strip():
        out.append(f"{where}.summary: required, a non-empty string")
    elif len(s) >= 140:
        out.append(f"{where}.summary: {len(s)} characters, the specification asks for fewer than 140")
    elif "\n" in s:
        out.append(f"{where}.summary: one sentence, no line breaks")
    if card.get("indicator") not in INDICATORS:
        out.append(f"{where}.indicator: {card.get('indicator')!r} is not one of {', '.join(INDICATORS)}")
    src = card.get("source")
    if not isinstance(src, dict) or not isinstance(src.get("label"), str) or not src["label"].strip():
        out.append(f"{where}.source.label: required")
    elif "url" in src and not str(src["url"]).startswith(("http://", "https://")):
        out.append(f"{where}.source.url: an absolute URL")
    if "uuid" in card and not (isinstance(card["uuid"], str) and UUID.match(card["uuid"])):
        out.append(f"{where}.uuid: not a UUID string")
    if "detail" in card and not isinstance(card["detail"], str):
        out.append(f"{where}.detail: a Markdown string")
    if card.get("suggestions") and card.get("selectionBehavior") not in ("at-most-one", "any"):
        out.append(f"{where}.selectionBehavior: required with suggestions")
    for i, link in enumerate(card.get("links") or []):
        if not isinstance(link, dict) or not all(isinstance(link.get(k), str) and link[k] for k in
                                                 ("label", "url", "type")):
            out.append(f"{where}.links[{i}]: label, url and type are required")
        elif link["type"] not in ("absolute", "smart"):
            out.append(f"{where}.links[{i}].type: absolute or smart")
    if "extension" in card and not isinstance(card["extension"], dict):
        out.append(f"{where}.extension: an object")
    return out


def response_problems(body: object) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return ["response: 'cards' (an array) is required"]
    out = [f"response.{k}: not a response attribute" for k in body if k not in ("cards", "systemActions")]
    for i, card in enumerate(body["cards"]):
        out += card_problems(card, f"cards[{i}]")
    return out
