"""Password letters: one printable PDF page per person (reportlab), for handing out
first passwords after an import or a reset (issue 17).

Pages are grouped by class and sorted by name inside it (the order a class
teacher hands them out in), people without a class last.  Each page: the
school's name, the person's name and class, login, e-mail address and first
password (in a monospaced font: ``l`` and ``1`` must not be confused; the
generated passwords avoid such characters anyway), how to log in to the
webmail, Thunderbird and Element, and a QR code with the messenger server's
address for the Element app's "homeserver" field.

German is the source language of every text here; ``school.language = "en"``
prints them in English through the admin pages' catalog.  Names may use any
script: DejaVu Sans (Debian's fonts-dejavu-core) is embedded when present,
else reportlab's Vera (Latin-1 only).
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from conf.settings import Settings
from directory.importer import InitialPassword

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
CATALOGS = Path(__file__).resolve().parents[1] / "admin_web" / "locale"
Translate = Callable[[str], str]


@dataclass(frozen=True)
class LetterSchool:
    """What every letter says about the school's servers."""

    name: str
    webmail_url: str
    mail_host: str
    imaps_port: int
    submission_port: int
    matrix_url: str
    language: str = "de"  # of the letters' texts (settings: school.language)


def letter_translator(language: str) -> Translate:
    """The letters' texts in ``language`` (German, the source, needs no catalog)."""
    if language == "de":
        return lambda text: text
    from mailserver.webmail.i18n import load_translations

    translators = load_translations(CATALOGS)
    return translators.get(language) or translators["de"]


def _fonts() -> tuple[str, str, str]:
    """(regular, bold, monospaced) font names, registered once per process."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    for folder in _FONT_DIRS:
        files = {"Schulhof": "DejaVuSans.ttf", "Schulhof-Bold": "DejaVuSans-Bold.ttf",
                 "Schulhof-Mono": "DejaVuSansMono.ttf"}
        if all((folder / f).exists() for f in files.values()):
            for name, file in files.items():
                if name not in registered:
                    pdfmetrics.registerFont(TTFont(name, str(folder / file)))
            return "Schulhof", "Schulhof-Bold", "Schulhof-Mono"
    return "Helvetica", "Helvetica-Bold", "Courier"


def _collation(text: str) -> str:
    """Alphabetical as a class list has it: Şahin beside Sahn, Öztürk beside Oz (marks
    dropped after Unicode decomposition, case folded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _class_key(name: str) -> tuple[tuple[int, str], ...]:
    """Classes in the order of the grades: 5a, 5b, 6a, ..., 10a (numbers as numbers)."""
    return tuple((int(part), "") if part.isdigit() else (-1, _collation(part))
                 for part in re.split(r"(\d+)", name) if part)


def letter_order(people: Iterable[InitialPassword]) -> list[InitialPassword]:
    """By class (no class last), then last name, first name, login."""
    return sorted(people, key=lambda p: (p.class_name == "", _class_key(p.class_name),
                                         _collation(p.last_name), _collation(p.first_name),
                                         p.login))


QR_FORM = "messenger-qr"


def _qr_form(canvas: Canvas, text: str, size: float) -> None:
    """The QR code once per document as a PDF form XObject (it is the same on every
    page; drawing it per page was nine tenths of the time)."""
    widget = QrCodeWidget(text, barLevel="M")
    left, bottom, right, top = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (right - left), 0, 0,
                                             size / (top - bottom), 0, 0])
    drawing.add(widget)
    canvas.beginForm(QR_FORM, 0, 0, size, size)
    renderPDF.draw(drawing, canvas, 0, 0)
    canvas.endForm()


def _qr(canvas: Canvas, x: float, y: float) -> None:
    canvas.saveState()
    canvas.translate(x, y)
    canvas.doForm(QR_FORM)
    canvas.restoreState()


def render_letters(people: Iterable[InitialPassword], school: LetterSchool,
                   _: Translate | None = None) -> bytes:
    """The letters as one PDF, a page per person (see the module docstring), in
    the school's language unless ``_`` translates otherwise."""
    if _ is None:
        _ = letter_translator(school.language)
    regular, bold, mono = _fonts()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(_("Zugangsdaten"))
    canvas.setAuthor(school.name)
    height = A4[1]
    left = 25 * mm
    _qr_form(canvas, school.matrix_url, 40 * mm)
    for person in letter_order(people):
        y = height - 30 * mm
        canvas.setFont(bold, 16)
        canvas.drawString(left, y, school.name)
        y -= 14 * mm
        canvas.setFont(bold, 13)
        name = f"{person.first_name} {person.last_name}".strip() or person.login
        canvas.drawString(left, y, _("Zugangsdaten für %(name)s") % {"name": name})
        if person.class_name:
            y -= 7 * mm
            canvas.setFont(regular, 11)
            canvas.drawString(left, y, _("Klasse %(name)s") % {"name": person.class_name})
        y -= 14 * mm
        for label, value in ((_("Benutzername"), person.login),
                             (_("E-Mail-Adresse"), person.email),
                             (_("Erstes Passwort"), person.password)):
            canvas.setFont(regular, 11)
            canvas.drawString(left, y, label + ":")
            canvas.setFont(mono if value is person.password else bold, 13)
            canvas.drawString(left + 45 * mm, y, value)
            y -= 9 * mm
        y -= 4 * mm
        canvas.setFont(regular, 10)
        lines = [
            _("Bitte ändern Sie das Passwort nach der ersten Anmeldung und geben Sie es "
              "niemandem weiter."),
            "",
            _("Webmail (im Browser): %(url)s") % {"url": school.webmail_url},
            _("Thunderbird und andere E-Mail-Programme:"),
            "    " + _("Posteingang (IMAP): %(host)s, Port %(port)s, SSL/TLS")
            % {"host": school.mail_host, "port": school.imaps_port},
            "    " + _("Postausgang (SMTP): %(host)s, Port %(port)s, STARTTLS")
            % {"host": school.mail_host, "port": school.submission_port},
            "    " + _("Benutzername: %(login)s") % {"login": person.login},
            _("Messenger (Element-App): als Server (Homeserver) eingeben oder den "
              "QR-Code scannen:"),
            "    " + school.matrix_url,
        ]
        for line in lines:
            canvas.drawString(left, y, line)
            y -= 6 * mm
        _qr(canvas, left, y - 45 * mm)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def letter_school(settings: Settings) -> LetterSchool:
    """The addresses people use, as the DNS records (``schulhof dns-records``) publish
    them: mail at the mail host, the messenger at ``matrix.<domain>`` (its
    ``.well-known`` document names that)."""
    listen = settings.listen
    web_port = listen.web_public_port or listen.web
    webmail = f"https://{settings.smtp_hostname}" + ("" if web_port == 443 else f":{web_port}")
    return LetterSchool(name=settings.school.name, webmail_url=webmail,
                        mail_host=settings.smtp_hostname, imaps_port=listen.imaps,
                        submission_port=listen.submission,
                        matrix_url=f"https://matrix.{settings.school.domain.lower()}",
                        language=settings.school.language)
