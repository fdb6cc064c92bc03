#!/usr/bin/env python3
"""Write scripts/text/prompts.jsonl: deterministic generation prompts for the MACHINE side.

A small instruct LLM (SmolLM2-135M-Instruct) answers each prompt; its answers are the
machine-written counterpart of the human corpus built by build_human_text.py. The registers
mirror the human sources (package descriptions, handbook/manual prose, man pages, glossary
entries) and add the resume registers the detector actually sees (summaries, cover letters,
experience and project write-ups).

    scripts/text/make_prompts.py [--out scripts/text/prompts.jsonl] [--seed N]

Each line: {"id", "prompt", "register", "split"}; split = hash of the prompt text (60/20/20).
Standard library only; the same seed always gives byte-identical output.
"""

import argparse
import hashlib
import json
import random

ROLES = {
    "data": ["data engineer", "data scientist", "machine learning engineer", "data analyst",
             "analytics engineer", "database administrator"],
    "software": ["backend developer", "frontend developer", "full-stack developer",
                 "mobile developer", "embedded software engineer", "site reliability engineer",
                 "DevOps engineer", "QA automation engineer", "security engineer"],
    "business": ["product manager", "project manager", "business analyst",
                 "marketing manager", "sales manager", "account executive",
                 "operations manager", "financial analyst", "accountant",
                 "human resources specialist", "recruiter", "supply chain coordinator"],
    "other": ["registered nurse", "mechanical engineer", "civil engineer", "teacher",
              "graphic designer", "technical writer", "customer support lead",
              "logistics manager", "paralegal", "research scientist", "electrician",
              "pharmacist"],
}
SKILLS = {
    "data": ["Python", "SQL", "Apache Spark", "Airflow", "dbt", "Kafka", "Snowflake",
             "PostgreSQL", "pandas", "PyTorch", "scikit-learn", "Tableau", "AWS Glue",
             "data modeling", "A/B testing", "BigQuery"],
    "software": ["Java", "Go", "Rust", "TypeScript", "React", "Kubernetes", "Docker",
                 "Terraform", "CI/CD pipelines", "REST APIs", "gRPC", "Linux", "C++",
                 "PostgreSQL", "Redis", "observability"],
    "business": ["stakeholder management", "budget planning", "Salesforce", "Excel",
                 "market research", "negotiation", "agile delivery", "vendor management",
                 "forecasting", "team leadership", "process improvement", "SAP",
                 "customer onboarding", "contract review"],
    "other": ["patient care", "AutoCAD", "SolidWorks", "curriculum design", "Adobe Illustrator",
              "documentation", "safety compliance", "scheduling", "training new staff",
              "quality control", "laboratory techniques", "inventory management",
              "legal research", "customer communication"],
}
INDUSTRIES = ["healthcare", "fintech", "retail", "logistics", "telecommunications",
              "e-commerce", "insurance", "manufacturing", "public sector", "education",
              "energy", "media", "automotive", "banking", "travel", "non-profit"]
SENIORITY = ["junior", "mid-level", "senior", "lead", "principal"]
ACHIEVEMENTS = [
    "reduced processing time by {p}%", "cut infrastructure costs by {p}%",
    "grew quarterly revenue by {p}%", "improved customer satisfaction scores by {p}%",
    "mentored {n} junior colleagues", "led a team of {n} people",
    "migrated {n} legacy systems", "shortened release cycles from weeks to days",
    "reduced error rates by {p}%", "onboarded {n} new clients",
    "trained {n} staff members", "delivered the project {n} weeks ahead of schedule",
]
COMPANY_KINDS = ["a regional hospital network", "a mid-sized logistics company",
                 "a fast-growing fintech startup", "a national retailer",
                 "a global consulting firm", "a public university", "a city government",
                 "an online marketplace", "an insurance provider", "a manufacturing plant",
                 "a software agency", "a telecom operator"]
