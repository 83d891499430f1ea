"""The school's administration use cases, composed from every package's part.

Each package offers its part as a function (the mail store erases and reads out
mail, the messenger rooms and media, the directory the account); the modules
here put them together, and both the ``schulhof`` command line and the admin
web pages call them, so the two front ends cannot drift apart.
"""
