"""Webmail: the school's mail in a browser (reading, sending, deleting), over HTTPS.

Layout:
* context.py  the ``Webmail`` object every handler reaches (``request.app[WEBMAIL]``);
* security.py headers, CSRF/origin checks, sessions: wrap logged-in handlers in
  ``@login_required`` (a POST then needs the form field ``csrf`` =
  ``session.csrf``); a handler may set its own stricter Content-Security-Policy;
* pages.py    ``page()`` / ``error_page()`` (Jinja2 templates in templates/);
* i18n.py     German first, English second: mark every text people see,
  ``{{ _("Text") }}`` in templates, ``_ = gettext_of(request)`` then
  ``_("Text")`` in Python (error_page takes translated text), then
  ``make webmail-catalog`` and fill in the English msgstr in
  locale/en/LC_MESSAGES/messages.po (a test fails on untranslated texts);
  refusals.py turns the lower layers' English refusals into sentences;
* routes/     the handlers, one module per area, each with ``routes()``, added
  in app.py's ``build_app``;
* reading.py (the mail store as pages), compose.py (outgoing messages; the
  compose pages are compose_pages.py), uploads.py (files of the compose form),
  sessions.py (login sessions), server.py (the HTTPS listener and the optional
  plain-HTTP redirect).
Sending goes through mailserver.submission like the submission listener.
"""
