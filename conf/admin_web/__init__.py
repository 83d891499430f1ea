"""The school administration's web pages (issue 17), under ``/admin/`` of the webmail.

Another front end of the composition root, like the ``schulhof`` command: the
handlers call the same composed functions (``conf.admin``) and the directory.
They are routes of the webmail's own application, so they share its login,
sessions, CSRF checks, security headers (CSP without scripts) and error pages
(``mailserver.webmail.security``: the seam is ``login_required`` and the
``extra_routes`` the webmail listener already takes); only accounts with the
role ``admin`` get in.  German is the source language (``locale/en`` has English).
"""
