"""Webmail: the school's mail in a browser (reading, sending, deleting), over HTTPS.

reading.py (the mail store as pages), sessions.py (login sessions),
app.py (the HTTP handlers and web security), server.py (the listener);
sending goes through mailserver.submission like the submission listener.
"""
