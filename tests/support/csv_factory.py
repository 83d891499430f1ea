"""School CSV exports for the import tests and the import benchmark.

``make_school`` builds a deterministic school (pupils in classes and courses,
teachers leading classes and courses, parents of one to three children, names
with umlauts); ``rollover`` makes next school year's export of it; ``to_csv``
writes either as bytes in any encoding and with any separator, the way school
administration programs do.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FIRST_NAMES = (
    "Jürgen", "Jörg", "Björn", "Sören", "Günther", "Jürgen", "Bärbel", "Käthe", "Zoë",
    "Anna", "Lena", "Mia", "Emma", "Hannah", "Lea", "Sophie", "Marie", "Johanna", "Clara",
    "Ben", "Paul", "Leon", "Finn", "Elias", "Jonas", "Luis", "Noah", "Felix", "Maximilian",
    "Ümit", "Özlem", "Ayse", "Mehmet", "Elif", "Can", "Fatma", "Yusuf",
    "André", "Chloé", "René", "Noémie", "François", "Renée", "Jörn", "Mareike", "Till",
)
LAST_NAMES = (
    "Müßig", "Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Schäfer", "Köhler",
    "Bäcker", "Größer", "Fuß", "Krüger", "Hoffmann", "Schröder", "Neumann", "Schwarz",
    "Zimmermann", "Braun", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause",
    "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler-Schütz", "von Löwenstein",
    "Öztürk", "Yilmaz", "Kaya", "Demir", "Sahin",
    "Dubois", "Lefèvre", "Nguyen", "Kowalski", "Jäger", "Böhm", "Süß", "Groß", "Vogt",
)
COURSE_SUBJECTS = ("Französisch", "Latein", "Spanisch", "Informatik", "Musik", "Kunst",
                   "Religion", "Ethik", "Darstellendes Spiel", "Chor")
HEADER = ("external_id", "first_name", "last_name", "role", "class", "courses", "email",
          "parent_of")
ROLE_WORDS = {"pupil": "Schüler", "teacher": "Lehrer", "parent": "Eltern"}


@dataclass(frozen=True)
class Person:
    external_id: str
    first_name: str
    last_name: str
    role: str  # "pupil", "teacher" or "parent"
    klass: str = ""  # a pupil's class, the class a teacher leads
    courses: tuple[str, ...] = ()
    email: str = ""
    parent_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...]
    grades: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
    letters: str = "abc"

    def by_role(self, role: str) -> list[Person]:
        return [p for p in self.people if p.role == role]

    @property
    def pupils(self) -> list[Person]:
        return self.by_role("pupil")

    @property
    def teachers(self) -> list[Person]:
        return self.by_role("teacher")

    @property
    def parents(self) -> list[Person]:
        return self.by_role("parent")

    def person(self, external_id: str) -> Person:
        return next(p for p in self.people if p.external_id == external_id)

    def without(self, *external_ids: str) -> Roster:
        gone = set(external_ids)
        people = tuple(dataclasses.replace(p, parent_of=tuple(c for c in p.parent_of
                                                              if c not in gone))
                       for p in self.people if p.external_id not in gone)
        return dataclasses.replace(self, people=people)

    def replace(self, external_id: str, **changes: object) -> Roster:
        return dataclasses.replace(self, people=tuple(
            dataclasses.replace(p, **changes) if p.external_id == external_id else p
            for p in self.people))


def course_names(grade: int) -> list[str]:
    return [f"{subject} {grade}" for subject in COURSE_SUBJECTS]


def _pupil(rng: random.Random, number: int, grade: int, letter: str) -> Person:
    return Person(f"S{number:05d}", rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), "pupil",
                  f"{grade}{letter}", tuple(rng.sample(course_names(grade), 2)))


def make_school(pupils: int = 60, teachers: int | None = None, parents: int | None = None,
                *, seed: int = 1, class_size: int = 28) -> Roster:
    """A school of ``pupils`` in grades 5-10 (as many parallel classes as they need).

    The first pupil is always Jürgen Müßig of 5a.  Teachers default to one per
    fifteen pupils, parents to one per three pupils (siblings share parents).
    """
    rng = random.Random(seed)
    grades = (5, 6, 7, 8, 9, 10)
    letters = "abcdefghijklmnopqrstuvwxyz"[:max(1, math.ceil(pupils / class_size / 6))]
    classes = [(g, letter) for g in grades for letter in letters]
    people = [_pupil(rng, n + 1, *classes[n % len(classes)]) for n in range(pupils)]
    if people:
        people[0] = dataclasses.replace(people[0], first_name="Jürgen", last_name="Müßig",
                                        klass="5a")
    teachers = max(1, pupils // 15) if teachers is None else teachers
    for n in range(teachers):
        grade, letter = classes[n % len(classes)]
        leads = f"{grade}{letter}" if n < len(classes) else ""
        courses = tuple(rng.sample([c for g in grades for c in course_names(g)], 2))
        people.append(Person(f"L{n + 1:04d}", rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES),
                             "teacher", leads, courses))
    people.extend(_parents(rng, [p for p in people if p.role == "pupil"],
                           pupils // 3 if parents is None else parents, start=1))
    return Roster(tuple(people), grades, letters)


def _parents(rng: random.Random, pupils: Sequence[Person], count: int,
             start: int) -> list[Person]:
    children = list(pupils)
    rng.shuffle(children)
    out = []
    for n in range(min(count, len(children))):
        kids = children[n::count][:rng.choice((1, 1, 2, 3))]  # one to three children
        out.append(Person(f"E{start + n:05d}", rng.choice(FIRST_NAMES), kids[0].last_name,
                          "parent", parent_of=tuple(k.external_id for k in kids)))
    return out


def rollover(roster: Roster, *, seed: int = 2, repeaters: float = 0.02) -> Roster:
    """Next school year: every class moves up a grade (``5a`` -> ``6a``), the top grade
    leaves with the parents of those who leave, a new grade 5 comes with new parents,
    a few pupils repeat their year and class teachers go up with their classes."""
    rng = random.Random(seed)
    top, first = max(roster.grades), min(roster.grades)
    next_pupil = 1 + max(int(p.external_id[1:]) for p in roster.pupils)
    next_parent = 1 + max((int(p.external_id[1:]) for p in roster.parents), default=0)
    pupils, new_pupils, gone = [], [], set()
    for p in roster.pupils:
        grade, letter = int(p.klass[:-1]), p.klass[-1]
        if rng.random() < repeaters:
            pupils.append(p)
        elif grade == top:
            gone.add(p.external_id)
        else:
            pupils.append(dataclasses.replace(
                p, klass=f"{grade + 1}{letter}",
                courses=tuple(rng.sample(course_names(grade + 1), 2))))
    leaving_classes = {p.klass for p in roster.pupils if int(p.klass[:-1]) == top}
    for n in range(len(gone)):
        letter = roster.letters[n % len(roster.letters)]
        new_pupils.append(_pupil(rng, next_pupil + n, first, letter))
    teachers = []
    for t in roster.teachers:
        if t.klass:
            grade, letter = int(t.klass[:-1]), t.klass[-1]
            klass = f"{first}{letter}" if t.klass in leaving_classes else f"{grade + 1}{letter}"
            t = dataclasses.replace(t, klass=klass)
        teachers.append(t)
    parents = []
    for p in roster.parents:
        kids = tuple(k for k in p.parent_of if k not in gone)
        if kids:
            parents.append(dataclasses.replace(p, parent_of=kids))
    parents.extend(_parents(rng, new_pupils, len(new_pupils) // 3, start=next_parent))
    return dataclasses.replace(roster, people=(*pupils, *new_pupils, *teachers, *parents))


def to_csv(people: Roster | Iterable[Person], *, delimiter: str = ";",
           encoding: str = "cp1252", bom: bool = False, header: Sequence[str] = HEADER,
           role_words: dict[str, str] | None = None, line_end: str = "\r\n") -> bytes:
    """The export as bytes: German role words (``Schüler``), lists joined with ``|``."""
    if isinstance(people, Roster):
        people = people.people
    words = ROLE_WORDS if role_words is None else role_words
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(header)
    for p in people:
        writer.writerow((p.external_id, p.first_name, p.last_name, words.get(p.role, p.role),
                         p.klass, "|".join(p.courses), p.email, "|".join(p.parent_of)))
    data = buffer.getvalue().encode(encoding)
    return ("\ufeff".encode(encoding) if bom else b"") + data
