"""The webmail's languages: German first, English second (gettext catalogs via Babel).

Messages are written in German in the code and the templates; German is the
source language and needs no catalog.  ``locale/en/LC_MESSAGES/messages.po``
translates them to English.  The .po file is compiled in memory when the app
starts (Babel's ``write_mo``), so there is no build step and no binary file
in the repository.

Marking strings (for the catalog, ``make webmail-catalog`` extracts them):
* templates: ``{{ _("Posteingang") }}``, with values
  ``{{ _("Seite %(n)s von %(m)s", n=page.number, m=page.pages) }}`` (Jinja2's
  i18n extension, new style: values are escaped; a literal % is written %%);
* Python: ``_ = gettext_of(request)`` then ``_("Ordner nicht gefunden")`` or
  ``_("größer als %(limit)s MiB", limit=limit)``;
* a string marked where no request is at hand: ``N_("...")``, translated later
  with ``_(text)``.

The language of a request: the ``__Host-schulhof-lang`` cookie (the
"English"/"Deutsch" link on every page), else the browser's Accept-Language
(RFC 9110 section 12.5.4) between German and English, else German.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from aiohttp import web
from babel.dates import format_date, format_datetime, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("de", "en")
DEFAULT = "de"
LANGUAGE_COOKIE = "__Host-schulhof-lang"
CATALOGS = Path(__file__).parent / "locale"
TRANSLATIONS = web.AppKey("translations", dict)



def N_(message: str) -> str:
    """Marks ``message`` for the catalog where it is translated later."""
    return message


# The special-use folders (RFC 6154) keep their IMAP names; people see these.
# (In this order in the folder list.)
# How a mail's date reads in German (as people here write it); other languages
# get their CLDR medium date and short time ("Dec 5, 2026, 10:00 AM").
GERMAN_DATE = "dd.MM.yyyy HH:mm"

FOLDER_LABELS = {"INBOX": N_("Posteingang"), "Drafts": N_("Entwürfe"), "Sent": N_("Gesendet"),
                 "Archive": N_("Archiv"), "Junk": N_("Spam"), "Trash": N_("Papierkorb")}


def folder_order(folders: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The folder list as mail programs show it: the special-use folders first, in the
    order people use them, then the others by name."""
    rank = {name: i for i, name in enumerate(FOLDER_LABELS)}
    return sorted(folders, key=lambda f: (rank.get(f[0], len(rank)), f[0].casefold()))


class Translator:
    """``_("text", **values)``: the text in this language, ``%(name)s`` filled in."""

    def __init__(self, locale: str, translations: gettext.NullTranslations) -> None:
        self.locale = locale
        self.translations = translations

    def __call__(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        text = self.translations.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def when(self, moment: datetime | None) -> str:
        """A mail's date and time in this language (Babel, CLDR data), in the time
        zone the sender wrote it in (as the Date header says)."""
        if moment is None:
            return ""
        if self.locale == DEFAULT:
            return format_datetime(moment, GERMAN_DATE, tzinfo=moment.tzinfo, locale=DEFAULT)
        pattern = str(get_datetime_format("medium", locale=self.locale))
        return pattern.replace("'", "").format(
            format_time(moment, "short", tzinfo=moment.tzinfo, locale=self.locale),
            format_date(moment, "medium", locale=self.locale))

    def folder(self, name: str) -> str:
        """A folder's name as people see it (special-use folders in their language)."""
        label = FOLDER_LABELS.get(name)
        return self(label) if label is not None else name


GERMAN = Translator(DEFAULT, gettext.NullTranslations())  # the source language itself


def load_translations(catalogs: Path = CATALOGS) -> dict[str, Translator]:
    """Every language's translator; the .po files compiled in memory."""
    found = {DEFAULT: GERMAN}
    for locale in LOCALES:
        po = catalogs / locale / "LC_MESSAGES" / "messages.po"
        if locale == DEFAULT or not po.exists():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=locale)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        found[locale] = Translator(locale, gettext.GNUTranslations(compiled))
    return found


def parse_accept_language(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first (q=0 dropped;
    equal weights keep their order).  Malformed entries are skipped, never an error."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:50]):
        tag, _sep, params = item.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or len(tag) > 35 or not all(c.isalnum() or c in "-*" for c in tag):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0 < quality <= 1:
            weighted.append((-quality, position, tag))
    return [tag for _q, _p, tag in sorted(weighted)]


def negotiate(wanted: Iterable[str], available: Iterable[str] = LOCALES) -> str | None:
    """The first wanted language we have ("en-GB" matches "en"), or None."""
    offered = set(available)
    for tag in wanted:
        primary = tag.split("-", 1)[0]
        if primary in offered:
            return primary
    return None


def locale_of(request: web.Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LOCALES:
        return chosen
    return negotiate(parse_accept_language(request.headers.get("Accept-Language", ""))) \
        or DEFAULT


def gettext_of(request: web.Request) -> Translator:
    """The translator for this request's language."""
    translators: dict[str, Translator] = request.app[TRANSLATIONS]
    return translators.get(locale_of(request)) or translators[DEFAULT]
