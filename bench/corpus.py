"""Synthetic news-like corpora for the benchmarks, generated deterministically (never committed as data).

Article i depends only on (seed, i), so a corpus of any size is the prefix of a larger one and a single
article can be regenerated (or a new one made) without the rest. Each article is ~500 words in ~25
sentences drawn from varied templates, with names, places, organisations, dates and figures, split into
paragraphs like a wire story. Every article also yields questions whose answer is one of its figures.

    python bench/corpus.py 1000 /tmp/ragbench/corpus-1000
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

FIRST = ("Ana Ben Chloe Dmitri Elena Farid Grace Hugo Ines Jonas Kaito Lena Marco Nadia Omar Petra Quentin Rosa "
         "Samir Tara Ugo Vera Wen Ximena Yusuf Zofia Aleksander Bianca Carlos Dalia Emil Fatima Gustav Hana Igor "
         "Julia Kwame Lucia Mateo Noor Oskar Priya Rafael Sofia Tomas Uma Viktor Willa Yara Zane").split()
LAST = ("Almeida Brennan Castillo Dubois Eriksen Fischer Garcia Haddad Ivanova Jensen Kowalski Larsen Moreau "
        "Nakamura Okafor Petrov Quinn Rossi Schmidt Tanaka Ueda Varga Weber Xu Yilmaz Zeller Abbott Bauer Costa "
        "Dimitriou Engel Ferreira Gruber Horvat Iqbal Jovanovic Keller Lindqvist Mendes Novak Olsen Pereira "
        "Rahman Santos Toivonen Urban Vidal Walsh Young Zimmermann").split()
PLACES = ("Aberdeen Antwerp Bergen Bilbao Bologna Bratislava Bremen Brno Cadiz Cork Dresden Dundee Eindhoven "
          "Faro Gdansk Genoa Ghent Graz Groningen Hamburg Helsinki Innsbruck Kaunas Kiel Krakow Leeds Leipzig "
          "Lille Linz Lyon Malmo Marseille Murcia Nantes Naples Odense Oporto Oslo Palermo Plovdiv Porto Poznan "
          "Riga Rotterdam Salzburg Seville Split Stavanger Tallinn Tampere Toulouse Trieste Turin Uppsala "
          "Utrecht Valencia Varna Vilnius Wroclaw Zagreb Zurich").split()
ORGS = ("the port authority|the regional council|the water board|the transport ministry|the health agency|"
        "the fishermen's union|the chamber of commerce|the university hospital|the energy regulator|"
        "the teachers' federation|the coast guard|the housing association|the farmers' cooperative|"
        "the rail operator|the statistics office|the environmental agency|the police department|"
        "the airport operator|the tourism board|the city museum").split("|")
ROLES = ("spokesperson director chair minister mayor inspector economist engineer analyst secretary "
         "coordinator commissioner treasurer superintendent").split()
UNITS = ("tonnes of grain|kilometres of track|new homes|jobs|patients|passengers|containers|hectares of forest|"
         "schools|buses|wind turbines|apprentices|households|fishing boats|flights|volunteers|bridges|"
         "kilometres of cycle lanes|classrooms|hospital beds").split("|")
VERBS = "built repaired inspected approved delivered cancelled funded closed opened evacuated hired recorded".split()
TOPICS = ("flood defences|the harbour expansion|the rail strike|school funding|the heatwave|the energy prices|"
          "the bridge repairs|the fishing quotas|the housing shortage|the airport noise|the election|"
          "the budget vote|the wildfire season|the tram line|the hospital waiting lists").split("|")
MONTHS = "January February March April May June July August September October November December".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
ADJ = "sharp modest unexpected steady record cautious long-awaited controversial temporary gradual".split()


class _Story:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.place = rng.choice(PLACES)
        self.org = rng.choice(ORGS)
        self.topic = rng.choice(TOPICS)
        self.people = [(f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(ROLES), rng.choice(ORGS)) for _ in range(4)]
        self.facts: list[tuple[str, str]] = []  # (question, answer)

    def sentence(self) -> str:
        r = self.rng
        name, role, org = r.choice(self.people)
        n = r.choice([r.randint(2, 99), r.randint(100, 9999), r.randint(10_000, 900_000)])
        figure = f"{n:,}"
        unit, verb = r.choice(UNITS), r.choice(VERBS)
        place = r.choice([self.place, self.place, r.choice(PLACES)])
        date = f"{r.choice(DAYS)} {r.randint(1, 28)} {r.choice(MONTHS)}"
        pct = f"{r.randint(1, 60)}.{r.randint(0, 9)} per cent"
        money = f"{r.randint(2, 950)} million euros"
        pick = r.randrange(12)
        if pick == 0:
            self.facts.append((f"How many {unit} were {verb} in {place} according to {name}?", figure))
            return f"{name}, the {role} of {org}, said {figure} {unit} were {verb} in {place} this year."
        if pick == 1:
            self.facts.append((f"How much did {org} set aside for {self.topic} in {place}?", money))
            return f"In {place}, {org} set aside {money} for {self.topic}, a {r.choice(ADJ)} increase on last year."
        if pick == 2:
            return f"On {date}, officials in {place} confirmed that {figure} {unit} had been {verb} since the spring."
        if pick == 3:
            return f"\"We have {verb} {figure} {unit} and we will not stop there,\" {name} told reporters in {place}."
        if pick == 4:
            return f"The figures published by {org} show a {r.choice(ADJ)} change of {pct} compared with {r.randint(2015, 2024)}."
        if pick == 5:
            return f"Critics in {place} argued that {self.topic} had been neglected for years, while {name} defended the plan."
        if pick == 6:
            return f"According to {org}, about {figure} residents of {place} were affected by {self.topic} on {date}."
        if pick == 7:
            return f"{name} is expected to present a revised timetable for {self.topic} to {org} before the end of {r.choice(MONTHS)}."
        if pick == 8:
            return f"Local businesses near {place} reported that sales fell by {pct} during the disruption."
        if pick == 9:
            return f"The project, first proposed in {r.randint(1995, 2022)}, has cost {money} so far, {org} said."
        if pick == 10:
            return f"Residents gathered outside the town hall in {place} on {date} to demand answers about {self.topic}."
        return f"Engineers from {org} inspected {r.randint(2, 40)} sites around {place} and found {r.randint(1, 30)} in need of urgent repair."


def article(i: int, seed: int = 0) -> tuple[str, str, list[tuple[str, str]]]:
    """(file text, title, facts) of article i: a title line then paragraphs, ~500 words."""
    story = _Story(random.Random(f"{seed}:{i}"))
    title = f"{story.org.capitalize()} {story.rng.choice(['faces questions over', 'unveils plan for', 'reports progress on', 'warns about'])} {story.topic} in {story.place}"
    paragraphs, words = [], 0
    while words < 500:
        paragraph = " ".join(story.sentence() for _ in range(story.rng.randint(3, 5)))
        words += len(paragraph.split())
        paragraphs.append(paragraph)
    return f"{title}\n\n" + "\n\n".join(paragraphs) + "\n", title, story.facts


def path_of(root: Path, i: int) -> Path:
    return root / f"{i // 1000:03d}" / f"article-{i:06d}.txt"


def generate(n: int, root: Path, seed: int = 0) -> Path:
    """Write articles 0..n-1 under `root` (1,000 per folder); a finished corpus is left as it is."""
    done = root / ".complete"
    if done.exists() and done.read_text() == f"{n} {seed}":
        return root
    for i in range(n):
        path = path_of(root, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(article(i, seed)[0], encoding="utf-8")
    done.write_text(f"{n} {seed}")
    return root


def questions(n_articles: int, count: int = 200, seed: int = 0) -> list[tuple[str, str, int]]:
    """`count` (question, answer, article number) triples about articles spread over the corpus."""
    rng = random.Random(f"questions:{seed}:{n_articles}")
    out: list[tuple[str, str, int]] = []
    while len(out) < count:
        i = rng.randrange(n_articles)
        facts = article(i, seed)[2]
        if facts:
            q, a = rng.choice(facts)
            out.append((q, a, i))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generate(args.n, args.out, args.seed)
    print(f"{args.n} articles in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
