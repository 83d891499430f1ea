"""SPF record syntax and macro expansion (RFC 7208 4.5, 4.6, 5, 6 and 7).

Pure functions, no I/O: :func:`parse_record` turns a ``v=spf1`` TXT string
into typed terms (raising :class:`SpfSyntaxError`, which the evaluator turns
into ``permerror``), :func:`expand` expands a macro-string (RFC 7208 7).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
# Mechanisms and modifiers that cost a DNS query (RFC 7208 4.6.4).
LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})


class SpfSyntaxError(ValueError):
    """The record or a macro does not follow RFC 7208's grammar: permerror."""


@dataclass(frozen=True)
class Mechanism:
    qualifier: str  # one of QUALIFIERS' keys
    name: str       # one of MECHANISMS, lower case
    domain_spec: str | None = None  # macro-string, unexpanded
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # ip4/ip6
    cidr4: int = 32
    cidr6: int = 128

    @property
    def result(self) -> str:
        return QUALIFIERS[self.qualifier]


@dataclass(frozen=True)
class SpfRecord:
    mechanisms: tuple[Mechanism, ...]
    redirect: str | None = None
    exp: str | None = None


def is_spf_record(text: str) -> bool:
    """RFC 7208 4.5: exactly "v=spf1" followed by a space or the end, any case."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


_MACRO = re.compile(r"%\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-",
                    re.ASCII)
_MACRO_LITERAL = re.compile(r"[\x21-\x24\x26-\x7e]", re.ASCII)
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.ASCII | re.DOTALL)
_CIDR4 = r"(?:/(0|[1-9]\d?))?"
_CIDR6 = r"(?://(0|[1-9]\d{0,2}))?"
_DUAL_CIDR = re.compile(rf"^(.*?){_CIDR4}{_CIDR6}$", re.ASCII | re.DOTALL)
# toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_TOPLABEL = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]+$|^[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9]$",
                       re.ASCII)
_EXP_ONLY = frozenset("crt")


def check_macro_string(text: str, *, for_exp: bool = False) -> None:
    """Raise SpfSyntaxError unless ``text`` is a valid macro-string (RFC 7208 7.1)."""
    pos = 0
    while pos < len(text):
        m = _MACRO.match(text, pos)
        if m:
            if m.group(1) and m.group(1).lower() in _EXP_ONLY and not for_exp:
                raise SpfSyntaxError(f"macro %{{{m.group(1)}}} only allowed in exp")
            if m.group(2) and int(m.group(2)) == 0:
                raise SpfSyntaxError("macro keeps zero labels")
            pos = m.end()
        elif _MACRO_LITERAL.match(text, pos):
            pos += 1
        else:
            raise SpfSyntaxError(f"bad character in macro-string at {pos}: {text!r}")


def check_domain_spec(spec: str) -> None:
    """domain-spec = macro-string domain-end (RFC 7208 7.1)."""
    if not spec:
        raise SpfSyntaxError("empty domain-spec")
    check_macro_string(spec)
    if _ends_with_macro(spec.rstrip(".")):
        return  # domain-end = macro-expand
    top = spec.rstrip(".").rsplit(".", 1)
    if len(top) != 2 or not _TOPLABEL.match(top[1]):
        raise SpfSyntaxError(f"domain-spec without a valid top label: {spec!r}")


def _ends_with_macro(spec: str) -> bool:
    return any(m.end() == len(spec) and m.group(1) for m in _MACRO.finditer(spec))


def _cidr(value: str | None, maximum: int, default: int) -> int:
    if value is None:
        return default
    n = int(value)
    if n > maximum:
        raise SpfSyntaxError(f"CIDR length {n} > {maximum}")
    return n


def _parse_mechanism(term: str) -> Mechanism:
    qualifier = "+"
    if term[0] in QUALIFIERS:
        qualifier, term = term[0], term[1:]
    name, sep, arg = term.partition(":")
    lname = name.lower()
    if lname in ("a", "mx") or (lname.startswith(("a/", "mx/"))):
        # "a/24" and "mx//64" have the CIDR without a colon.
        base, slash, rest = term.partition("/")
        if not sep and slash:
            lname, arg = base.lower(), "/" + rest
        m = _DUAL_CIDR.match(arg)
        assert m is not None  # the pattern matches every string
        spec = m.group(1)
        if lname not in ("a", "mx") or (not sep and spec):
            raise SpfSyntaxError(f"unknown mechanism {term!r}")
        if sep:
            check_domain_spec(spec)
        return Mechanism(qualifier, lname, spec if sep else None,
                         cidr4=_cidr(m.group(2), 32, 32), cidr6=_cidr(m.group(3), 128, 128))
    if lname == "all":
        if sep:
            raise SpfSyntaxError("all takes no argument")
        return Mechanism(qualifier, "all")
    if lname in ("include", "exists"):
        if not sep:
            raise SpfSyntaxError(f"{lname} needs a domain")
        check_domain_spec(arg)
        return Mechanism(qualifier, lname, arg)
    if lname == "ptr":
        if sep:
            check_domain_spec(arg)
        return Mechanism(qualifier, "ptr", arg if sep else None)
    if lname in ("ip4", "ip6"):
        if not sep:
            raise SpfSyntaxError(f"{lname} needs a network")
        address, _, length = arg.partition("/")
        if length and not re.fullmatch(r"0|[1-9]\d{0,2}", length):
            raise SpfSyntaxError(f"bad CIDR length in {term!r}")
        try:
            ip = (ipaddress.IPv4Address(address) if lname == "ip4"
                  else ipaddress.IPv6Address(address))
        except ValueError:
            raise SpfSyntaxError(f"bad address in {term!r}") from None
        maximum = 32 if lname == "ip4" else 128
        network = ipaddress.ip_network(f"{ip}/{_cidr(length or None, maximum, maximum)}",
                                       strict=False)
        return Mechanism(qualifier, lname, network=network)
    raise SpfSyntaxError(f"unknown mechanism {term!r}")


def parse_record(text: str) -> SpfRecord:
    """Parse a ``v=spf1`` record (RFC 7208 4.6.1, 5, 6)."""
    if not is_spf_record(text):
        raise SpfSyntaxError("not an SPF record")
    mechanisms: list[Mechanism] = []
    redirect = exp = None
    seen_redirect = seen_exp = False
    for term in text[6:].split(" "):
        if not term:
            continue  # several spaces between terms: tolerated in practice
        modifier = _MODIFIER.fullmatch(term)
        if modifier and ":" not in modifier.group(1) and "/" not in modifier.group(1):
            key, value = modifier.group(1).lower(), modifier.group(2)
            if key == "redirect":
                if seen_redirect:
                    raise SpfSyntaxError("redirect given twice")
                check_domain_spec(value)
                seen_redirect, redirect = True, value
            elif key == "exp":
                if seen_exp:
                    raise SpfSyntaxError("exp given twice")
                check_domain_spec(value)
                seen_exp, exp = True, value
            else:
                check_macro_string(value)  # unknown modifiers are ignored (6)
            continue
        mechanisms.append(_parse_mechanism(term))
    return SpfRecord(tuple(mechanisms), redirect, exp)


@dataclass(frozen=True)
class MacroContext:
    """The values macros expand to (RFC 7208 7.3)."""

    sender: str   # local-part@domain
    domain: str   # the current <domain>
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str

    @property
    def local_part(self) -> str:
        return self.sender.rpartition("@")[0] or "postmaster"

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


def _letter_value(letter: str, ctx: MacroContext) -> str:
    if letter == "s":
        return ctx.sender
    if letter == "l":
        return ctx.local_part
    if letter == "o":
        return ctx.sender_domain
    if letter == "d":
        return ctx.domain
    if letter == "i":
        if ctx.ip.version == 4:
            return str(ctx.ip)
        return ".".join(ctx.ip.exploded.replace(":", ""))  # nibbles, 7.3
    if letter == "p":
        return "unknown"  # we do not validate the client's PTR name (7.3 allows it)
    if letter == "v":
        return "in-addr" if ctx.ip.version == 4 else "ip6"
    if letter == "h":
        return ctx.helo
    raise SpfSyntaxError(f"macro %{{{letter}}} not allowed here")


def expand(spec: str, ctx: MacroContext) -> str:
    """Expand a macro-string (RFC 7208 7.3, 7.4); the result is not yet a checked name."""
    check_macro_string(spec)

    def replace(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "%%":
            return "%"
        if whole == "%_":
            return " "
        if whole == "%-":
            return "%20"
        letter, digits, reverse, delimiters = m.groups()
        value = _letter_value(letter.lower(), ctx)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits):]
        out = ".".join(parts)
        if letter.isupper():
            out = urllib.parse.quote(out, safe="")  # 7.3: URL-escape upper-case macros
        return out

    return _MACRO.sub(replace, spec)


def as_query_name(expanded: str) -> str:
    """Trim an expanded domain-spec to a queryable name (RFC 7208 7.3: drop labels on
    the left until it fits 253 characters)."""
    name = expanded.rstrip(".")
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


def is_valid_domain(name: str) -> bool:
    """Multi-label, labels 1..63 octets, at most 253 characters (RFC 7208 4.3)."""
    name = name.rstrip(".")
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels)