PROJECTS = [
    "an internal dashboard that tracks delivery delays", "a customer churn prediction model",
    "a mobile app for booking appointments", "a migration from on-premise servers to the cloud",
    "an automated invoice reconciliation tool", "a recommendation engine for an online shop",
    "a real-time fraud detection pipeline", "a redesign of the company website",
    "a warehouse inventory tracking system", "a patient intake workflow",
    "a chatbot for customer support", "a reporting pipeline for regulatory filings",
    "a scheduling system for field technicians", "an onboarding program for new hires",
    "an open-source library for parsing log files", "an energy usage monitoring platform",
]
PACKAGES = [
    ("logwatcher", "monitors log files and sends alerts when patterns match"),
    ("tinyhttpd", "is a small web server for serving static files"),
    ("pdfmerge", "combines several PDF documents into one"),
    ("netprobe", "measures latency and packet loss between hosts"),
    ("csvkit-lite", "converts, filters and summarizes CSV files"),
    ("backupd", "makes incremental backups of home directories"),
    ("fontview", "previews installed fonts"),
    ("tasktrack", "keeps a to-do list in the terminal"),
    ("imgshrink", "compresses PNG and JPEG images without visible quality loss"),
    ("mailsort", "filters incoming e-mail into folders by rules"),
    ("geoconv", "converts between geographic coordinate systems"),
    ("libfastjson", "is a C library for parsing and generating JSON"),
    ("python3-retry", "is a Python module that retries failed function calls"),
    ("diskgraph", "draws a map of disk usage by directory"),
    ("sshkeyman", "manages SSH keys across many servers"),
    ("audiotag", "edits metadata tags in MP3 and FLAC files"),
    ("clockd", "keeps the system clock synchronized with network time servers"),
    ("texspell", "checks spelling in LaTeX documents"),
]
COMMANDS = [
    ("dirsize", "prints the total size of each directory given on the command line"),
    ("waitport", "waits until a TCP port on a host accepts connections"),
    ("lnrename", "renames files using regular expressions"),
    ("memstat", "reports memory usage per process"),
    ("tailjson", "follows a log file and pretty-prints JSON lines"),
    ("cronlint", "checks crontab files for syntax errors"),
    ("hashdir", "computes checksums for every file in a directory tree"),
    ("pingsweep", "checks which hosts on a subnet answer ping"),
    ("uniqlines", "removes duplicate lines from a file while keeping their order"),
    ("tzshow", "shows the current time in several time zones"),
    ("filewatch", "runs a command whenever a file changes"),
    ("sockinfo", "lists open network sockets and the processes that own them"),
    ("mkthumb", "creates thumbnail images for every picture in a directory"),
    ("userage", "reports when each user account last logged in"),
    ("splitlog", "splits a large log file into one file per day"),
    ("certcheck", "warns when TLS certificates are about to expire"),
    ("envdiff", "compares the environment variables of two processes"),
    ("slowcat", "prints a file at a fixed number of lines per second"),
]
TOPICS = [
    "how a package manager resolves dependencies", "why backups should be tested regularly",
    "what a firewall does on a small office network", "how virtual memory works",
    "the difference between a process and a thread", "how DNS resolution works",
    "why code review improves software quality", "how public-key encryption protects e-mail",
    "what a cron job is and when to use one", "how garbage collection works in Python",
    "how to choose a strong password policy for a company", "what a reverse proxy is",
    "how log rotation keeps disks from filling up", "what file permissions mean on Linux",
    "how a relational database uses indexes", "why software is released under free licences",
]
TERMS = ["technical debt", "bikeshedding", "yak shaving", "rubber duck debugging",
         "feature creep", "dogfooding", "heisenbug", "cargo cult programming",
         "bus factor", "magic number", "spaghetti code", "race condition",
         "scope creep", "boilerplate", "legacy code", "hotfix"]

COUNTS = [("resume_summary", 70), ("cover_letter", 45), ("experience_prose", 50),
          ("project_description", 35), ("package_description", 35),
          ("manpage_description", 25), ("technical_explanation", 25), ("glossary_entry", 15)]


def pick_role(rng):
    fam = rng.choice(sorted(ROLES))
    return fam, rng.choice(ROLES[fam])


def skills(rng, fam, k):
    return rng.sample(SKILLS[fam], k)


def ach(rng):
    return rng.choice(ACHIEVEMENTS).format(p=rng.choice([12, 15, 20, 25, 30, 35, 40, 50]),
                                           n=rng.choice([3, 4, 5, 6, 8, 10, 12, 20]))


def join(xs):
    return ", ".join(xs[:-1]) + " and " + xs[-1] if len(xs) > 1 else xs[0]


def make(register, rng):
    if register == "resume_summary":
        fam, role = pick_role(rng)
        yrs = rng.randint(2, 20)
        form = rng.randrange(4)
        if form == 0:
            return ("Write a professional summary for the resume of a %s %s with %d years of "
                    "experience in %s. Mention %s." % (rng.choice(SENIORITY), role, yrs,
                                                       rng.choice(INDUSTRIES),
                                                       join(skills(rng, fam, 3))))
        if form == 1:
            return ("Write a short 'About me' paragraph for a %s who has worked in %s for %d "
                    "years and is skilled in %s." % (role, rng.choice(INDUSTRIES), yrs,
                                                     join(skills(rng, fam, 2))))
        if form == 2:
            return ("Write a three-sentence resume profile for a %s. Highlight that they %s "
                    "and know %s." % (role, ach(rng), join(skills(rng, fam, 2))))
        return ("Write the summary section of a CV for a %s changing careers to become a %s. "
                "Keep it under 120 words." % (pick_role(rng)[1], role))
    if register == "cover_letter":
        fam, role = pick_role(rng)
        form = rng.randrange(3)
        if form == 0:
            return ("Write a cover letter for a %s position at %s. The applicant has %d years "
                    "of experience and %s." % (role, rng.choice(COMPANY_KINDS),
                                               rng.randint(1, 15), ach(rng)))
        if form == 1:
            return ("Write the opening paragraph of a cover letter from a %s applying to %s in "
                    "the %s industry." % (role, rng.choice(COMPANY_KINDS),
                                          rng.choice(INDUSTRIES)))
        return ("Write a short cover letter explaining why a %s with experience in %s is a good "
                "fit for a team that works on %s." % (role, join(skills(rng, fam, 2)),
                                                      rng.choice(PROJECTS)))
    if register == "experience_prose":
        fam, role = pick_role(rng)
        bullets = [ach(rng), "worked with " + join(skills(rng, fam, 2)),
                   "collaborated with %s teams" % rng.choice(["cross-functional", "remote",
                                                              "client", "engineering"])]
        rng.shuffle(bullets)
        if rng.randrange(2):
            return ("Rewrite these resume bullet points for a %s at %s as one paragraph of "
                    "prose: %s." % (role, rng.choice(COMPANY_KINDS), "; ".join(bullets)))
        return ("Describe in one paragraph the work experience of a %s who spent %d years at "
                "%s and %s." % (role, rng.randint(1, 9), rng.choice(COMPANY_KINDS), ach(rng)))
    if register == "project_description":
        fam, role = pick_role(rng)
        proj = rng.choice(PROJECTS)
        if rng.randrange(2):
            return ("Write a project description for a portfolio: %s, built with %s. Explain "
                    "the problem, the solution and the result." % (proj,
                                                                  join(skills(rng, fam, 2))))
        return ("Describe a project in which a %s built %s for a company in %s." % (
            role, proj, rng.choice(INDUSTRIES)))
    if register == "package_description":
        name, what = rng.choice(PACKAGES)
        form = rng.randrange(3)
        if form == 0:
            return "Describe the software package %s, which %s, in two paragraphs." % (name, what)
        if form == 1:
            return ("Write the long description of a Debian package called %s. The program %s."
                    % (name, what))
        return ("Write a short README introduction for %s, a tool that %s. Explain who it is "
                "for." % (name, what))
    if register == "manpage_description":
        cmd, what = rng.choice(COMMANDS)
        if rng.randrange(2):
            return ("Write the DESCRIPTION section of a manual page for a command named %s "
                    "that %s." % (cmd, what))
        return ("Explain in plain prose, as in a Unix manual page, how the %s command works. "
                "It %s." % (cmd, what))
    if register == "technical_explanation":
        topic = rng.choice(TOPICS)
        aud = rng.choice(["a new system administrator", "a junior developer", "a manager",
                          "a student", "an office worker"])
        return "Explain %s to %s in two paragraphs." % (topic, aud)
    if register == "glossary_entry":
        term = rng.choice(TERMS)
        return "Write a dictionary-style entry that defines the term '%s' as programmers use it." \
            % term
    raise ValueError(register)


def split_of(text):
    h = int(hashlib.sha256(("candor-prompt-split-v1|" + text).encode()).hexdigest(), 16) % 100
    return "train" if h < 60 else "calib" if h < 80 else "test"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="scripts/text/prompts.jsonl")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seen, rows = set(), []
    for register, n in COUNTS:
        got, tries = 0, 0
        while got < n:
            tries += 1
            if tries > 50 * n:
                raise SystemExit("could not make %d distinct %s prompts" % (n, register))
            p = make(register, rng)
            if p in seen:
                continue
            seen.add(p)
            got += 1
            rows.append({"id": "p%04d-%s" % (len(rows) + 1, register), "prompt": p,
                         "register": register, "split": split_of(p)})
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in rows:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    print("wrote %d prompts to %s %s" % (len(rows), args.out, counts))


if __name__ == "__main__":
    main()
