#!/usr/bin/env python3
"""Collect labelled HUMAN vs MACHINE text from public GitHub snapshots (bare git directories).

Standard library only (Python >= 3.9). No network access: every byte is read from the bare git
directories given with --snapshot (as brought by the `fetch` tool, /work/.mirror/OWNER+NAME/repo),
at the PINNED commits listed below, with `git cat-file` / `git ls-tree`. Nothing is written inside
the git-tracked tree; the output goes to .candor/data/text/public/ (git-ignored).

    python3 scripts/text/collect_public_text.py \
        --snapshot tatsu-lab/alpaca_eval=/work/.mirror/tatsu-lab+alpaca_eval/repo \
        --snapshot ...  [--out .candor/data/text/public/records.jsonl] [--only KEY,KEY] [--list]
        [--eval-dir ../shared/eval/text | --no-eval-exclusion]

    or: --mirror-root /work/.mirror   (looks up OWNER+NAME/repo for every source below)

Snapshots are brought with the `fetch` tool (github:OWNER/NAME). Runtime about 1.5-2 min on 2 cores,
peak memory about 450 MB; output about 185 MB. Same snapshots -> byte-identical output.

Output (one JSON object per line, sorted by source order then by file/row order; deterministic):
    id          stable: "<source key>-" + sha1(repo|commit-independent path|row key)[:16]
    text        the text (whitespace-normalised, see "Cleaning"), >= 40 words
    label       "human" | "machine"
    generator   exact model name as the source gives it (e.g. "claude-3-opus-20240229"), or "human"
    family      gpt4 | gpt35 | claude | gemini | llama | mistral | other | human
    domain      resume | cover_letter | bio | interview_answer | essay | news | qa | review | story |
                abstract | wiki | email | other
    attack      none | paraphrase | humanized | polished | mixed
    source      "owner/repo@commit" (the commit the file was read at)
    src_path    path inside the repository (for archives: "archive.zip!member")
    licence     licence of the source data as far as the repository states it
    native      true/false/null: is the (underlying) human writer a native English speaker
    prompt      the instruction / essay prompt when the source gives it, else null
  extra fields:
    words            whitespace word count of `text`
    wrapper_stripped list of chat wrappers removed from a MACHINE text ("Sure! Here is ...:" lead-ins,
                     "I hope this helps ..." sign-offs), or null when nothing was removed
    has_markdown     the text contains markdown structure (#-headings, **bold**, bullets, numbered lists)
    subset           finer origin (benchmark split, sub-domain, model directory, ...)
    notes            free-text caveat for the row's subset, or null
A summary goes to OUT.manifest.json (counts per source/family/domain/length bucket, drops by reason).

Cleaning (all rows): Unicode NFC; CRLF -> LF; trailing spaces stripped; 3+ blank lines -> one blank
line; leading/trailing whitespace stripped. Rows are DROPPED when: empty; < 40 words; mostly
non-Latin script (< 90 % of letters Latin); chat answers that contain code (``` fences or >= 25 %
code-looking lines) or heavy maths/LaTeX; exact duplicates (whitespace-collapsed text; the first
occurrence in source order is kept; a text seen with BOTH labels is dropped everywhere); texts
whose first 12 words match a text of the shared evaluation sets (../shared/eval/text, evaluation
only), together with the L2R rewrites of such passages; human cover letters whose first 12 words
(after any "Dear ...:" salutation) repeat an earlier human cover letter (the two cover-letter
sources scraped the same website; the fuller 2022 copy is kept).
Machine texts only: a leading chat lead-in paragraph ("Sure! Here's a ...:", "Certainly! Below is
...:") and a trailing sign-off paragraph ("I hope this helps", "Let me know if ...", "Feel free to
...") are stripped, and what was stripped is recorded in `wrapper_stripped`. HTML report framing
("Model Output:" labels, HTML entities) in the EQ-Bench long-form reports is removed as markup.

RESERVED SOURCES ARE EXCLUDED. ../shared/research/reserved.md lists text sources kept for
independent measurement (NLP2CT/DetectRL, Dongping-Chen/MixSet, ryuryukke/OUTFOX,
baoguangsheng/glimpse, Jiaqi-Chen-00/ImBD, uclanlp/biases-llm-reference-letters,
elainew728/labe-agency, Neeharikarayo/Fake-Resume-Classification-System,
htaswell/GenderBias_in_AI_Cover_Letters, aspratle/GenerativeAI_SexBiasAnalysis,
rhite-tech/thesis_fairness-in-ai-based-hiring, BloombergGraphics/2024-openai-gpt-hiring-racial-
discrimination, FrancesCoronel/hire-me, and the DataTurks "Entity Recognition in Resumes" Indeed set
wherever it sits). None of them is read here; --snapshot refuses them, and resume rows that look
like the DataTurks JSON export are refused too.

SOURCES (key, repository@commit, paths, licence, contribution)
-------------------------------------------------------------------------------------------------
liang-bias    Weixin-Liang/ChatGPT-Detector-Bias@1d05ed8242d4694a0ed7b73a79c52be8864470f9
              Data_and_Results/{Human_Data,GPT_Data}/*/data.json (+ name.json). Licence: MIT (README
              badge; no LICENSE file). Liang et al. 2023 "GPT detectors are biased against non-native
              English writers": 91 TOEFL essays (human, native=false), the same 91 polished by GPT-4
              ("Enhance the word choices to sound more like that of a native speaker"; machine,
              attack=polished, native=false), 88 US 8th-grade Hewlett/ASAP essays (human, native=true)
              and their GPT-4 simplifications (machine, attack=paraphrase), 70 real college essays, 145
              real Stanford CS224N abstracts, and ChatGPT-3.5 college essays / abstracts, plain and
              self-edited ("Elevate the provided text by employing literary/advanced technical
              language"; attack=paraphrase). The CS224N self-edit folder's name.json says "GPT4" while
              the README says ChatGPT-3.5: labelled gpt-3.5-turbo, noted.
argugpt       huhailinguist/ArguGPT@cfbd00e75b63db44756375cfc1ee4278f8cd2bf1
              data/argugpt/machine-{dev,test,ood}.csv (machine-train.csv is >= 4 MiB and absent from
              the snapshot). Licence: not stated in the repository (dataset card elsewhere: check
              before shipping). Machine argumentative essays on WECCL/TOEFL/GRE prompts from
              gpt-3.5-turbo, text-davinci-003, text-curie/babbage-001, gpt2-xl, and (OOD split)
              claude-instant, gpt4, bloomz-7b, flan-t5-11b. The human essays are NOT released (index
              only), so none are taken.
radek         smarsou/ai-text-detector@a8e84447a25bf23bb968ca3ece444d9cb3bdc161
              data/ai_generated_train_essays.csv (500, gpt-3.5-turbo), data/ai_generated_train_
              essays_gpt-4.csv (200, gpt-4): copy of Kaggle "radek1/llm-generated-essays" (DAIGT
              competition; "Car-free cities" / "Does the electoral college work?" prompts). The files
              were later truncated in that repo, hence the pinned older commit. Licence: not stated.
palm-essays   karima-ibrahim/Gemini-API@eb7dfb548a407047b804e1c2bb1c1a9f05bb6e10
              LLM_generated_essay_PaLM.csv (1,384 essays): copy of Kaggle "kingki19/llm-generated-
              essay-using-palm-from-google-gen-ai" (Google PaLM API, DAIGT prompts; deleted in later
              commits). Licence: not stated. generator "PaLM" (exact PaLM version not given).
alpaca-eval   tatsu-lab/alpaca_eval@cd543a149df89434d8a54582c0151c0b945c3d20
              results/<model>/model_outputs.json for the models in ALPACA_MODELS (805 instructions
              each; generator = API model name from src/alpaca_eval/models_configs/<model>/
              configs.yaml). Licence: Apache-2.0 (repository); outputs are subject to each model
              provider's terms. Instruction-following answers (domain qa, or cover_letter / resume /
              bio / email / essay / story / review when the instruction asks for one). The
              *_concise / *_verbose directories are the same model under a length instruction.
fastchat      lm-sys/FastChat@{31a1b9000b2ad6e27616f80319114705513972bb,
              396a8b2f2f06c18300e1efa364a981262b339b8c, 4026da0c2bf4b1cf2331a56d668d60550e3743f1}
              fastchat/eval/table/answer/answer_{bard,gpt35}.jsonl (Vicuna-80 questions, March 2023),
              fastchat/llm_judge/data/arena_hard_1k/model_answer/*.jsonl (478 Chatbot-Arena prompts:
              claude-v1, claude-2, claude-instant-v1, gpt-4, gpt-3.5-turbo, palm-2-chat-bison-001,
              Llama-2-70b-chat; commit of pull request #2588, present in the snapshot as
              refs/pull/2588/head), fastchat/llm_judge/data/{mt_bench,vicuna_bench}/model_answer/
              gpt-4o.jsonl (pull request #3404). Licence: Apache-2.0.
arena-hard    lmarena/arena-hard-auto@196f6b826783b3da7310e361a805fa36f0be83f3
              data/arena-hard-v0.1/model_answer/{gpt-4-0314,gpt-4-0613,gpt-3.5-turbo-0125}.jsonl,
              data/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl (+ question.jsonl). Licence:
              Apache-2.0. Mostly technical prompts; code answers are dropped.
l2r           scott-matkosky/AI_Text_Detector@0706922f555d694fd734159d2f7e6306e7d2ab7c
              L2R_dataset/<domain>/{human,GPT-3-Turbo,GPT-4o,Gemini-1.5-Pro,Llama-3-70B}.json: copy of
              the data of Hao et al. 2024 "Learning to Rewrite" (arXiv 2408.04237). Licence: CC BY 3.0
              (L2R_dataset/LICENSE.txt). 20 domains of human passages and LLM rewrites of them
              (attack=paraphrase). "Code" is skipped; "TravelTourism" is skipped because its human,
              GPT-4o, Gemini and Llama files are byte-identical to "TechnicalWriting".
longform      EQ-bench/longform-writing-bench@d1c625505b1cf8baf32a49c8e21a9cf93a254044
              results/<model>_longform_report.html: 8-chapter stories (about 1,000 words a chapter,
              12 prompts) by 2025 models (claude-3.7-sonnet/opus-4/sonnet-4, gemini-2.0/2.5, gpt-4.1,
              chatgpt-4o, o3, o4-mini, llama-4, mistral-medium-3, qwen3, deepseek, ...). Chapters only
              (planning steps are skipped). The judge critiques embedded in the reports are written by
              the benchmark judge (README: Claude 3.7 Sonnet); up to LONGFORM_JUDGE_CAP of them are
              kept as generator "claude-3-7-sonnet-20250219 (judge)", domain other, with the score
              table cut off. Licence: MIT (README). quasar-alpha/optimus-alpha (anonymous previews)
              and reports with errors (< 100 KB) are skipped.
eqbench       EQ-bench/EQ-Bench@d28c60c514fe6667dc5818114ed10088f91f09f3
              data/judgemark_test_set.json: 19 creative-writing pieces each from 19 models (gpt-4-0125-
              preview, claude-3 opus/sonnet/haiku, mistral small/medium/large, gpt-3.5-turbo-0301,
              Mixtral, Llama-2, gemma, Qwen1.5, Yi, ...). Licence: MIT.
ellipse       scrosseye/ELLIPSE-Corpus@b5f4469611d2596810d31d1a60921e54ce97ad07
              ELLIPSE_Final_github_test.zip (ZipCrypto; the password "ellipse_test" is published in
              the README): 2,571 essays by English Language Learners, US grades 8-12 (human,
              native=false). ELLIPSE_Final_github_train.csv is >= 4 MiB and absent. Licence:
              CC BY-NC-SA 4.0 (NON-COMMERCIAL: fairness measurement only unless cleared).
cover-2022    moejoe3/NLG-for-Cover-Letters@9686e0b5c1c9ae87a06d37c569b035e1899bac22
              cover_letters.csv, test_cover_letters.csv (thesis "Natural Language Generation for Cover
              Letters in Job Applications", uploaded Aug 2022, before ChatGPT). Professional sample
              cover letters from career websites. Licence: not stated.
cover-2019    giterdun345/Cover-Letter-Generator@0a4c8134dfa4802a8dbd3c1fd373d7b84ff01ab7
              data/cover_letters.csv: JobHero sample cover letters scraped in November 2019 (bullet
              "highlights" removed by the scraper). Licence: not stated (scraped web content).
mit-interview Riddle95/NLP_Detect-the-ideal-candidate-for-HR-Analytics@6836eafeed5c3a6225d12b834f23d7b9e30fcf1b
              interview_transcripts_by_turkers.csv: MIT Interview Dataset (Naim et al. 2015), mock job
              interviews of MIT students transcribed by crowd workers; each interviewee answer to an
              interviewer question becomes one row (spoken style, fillers kept). Licence: not stated
              (research dataset).
resumes-962   Alexlemelita/Text-Analysis@b2d6ad72c9022a3846823bcaf7e6948fc7a8277c
              Resume.csv: the Kaggle "UpdatedResumeDataSet" (962 rows, 166 distinct resumes, mostly
              Indian IT candidates, pre-2020; NOT the DataTurks/Indeed set and NOT LiveCareer).
              Double-encoded UTF-8 is repaired. Licence: not stated.
gpt-scoring   nd-hal/automated-ML-scoring-versus-generation@d4b46d5d1d07ac6e3836409922153a502c267b3c
              PromptData/RawData/{1..6}_{GPT35,GPT4}.xlsx: GPT-3.5 and GPT-4 answers (ChatGPT, 2023) to
              ASAP essay prompts and Cambridge FCE exam tasks (letters, stories, reviews, articles);
              Bevilacqua et al. 2023 (arXiv 2309.14488). Licence: not stated. No human texts in the
              repository (the ProcessedMLScores CSVs hold GPT responses with detector scores).
comnets       comnetsAD/ChatGPT@25399756f77b198efcb95e8529275db4670db6c9
              "Student and GPT Responses/<course>/<question>/{student*,gpt*}" and "QuillBot Output/..."
              (Ibrahim et al. 2023, "Perception, performance, and detectability of conversational AI
              across 32 university courses"): 3 student and 3 ChatGPT answers per question (human
              students of NYU Abu Dhabi, native status unknown), and the ChatGPT answers paraphrased by
              QuillBot in 6 modes (strength 3 only; attack=paraphrase). Courses marked "(code)" are
              skipped. Licence: not stated.
-------------------------------------------------------------------------------------------------
"""

import argparse
import csv
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections import Counter, OrderedDict, defaultdict

csv.field_size_limit(1 << 30)

MIN_WORDS = 40
LONGFORM_JUDGE_CAP = 400

RESERVED_REPOS = {
    "nlp2ct/detectrl", "dongping-chen/mixset", "ryuryukke/outfox", "baoguangsheng/glimpse",
    "jiaqi-chen-00/imbd", "uclanlp/biases-llm-reference-letters", "elainew728/labe-agency",
    "neeharikarayo/fake-resume-classification-system", "htaswell/genderbias_in_ai_cover_letters",
    "aspratle/generativeai_sexbiasanalysis", "rhite-tech/thesis_fairness-in-ai-based-hiring",
    "bloomberggraphics/2024-openai-gpt-hiring-racial-discrimination", "francescoronel/hire-me",
}

FAMILIES = {"gpt4", "gpt35", "claude", "gemini", "llama", "mistral", "other", "human"}
DOMAINS = {"resume", "cover_letter", "bio", "interview_answer", "essay", "news", "qa", "review",
           "story", "abstract", "wiki", "email", "other"}
ATTACKS = {"none", "paraphrase", "humanized", "polished", "mixed"}


# ------------------------------------------------------------------------------------------------
# git access
# ------------------------------------------------------------------------------------------------
class Repo:
    def __init__(self, name, gitdir):
        self.name = name
        self.gitdir = gitdir

    def _git(self, *args):
        return subprocess.run(["git", "--git-dir", self.gitdir] + list(args), check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout

    def has_commit(self, commit):
        r = subprocess.run(["git", "--git-dir", self.gitdir, "cat-file", "-e", commit + "^{commit}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def blob(self, commit, path):
        return self._git("cat-file", "blob", "%s:%s" % (commit, path))

    def text(self, commit, path):
        return self.blob(commit, path).decode("utf-8", errors="replace")

    def ls(self, commit, prefix=None):
        args = ["ls-tree", "-r", "-z", "--name-only", commit]
        if prefix:
            args += ["--", prefix]
        out = self._git(*args)
        return sorted(p for p in out.decode("utf-8", "replace").split("\0") if p)

    def exists(self, commit, path):
        r = subprocess.run(["git", "--git-dir", self.gitdir, "cat-file", "-e", "%s:%s" % (commit, path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0


# ------------------------------------------------------------------------------------------------
# text helpers
# ------------------------------------------------------------------------------------------------
WORD_RE = re.compile(r"\S+")


def words(t):
    return len(WORD_RE.findall(t))


def normalise(t):
    t = unicodedata.normalize("NFC", t.replace("\r\n", "\n").replace("\r", "\n"))
    t = t.replace("\u00a0", " ").replace("\ufeff", "")
    t = "\n".join(line.rstrip() for line in t.split("\n"))
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t.strip()


def dedup_key(t):
    return hashlib.sha256(re.sub(r"\s+", " ", t).strip().encode("utf-8")).hexdigest()


def latin_ratio(t):
    letters = [c for c in t if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if ord(c) < 0x250) / len(letters)


CODE_LINE_RE = re.compile(
    r"^\s*(def |class |import |from \S+ import|#include|public |private |function |const |let |var |"
    r"return |for \(|if \(|while \(|\}|\{|<[a-zA-Z/!]|SELECT |INSERT |CREATE |\$ |>>> |//)")


def looks_like_code_or_math(t):
    if "```" in t:
        return "code"
    lines = [l for l in t.split("\n") if l.strip()]
    if lines and sum(1 for l in lines if CODE_LINE_RE.match(l)) / len(lines) >= 0.25:
        return "code"
    if t.count("\\frac") + t.count("\\(") + t.count("\\[") + t.count("$$") >= 2 or t.count("$") >= 10:
        return "math"
    nonspace = [c for c in t if not c.isspace()]
    if nonspace and sum(1 for c in nonspace if c.isalpha()) / len(nonspace) < 0.6:
        return "symbols"
    return None


MD_RE = re.compile(r"(^|\n)\s{0,3}(#{1,6} |[*\-+] |\d{1,2}[.)] )|\*\*[^*\n]+\*\*|__[^_\n]+__")


def has_markdown(t):
    return bool(MD_RE.search(t))


LEAD_ACK_RE = re.compile(
    r"^(sure|certainly|of course|absolutely|okay|ok|great|alright|happy to help|i'd be (happy|glad)|"
    r"i would be (happy|glad)|i'm happy to|i am happy to|as requested|no problem)\b", re.I)
LEAD_ART_RE = re.compile(
    r"^(here is|here's|here are|below is|below are|the following is)\b.{0,80}?\b(essay|letter|draft|sample|"
    r"version|story|poem|e-?mail|article|summary|rewrite|revised|paragraph|introduction|bio|biography|"
    r"r[ée]sum[ée]|speech|script|outline|post|description|review|response|answer)s?\b", re.I)
SIGN_OFF_RE = re.compile(
    r"^(i hope (this|that|these|my) (helps|is helpful|was helpful|information|answers|gives|provides)|"
    r"hope (this|that) helps|let me know if|feel free to (ask|reach|let)|"
    r"please (let me know|feel free|don't hesitate|do not hesitate)|"
    r"if you have any (other |further |more |additional )?(questions|concerns)|"
    r"if you need (any )?(more|further|additional|other) (help|information|assistance|details)|"
    r"is there anything else|would you like me to)", re.I)


def strip_wrappers(t):
    """Remove a chat lead-in first paragraph and a sign-off last paragraph. Returns (text, removed).

    Lead-in: a one-line first paragraph of <= 40 words ending in ":" that starts with an
    acknowledgement ("Sure", "Certainly", ...) or announces the artefact ("Here is a revised
    essay:"), or a bare acknowledgement of <= 12 words ("Certainly!"). Sign-off: a one-line last
    paragraph of <= 50 words such as "I hope this helps! Let me know if ...".
    """
    removed = []
    paras = t.split("\n\n")
    if len(paras) > 1:
        first = paras[0].strip()
        one_line = "\n" not in first
        if one_line and ((words(first) <= 40 and first.endswith(":") and
                          (LEAD_ACK_RE.match(first) or LEAD_ART_RE.match(first))) or
                         (words(first) <= 12 and first[-1:] in ".!" and LEAD_ACK_RE.match(first))):
            removed.append(first)
            paras = paras[1:]
    if len(paras) > 1:
        last = paras[-1].strip()
        if words(last) <= 50 and SIGN_OFF_RE.match(last) and "\n" not in last:
            removed.append(last)
            paras = paras[:-1]
    return "\n\n".join(paras).strip(), (removed or None)


def fix_mojibake(t):
    """Undo (possibly repeated) UTF-8-read-as-Latin-1 double encoding, run by run."""
    def fix_run(m):
        run = m.group(0)
        try:
            return run.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return run
    for _ in range(3):
        t2 = re.sub(r"[\u00c2-\u00f4][\u0080-\u00bf]+", fix_run, t)
        if t2 == t:
            break
        t = t2
    return t


def read_csv(data):
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return list(csv.DictReader(io.StringIO(text, newline="")))


def read_jsonl(data):
    out = []
    for line in data.decode("utf-8", errors="replace").split("\n"):
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


INSTR_DOMAIN_RULES = [
    (re.compile(r"\bcover letters?\b", re.I), "cover_letter"),
    (re.compile(r"\b(r[ée]sum[ée]s?|curriculum vitae|\bCV\b)", re.I), "resume"),
    (re.compile(r"\b(bio|biography|about me|linkedin (summary|profile|headline)|personal statement)\b", re.I), "bio"),
    (re.compile(r"\b(job interview|interview question)", re.I), "interview_answer"),
    (re.compile(r"\b(e-?mail|letter)\b", re.I), "email"),
    (re.compile(r"\b(essay)\b", re.I), "essay"),
    (re.compile(r"\b(story|poem|fiction|narrative|fairy tale|limerick|haiku|song|lyrics|script)\b", re.I), "story"),
    (re.compile(r"\b(review)\b", re.I), "review"),
    (re.compile(r"\b(news article|press release|headline)\b", re.I), "news"),
]
WRITE_VERB_RE = re.compile(r"\b(write|draft|compose|create|generate|craft|prepare|give me|help me write|"
                           r"make|produce|rewrite|improve|edit)\b", re.I)


def domain_from_instruction(instr):
    """qa unless the instruction asks to WRITE one of the application-like or genre texts."""
    if not instr:
        return "qa"
    head = instr[:600]
    if not WRITE_VERB_RE.search(head):
        return "qa"
    for rx, dom in INSTR_DOMAIN_RULES:
        if rx.search(head):
            if dom == "interview_answer":
                continue  # instructions ABOUT interviews are not interview answers
            return dom
    return "qa"


# ------------------------------------------------------------------------------------------------
# family mapping
# ------------------------------------------------------------------------------------------------
def family_of(gen):
    g = gen.lower()
    if g in ("human",):
        return "human"
    if "claude" in g:
        return "claude"
    if "gemini" in g or "palm" in g or "bard" in g or "bison" in g:
        return "gemini"
    if "gemma" in g:
        return "other"          # Google open model, not the Gemini/PaLM product line
    if re.search(r"gpt-?4|chatgpt-4o", g) or re.search(r"(^|[/_ ])o[134](-mini|-preview|-pro|-high|$|[-_ ])", g):
        return "gpt4"
    if re.search(r"gpt-?3\.5|gpt35|chatgpt|text[-_]davinci[-_]00[23]", g):
        return "gpt35"
    if "mistral" in g or "mixtral" in g:
        return "mistral"
    if "llama" in g or "euryale" in g:
        return "llama"
    return "other"


# ------------------------------------------------------------------------------------------------
# record builder
# ------------------------------------------------------------------------------------------------
class Collector:
    def __init__(self):
        self.rows = []
        self.drops = Counter()
        self.drops_by_source = defaultdict(Counter)

    def add(self, key, repo, commit, path, rowkey, text, label, generator, domain, attack, licence,
            native, prompt=None, subset=None, notes=None, family=None, chat=False, strip=True, pair=None):
        if text is None:
            self._drop(key, "empty")
            return
        if not isinstance(text, str):
            text = str(text)
        t = normalise(text)
        removed = None
        if label == "machine" and strip:
            t, removed = strip_wrappers(t)
        if not t:
            self._drop(key, "empty")
            return
        if latin_ratio(t) < 0.9:
            self._drop(key, "non_latin")
            return
        if chat:
            why = looks_like_code_or_math(t)
            if why:
                self._drop(key, "chat_" + why)
                return
        n = words(t)
        if n < MIN_WORDS:
            self._drop(key, "under_40_words")
            return
        fam = family or ("human" if label == "human" else family_of(generator))
        assert fam in FAMILIES and domain in DOMAINS and attack in ATTACKS, (fam, domain, attack)
        rid = "%s-%s" % (key, hashlib.sha1(("%s|%s|%s" % (repo, path, rowkey)).encode("utf-8")).hexdigest()[:16])
        self.rows.append(OrderedDict([
            ("id", rid), ("text", t), ("label", label), ("generator", generator), ("family", fam),
            ("domain", domain), ("attack", attack), ("source", "%s@%s" % (repo, commit)),
            ("src_path", path), ("licence", licence), ("native", native),
            ("prompt", normalise(prompt) if isinstance(prompt, str) and prompt.strip() else None),
            ("words", n), ("wrapper_stripped", removed), ("has_markdown", has_markdown(t)),
            ("subset", subset), ("notes", notes), ("_pair", pair),
        ]))

    def _drop(self, key, why):
        self.drops[why] += 1
        self.drops_by_source[key][why] += 1


# ------------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------------
def src_liang(c, repo, commit, key):
    lic = "MIT (README badge; no LICENSE file)"
    base = "Data_and_Results"
    table = {
        "Human_Data/TOEFL_real_91": ("human", "human", "essay", "none", False, None,
                                     "TOEFL essays by non-native writers (Liang et al. 2023)"),
        "Human_Data/TOEFL_gpt4polished_91": ("machine", "gpt-4 (ChatGPT-4)", "essay", "polished", False, None,
                                             "TOEFL essay word choices enhanced by GPT-4"),
        "Human_Data/HewlettStudentEssay_real_88": ("human", "human", "essay", "none", True, None,
                                                   "US 8th-grade essays (Hewlett ASAP)"),
        "Human_Data/HewlettStudentEssay_GPTsimplify_88": ("machine", "gpt-4 (ChatGPT-4)", "essay", "paraphrase", True, None,
                                                          "US 8th-grade essays simplified by GPT-4 to mimic non-native vocabulary"),
        "Human_Data/CollegeEssay_real_70": ("human", "human", "essay", "none", None, None,
                                            "real college admission essays"),
        "Human_Data/CS224N_real_145": ("human", "human", "abstract", "none", None, None,
                                       "Stanford CS224N project abstracts (mixed native/non-native students)"),
        "GPT_Data/CollegeEssay_gpt3_31": ("machine", "gpt-3.5-turbo", "essay", "none", None, None,
                                          "ChatGPT-3.5 college essays (name.json: GPT3)"),
        "GPT_Data/CollegeEssay_gpt3PromptEng_31": ("machine", "gpt-3.5-turbo", "essay", "paraphrase", None, None,
                                                   "ChatGPT-3.5 essays self-edited 'with literary language'"),
        "GPT_Data/CS224N_gpt3_145": ("machine", "gpt-3.5-turbo", "abstract", "none", None, None,
                                     "ChatGPT-3.5 abstracts (name.json: GPT3)"),
        "GPT_Data/CS224N_gpt3PromptEng_145": ("machine", "gpt-3.5-turbo", "abstract", "paraphrase", None, None,
                                              "ChatGPT-3.5 abstracts self-edited with 'advanced technical language'; "
                                              "name.json says model GPT4, README says ChatGPT-3.5 (doubtful)"),
    }
    for sub in sorted(table):
        label, gen, dom, att, native, _, note = table[sub]
        path = "%s/%s/data.json" % (base, sub)
        data = json.loads(repo.text(commit, path))
        for i, row in enumerate(data):
            c.add(key, repo.name, commit, path, i, row.get("document"), label, gen, dom, att, lic, native,
                  prompt=row.get("prompt"), subset=sub.split("/")[1], notes=note)


def src_argugpt(c, repo, commit, key):
    lic = "not stated in repository"
    for split in ("machine-dev", "machine-test", "machine-ood"):
        path = "data/argugpt/%s.csv" % split
        for i, row in enumerate(read_csv(repo.blob(commit, path))):
            gen = row.get("model") or ""
            c.add(key, repo.name, commit, path, row.get("id") or i, row.get("text"), "machine", gen, "essay",
                  "none", lic, None, prompt=row.get("prompt"),
                  subset="%s/%s" % (split, row.get("exam_type") or "ood"),
                  notes="gpt2-xl essays start with one human-written sentence" if gen == "gpt2-xl" else None)


def src_radek(c, repo, commit, key):
    lic = "not stated (copy of Kaggle radek1/llm-generated-essays)"
    for path, gen in (("data/ai_generated_train_essays.csv", "gpt-3.5-turbo"),
                      ("data/ai_generated_train_essays_gpt-4.csv", "gpt-4")):
        for i, row in enumerate(read_csv(repo.blob(commit, path))):
            c.add(key, repo.name, commit, path, row.get("id") or i, row.get("text"), "machine", gen, "essay",
                  "none", lic, None, prompt=None, subset="daigt_prompt_%s" % row.get("prompt_id"))


def src_palm(c, repo, commit, key):
    lic = "not stated (copy of Kaggle kingki19/llm-generated-essay-using-palm-from-google-gen-ai)"
    path = "LLM_generated_essay_PaLM.csv"
    for i, row in enumerate(read_csv(repo.blob(commit, path))):
        c.add(key, repo.name, commit, path, row.get("id") or i, row.get("text"), "machine", "PaLM", "essay",
              "none", lic, None, subset="daigt_prompt_%s" % row.get("prompt_id"),
              notes="Google PaLM API (exact model version not given)")


# directory -> family override (None = from generator name)
ALPACA_MODELS = [
    # gpt4
    "gpt4", "gpt4_0314", "gpt4_0613", "gpt4_0613_concise", "gpt4_0613_verbose", "gpt4_1106_preview",
    "gpt4_1106_preview_concise", "gpt4_1106_preview_verbose", "gpt-4-0125-preview",
    "gpt-4-turbo-2024-04-09", "gpt-4o-2024-05-13", "gpt-4o-mini-2024-07-18",
    # gpt35
    "gpt-3.5-turbo-0301", "gpt-3.5-turbo-0613", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106_concise",
    "gpt-3.5-turbo-1106_verbose", "gpt35_turbo_instruct", "text_davinci_003",
    # claude
    "claude", "bedrock_claude", "claude-instant-1.2", "claude-2", "claude-2.1", "claude-2.1_concise",
    "claude-2.1_verbose", "claude-3-sonnet-20240229", "claude-3-opus-20240229", "claude-3-5-sonnet-20240620",
    # gemini
    "gemini-pro",
    # llama
    "llama-2-7b-chat-hf", "llama-2-13b-chat-hf", "llama-2-70b-chat-hf", "Meta-Llama-3-8B-Instruct",
    "Meta-Llama-3-70B-Instruct", "Meta-Llama-3.1-8B-Instruct-Turbo", "Meta-Llama-3.1-70B-Instruct-Turbo",
    "Meta-Llama-3.1-405B-Instruct-Turbo",
    # mistral
    "Mistral-7B-Instruct-v0.2", "Mistral-7B-Instruct-v0.3", "Mixtral-8x7B-Instruct-v0.1",
    "Mixtral-8x7B-Instruct-v0.1_concise", "Mixtral-8x7B-Instruct-v0.1_verbose", "Mixtral-8x22B-Instruct-v0.1",
    "mistral-medium", "mistral-large-2402",
    # other
    "cohere", "Qwen1.5-72B-Chat", "Qwen1.5-110B-Chat", "Qwen2-72B-Instruct", "Yi-34B-Chat",
    "yi-large-preview", "dbrx-instruct", "deepseek-llm-67b-chat", "gemma-7b-it", "falcon-40b-instruct",
    "text_davinci_001",
]


def _alpaca_model_name(repo, commit, d):
    path = "src/alpaca_eval/models_configs/%s/configs.yaml" % d
    if not repo.exists(commit, path):
        return None
    m = re.search(r"model_name:\s*[\"']?([^\"'\n#]+)", repo.text(commit, path))
    return m.group(1).strip() if m else None


def src_alpaca(c, repo, commit, key):
    lic = "Apache-2.0 (repository); model outputs subject to provider terms"
    for d in ALPACA_MODELS:
        path = "results/%s/model_outputs.json" % d
        if not repo.exists(commit, path):
            print("  alpaca-eval: missing %s" % path, file=sys.stderr)
            continue
        api_name = _alpaca_model_name(repo, commit, d)
        data = json.loads(repo.text(commit, path))
        variant = "concise" if d.endswith("_concise") else "verbose" if d.endswith("_verbose") else None
        for i, row in enumerate(data):
            gen = api_name or row.get("generator") or d
            if d == "text_davinci_001":
                fam = "other"
            else:
                fam = None
            instr = row.get("instruction")
            c.add(key, repo.name, commit, path, i, row.get("output"), "machine", gen, domain_from_instruction(instr),
                  "none", lic, None, prompt=instr, subset="%s/%s" % (d, row.get("dataset")),
                  notes=("length-instructed variant: %s" % variant) if variant else None,
                  family=fam, chat=True)


def _fastchat_answers(c, repo, commit, key, path, questions, gen_override=None, lic="Apache-2.0", subset=""):
    for i, row in enumerate(read_jsonl(repo.blob(commit, path))):
        qid = row.get("question_id")
        q = questions.get(qid)
        gen = gen_override or row.get("model_id") or ""
        if "text" in row:   # old vicuna-bench format
            turns = [row["text"]]
        else:
            turns = (row.get("choices") or [{}])[0].get("turns") or []
        for t_i, turn in enumerate(turns):
            if isinstance(turn, dict):
                turn = turn.get("content")
            prompt = None
            if isinstance(q, list) and t_i < len(q):
                prompt = q[t_i]
            elif isinstance(q, str) and t_i == 0:
                prompt = q
            c.add(key, repo.name, commit, path, "%s/%s" % (qid, t_i), turn, "machine", gen,
                  domain_from_instruction(prompt), "none", lic, None, prompt=prompt,
                  subset="%s/turn%d" % (subset, t_i + 1), chat=True)


def _questions(repo, commit, path):
    out = {}
    for row in read_jsonl(repo.blob(commit, path)):
        qid = row.get("question_id", row.get("uid"))
        if "turns" in row:
            out[qid] = row["turns"]
        elif "text" in row:
            out[qid] = row["text"]
        elif "prompt" in row:
            out[qid] = row["prompt"]
    return out


FASTCHAT_VICUNA = "31a1b9000b2ad6e27616f80319114705513972bb"
FASTCHAT_ARENA1K = "396a8b2f2f06c18300e1efa364a981262b339b8c"
FASTCHAT_GPT4O = "4026da0c2bf4b1cf2331a56d668d60550e3743f1"


def src_fastchat(c, repo, commit, key):
    # (a) Vicuna-80 answers of Bard and ChatGPT, March 2023
    cm = FASTCHAT_VICUNA
    qs = _questions(repo, cm, "fastchat/eval/table/question.jsonl")
    for f, gen in (("answer_bard.jsonl", "bard:20230327"), ("answer_gpt35.jsonl", "gpt-3.5-turbo:20230327")):
        path = "fastchat/eval/table/answer/" + f
        for i, row in enumerate(read_jsonl(repo.blob(cm, path))):
            qid = row.get("question_id")
            prompt = qs.get(qid)
            c.add(key, repo.name, cm, path, qid, row.get("text"), "machine", row.get("model_id") or gen,
                  domain_from_instruction(prompt), "none", "Apache-2.0", None, prompt=prompt,
                  subset="vicuna_bench_2023-03", chat=True)
    # (b) arena_hard_1k (478 Chatbot-Arena prompts), pull request #2588
    cm = FASTCHAT_ARENA1K
    base = "fastchat/llm_judge/data/arena_hard_1k/"
    qs = _questions(repo, cm, base + "question.jsonl")
    for m in ("claude-v1", "claude-2", "claude-instant-v1", "gpt-4", "gpt-3.5-turbo", "palm-2-chat-bison-001",
              "Llama-2-70b-chat"):
        _fastchat_answers(c, repo, cm, key, base + "model_answer/%s.jsonl" % m, qs, subset="arena_hard_1k")
    # (c) GPT-4o on MT-bench and Vicuna-bench, pull request #3404
    cm = FASTCHAT_GPT4O
    for bench in ("mt_bench", "vicuna_bench"):
        base = "fastchat/llm_judge/data/%s/" % bench
        qs = _questions(repo, cm, base + "question.jsonl")
        _fastchat_answers(c, repo, cm, key, base + "model_answer/gpt-4o.jsonl", qs, subset=bench)


def src_arena_hard(c, repo, commit, key):
    lic = "Apache-2.0"
    for ver, models in (("arena-hard-v0.1", ("gpt-4-0314", "gpt-4-0613", "gpt-3.5-turbo-0125")),
                        ("arena-hard-v2.0", ("o3-mini-2025-01-31",))):
        qs = _questions(repo, commit, "data/%s/question.jsonl" % ver)
        for m in models:
            path = "data/%s/model_answer/%s.jsonl" % (ver, m)
            for row in read_jsonl(repo.blob(commit, path)):
                uid = row.get("uid")
                msgs = row.get("messages") or []
                ans = None
                for msg in msgs:
                    if msg.get("role") == "assistant":
                        ans = msg.get("content")
                        if isinstance(ans, dict):
                            ans = ans.get("answer")
                prompt = qs.get(uid)
                c.add(key, repo.name, commit, path, uid, ans, "machine", row.get("model") or m,
                      domain_from_instruction(prompt), "none", lic, None, prompt=prompt, subset=ver, chat=True,
                      notes="OpenAI o-series reasoning model, grouped with gpt4" if m.startswith("o3") else None)


L2R_DOMAINS = OrderedDict([
    ("AcademicResearch", "abstract"), ("ArtCulture", "wiki"), ("Business", "other"),
    ("EducationMaterial", "other"), ("Entertainment", "other"), ("Environmental", "other"),
    ("Finance", "other"), ("FoodCusine", "other"), ("GovernmentPublic", "other"),
    ("LegalDocument", "other"), ("LiteratureCreativeWriting", "story"), ("MedicalText", "other"),
    ("NewsArticle", "news"), ("OnlineContent", "other"), ("PersonalCommunication", "email"),
    ("ProductReview", "review"), ("Religious", "other"), ("Sports", "news"), ("TechnicalWriting", "other"),
])
L2R_MODELS = OrderedDict([("human", "human"), ("GPT-3-Turbo", "GPT-3.5-Turbo"), ("GPT-4o", "GPT-4o"),
                          ("Gemini-1.5-Pro", "Gemini-1.5-Pro"), ("Llama-3-70B", "Llama-3-70B")])


def src_l2r(c, repo, commit, key):
    lic = "CC BY 3.0 (L2R_dataset/LICENSE.txt)"
    for dname, dom in L2R_DOMAINS.items():
        for fname, gen in L2R_MODELS.items():
            path = "L2R_dataset/%s/%s.json" % (dname, fname)
            if not repo.exists(commit, path):
                continue
            data = json.loads(repo.text(commit, path))
            label = "human" if fname == "human" else "machine"
            for i, t in enumerate(data):
                c.add(key, repo.name, commit, path, i, t, label, gen if label == "machine" else "human", dom,
                      "none" if label == "human" else "paraphrase", lic, None, subset="L2R/%s" % dname,
                      notes=None if label == "human" else "LLM rewrite of the human passage with the same index",
                      pair="L2R/%s/%d" % (dname, i))


LONGFORM_SKIP = re.compile(r"quasar-alpha|optimus-alpha|fonts/")


def _lf_generator(fname):
    g = fname[len("results/"):-len("_longform_report.html")]
    return g.replace("__", "/")


def _html_to_text(s):
    s = re.sub(r"<strong>Model Output:</strong>\s*<br\s*/?>", "", s)
    s = re.sub(r"<br\s*/?>", "\n", s)
    s = re.sub(r"<[^>]+>", "", s)
    return html.unescape(s)


def src_longform(c, repo, commit, key):
    lic = "MIT (README)"
    judge_rows = []
    files = [p for p in repo.ls(commit, "results") if p.endswith("_longform_report.html") and not LONGFORM_SKIP.search(p)]
    for path in files:
        raw = repo.blob(commit, path)
        if len(raw) < 100000:
            continue
        t = raw.decode("utf-8", errors="replace")
        gen = _lf_generator(path)
        for it_i, it in enumerate(t.split('class="iteration-container"')[1:]):
            m = re.search(r'class="prompt-text-display">\s*<strong>Initial Writing Prompt:</strong><br>(.*?)</div>', it, re.S)
            story_prompt = _html_to_text(m.group(1)).strip() if m else None
            for blk in it.split('class="prompt-container"')[1:]:
                h = re.search(r"<h4>\s*Chapter\s+(\d+)\s*</h4>", blk)
                if not h:
                    continue     # planning / reflection / character steps
                chap = int(h.group(1))
                r = re.search(r'<div class="response-content">(.*?)</div>', blk, re.S)
                if not r:
                    continue
                body = _html_to_text(r.group(1))
                c.add(key, repo.name, commit, path, "%d/%d" % (it_i, chap), body, "machine", gen, "story", "none",
                      lic, None, prompt=story_prompt, subset="longform/chapter%d" % chap)
                j = re.search(r'<div class="judge-content">(.*?)</div>', blk, re.S)
                if j:
                    jt = _html_to_text(j.group(1))
                    jt = jt.split("[Scores]")[0]
                    jt = re.sub(r"^\s*(Judge Response:)?\s*(\[Analysis\])?\s*", "", jt)
                    judge_rows.append((path, "%d/%d/judge" % (it_i, chap), jt))
    # deterministic cap on the judge critiques (they are all by one model in one template)
    judge_rows.sort(key=lambda x: hashlib.sha1(("%s|%s" % (x[0], x[1])).encode()).hexdigest())
    for path, rk, jt in sorted(judge_rows[:LONGFORM_JUDGE_CAP], key=lambda x: (x[0], x[1])):
        c.add(key, repo.name, commit, path, rk, jt, "machine", "claude-3-7-sonnet-20250219 (judge)", "other", "none",
              lic, None, subset="longform/judge_critique", family="claude",
              notes="benchmark judge critique of a chapter; judge per README = Claude 3.7 Sonnet (not per-file verified)")


def src_eqbench(c, repo, commit, key):
    lic = "MIT"
    path = "data/judgemark_test_set.json"
    data = json.loads(repo.text(commit, path))
    prompts = {}
    ppath = "data/creative_writing_prompts.json"
    if repo.exists(commit, ppath):
        try:
            pj = json.loads(repo.text(commit, ppath))
            for k, v in pj.items():
                if isinstance(v, dict):
                    prompts[str(k)] = v.get("writing_prompt") or v.get("prompt")
        except ValueError:
            pass
    for model in sorted(data):
        for pid in sorted(data[model], key=lambda x: (len(x), x)):
            c.add(key, repo.name, commit, path, "%s/%s" % (model, pid), data[model][pid], "machine", model, "story",
                  "none", lic, None, prompt=prompts.get(str(pid)), subset="judgemark")


def src_ellipse(c, repo, commit, key):
    lic = "CC BY-NC-SA 4.0 (non-commercial)"
    path = "ELLIPSE_Final_github_test.zip"
    z = zipfile.ZipFile(io.BytesIO(repo.blob(commit, path)))
    member = "ELLIPSE_Final_github_test.csv"
    rows = read_csv(z.open(member, pwd=b"ellipse_test").read())
    for row in rows:
        c.add(key, repo.name, commit, "%s!%s" % (path, member), row.get("text_id_kaggle"), row.get("full_text"),
              "human", "human", "essay", "none", lic, False, prompt=row.get("prompt"),
              subset="ELLIPSE/grade%s/%s" % (row.get("grade"), row.get("task")),
              notes="English Language Learner, US grades 8-12")


def src_cover2022(c, repo, commit, key):
    lic = "not stated (sample cover letters from career websites)"
    for path in ("cover_letters.csv", "test_cover_letters.csv"):
        for row in read_csv(repo.blob(commit, path)):
            rk = row.get("") or row.get("Unnamed: 0") or row.get("fields")
            c.add(key, repo.name, commit, path, rk, row.get("text"), "human", "human", "cover_letter", "none", lic,
                  None, subset=(row.get("fields") or "").strip() or None,
                  notes="professionally written sample letter (career website), not an applicant's own")


def src_cover2019(c, repo, commit, key):
    lic = "not stated (JobHero samples scraped 2019-11)"
    path = "data/cover_letters.csv"
    for i, row in enumerate(read_csv(repo.blob(commit, path))):
        raw = row.get("raw") or ""
        # the scraper joined paragraphs with "," ; restore paragraph breaks at ",<Capital>" after sentence ends
        t = re.sub(r",,\s*", ",\n\n", raw)
        t = re.sub(r"(?<=[.:!?…])\s*,(?=\S)", "\n\n", t)
        c.add(key, repo.name, commit, path, i, t, "human", "human", "cover_letter", "none", lic, None,
              subset=(row.get("raw_title") or "").strip() or None,
              notes="professionally written sample letter (JobHero, scraped 2019); bullet highlights missing")


def src_mit_interview(c, repo, commit, key):
    lic = "not stated (MIT Interview Dataset, Naim et al. 2015, research use)"
    path = "interview_transcripts_by_turkers.csv"
    for row in read_csv(repo.blob(commit, path)):
        code = row.get("Code")
        turns = [t.strip() for t in (row.get("Details") or "").split("|") if t.strip()]
        question, answer, qn = None, [], 0

        def flush():
            if question is not None and answer:
                c.add(key, repo.name, commit, path, "%s/%d" % (code, qn), " ".join(answer), "human", "human",
                      "interview_answer", "none", lic, None, prompt=question, subset="mit_interview",
                      notes="spoken answer, crowd-transcribed (fillers kept; the source removed commas and apostrophes)")

        for t in turns:
            if t.lower().startswith("interviewer:"):
                q = t.split(":", 1)[1].strip()
                if "?" in q or len(q.split()) > 6:
                    flush()
                    question, answer, qn = q, [], qn + 1
            elif t.lower().startswith("interviewee:"):
                answer.append(t.split(":", 1)[1].strip())
        flush()


def src_resumes962(c, repo, commit, key):
    lic = "not stated (Kaggle UpdatedResumeDataSet)"
    path = "Resume.csv"
    for i, row in enumerate(read_csv(repo.blob(commit, path))):
        t = fix_mojibake(row.get("Resume") or "")
        if '"annotation"' in t and '"label"' in t:
            c._drop(key, "dataturks_like")
            continue
        c.add(key, repo.name, commit, path, i, t, "human", "human", "resume", "none", lic, None,
              subset=row.get("Category"), notes="resume text flattened by the dataset author; likely Indian English")


def read_xlsx_first_sheet(data):
    """Minimal .xlsx reader (zip of XML): first worksheet as a list of dicts keyed by the header row."""
    z = zipfile.ZipFile(io.BytesIO(data))
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        x = z.read("xl/sharedStrings.xml").decode("utf-8")
        for si in re.findall(r"<si>(.*?)</si>", x, re.S):
            shared.append(html.unescape("".join(re.findall(r"<t[^>]*>(.*?)</t>", si, re.S))))
    sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
    rows = []
    for rm in re.finditer(r"<row[^>]*>(.*?)</row>", sheet, re.S):
        row = {}
        for cm in re.finditer(r'<c r="([A-Z]+)\d+"([^>]*?)(?:/>|>(.*?)</c>)', rm.group(1), re.S):
            col, attrs, inner = cm.group(1), cm.group(2), cm.group(3) or ""
            t = re.search(r't="(\w+)"', attrs)
            t = t.group(1) if t else None
            v = re.search(r"<v>(.*?)</v>", inner, re.S)
            if t == "s" and v:
                val = shared[int(v.group(1))]
            elif t == "inlineStr":
                val = html.unescape("".join(re.findall(r"<t[^>]*>(.*?)</t>", inner, re.S)))
            elif v:
                val = html.unescape(v.group(1))
            else:
                val = ""
            row[col] = val
        rows.append(row)
    if not rows:
        return []
    header = rows[0]
    cols = sorted(header, key=lambda c: (len(c), c))
    return [{header[c].strip(): r.get(c, "") for c in cols} for r in rows[1:]]


def src_gpt_scoring(c, repo, commit, key):
    lic = "not stated in repository"
    for i in range(1, 7):
        for tag, gen in (("GPT35", "GPT-3.5 (ChatGPT, 2023)"), ("GPT4", "GPT-4 (ChatGPT, 2023)")):
            path = "PromptData/RawData/%d_%s.xlsx" % (i, tag)
            for j, row in enumerate(read_xlsx_first_sheet(repo.blob(commit, path))):
                prompt = row.get("Prompt") or row.get("Prompt ") or None
                dom = domain_from_instruction(prompt)
                if dom == "qa":
                    dom = "essay"
                c.add(key, repo.name, commit, path, j, row.get("Response"), "machine", gen, dom, "none", lic, None,
                      prompt=prompt, subset="set%d/type%s" % (i, row.get("Prompt Type") or "?"),
                      family="gpt35" if tag == "GPT35" else "gpt4",
                      notes="responses to ASAP / Cambridge FCE exam prompts, collected via ChatGPT in 2023")


def src_comnets(c, repo, commit, key):
    lic = "not stated in repository (paper: Ibrahim et al. 2023, Scientific Reports)"
    gen = "ChatGPT (web, early 2023)"
    paths = [p for p in repo.ls(commit) if p.count("/") == 3]
    by_dir = defaultdict(list)
    for p in paths:
        by_dir[p.rsplit("/", 1)[0]].append(p)
    prompts = {}
    for d in sorted(by_dir):
        root, course, q = d.split("/")
        for p in by_dir[d]:
            if p.rsplit("/", 1)[1].lower().startswith("question"):
                prompts.setdefault((course, q), repo.text(commit, p))
        if ":" in q:
            prompts.setdefault((course, q), q.split(":", 1)[1])
    for d in sorted(by_dir):
        root, course, q = d.split("/")
        if "(code)" in course:
            continue
        files = by_dir[d]
        prompt = prompts.get((course, q))
        dom = "essay" if "essay" in course.lower() else "qa"
        for p in files:
            base = p.rsplit("/", 1)[1]
            low = base.lower()
            if low.endswith((".cpp", ".py", ".r", ".ds_store")):
                continue
            if root == "Student and GPT Responses":
                if low.startswith("gpt"):
                    label, g, att, note = "machine", gen, "none", None
                elif low.startswith(("student", "hum")):
                    label, g, att, note = "human", "human", "none", "university student answer (NYU Abu Dhabi course)"
                else:
                    continue
            elif root == "QuillBot Output":
                m = re.match(r"gpt\d*:?_?\s*_?([a-z]+)_(\d)$", low)
                if not m or m.group(2) != "3":
                    continue
                label, g, att = "machine", "%s + QuillBot %s" % (gen, m.group(1)), "paraphrase"
                note = "ChatGPT answer paraphrased by QuillBot (mode %s, strength 3)" % m.group(1)
            else:
                continue
            c.add(key, repo.name, commit, p, 0, repo.text(commit, p), label, g, dom, att, lic, None, prompt=prompt,
                  subset="%s/%s" % (root, course), notes=note, family="gpt35" if label == "machine" else None,
                  chat=True)


SOURCES = [
    # key, repo, commit (None = fixed inside handler), handler
    ("liang-bias", "Weixin-Liang/ChatGPT-Detector-Bias", "1d05ed8242d4694a0ed7b73a79c52be8864470f9", src_liang),
    ("argugpt", "huhailinguist/ArguGPT", "cfbd00e75b63db44756375cfc1ee4278f8cd2bf1", src_argugpt),
    ("radek", "smarsou/ai-text-detector", "a8e84447a25bf23bb968ca3ece444d9cb3bdc161", src_radek),
    ("palm-essays", "karima-ibrahim/Gemini-API", "eb7dfb548a407047b804e1c2bb1c1a9f05bb6e10", src_palm),
    ("alpaca-eval", "tatsu-lab/alpaca_eval", "cd543a149df89434d8a54582c0151c0b945c3d20", src_alpaca),
    ("fastchat", "lm-sys/FastChat", None, src_fastchat),
    ("arena-hard", "lmarena/arena-hard-auto", "196f6b826783b3da7310e361a805fa36f0be83f3", src_arena_hard),
    ("l2r", "scott-matkosky/AI_Text_Detector", "0706922f555d694fd734159d2f7e6306e7d2ab7c", src_l2r),
    ("longform", "EQ-bench/longform-writing-bench", "d1c625505b1cf8baf32a49c8e21a9cf93a254044", src_longform),
    ("eqbench", "EQ-bench/EQ-Bench", "d28c60c514fe6667dc5818114ed10088f91f09f3", src_eqbench),
    ("ellipse", "scrosseye/ELLIPSE-Corpus", "b5f4469611d2596810d31d1a60921e54ce97ad07", src_ellipse),
    ("cover-2022", "moejoe3/NLG-for-Cover-Letters", "9686e0b5c1c9ae87a06d37c569b035e1899bac22", src_cover2022),
    ("cover-2019", "giterdun345/Cover-Letter-Generator", "0a4c8134dfa4802a8dbd3c1fd373d7b84ff01ab7", src_cover2019),
    ("mit-interview", "Riddle95/NLP_Detect-the-ideal-candidate-for-HR-Analytics",
     "6836eafeed5c3a6225d12b834f23d7b9e30fcf1b", src_mit_interview),
    ("resumes-962", "Alexlemelita/Text-Analysis", "b2d6ad72c9022a3846823bcaf7e6948fc7a8277c", src_resumes962),
    ("gpt-scoring", "nd-hal/automated-ML-scoring-versus-generation", "d4b46d5d1d07ac6e3836409922153a502c267b3c",
     src_gpt_scoring),
    ("comnets", "comnetsAD/ChatGPT", "25399756f77b198efcb95e8529275db4670db6c9", src_comnets),
]
FASTCHAT_COMMITS = (FASTCHAT_VICUNA, FASTCHAT_ARENA1K, FASTCHAT_GPT4O)


# ------------------------------------------------------------------------------------------------
# post-processing, output
# ------------------------------------------------------------------------------------------------
def eval_keys(eval_dir):
    """12-word prefix keys of every text in the shared evaluation sets (evaluation only: never train)."""
    keys = set()
    if not eval_dir or not os.path.isdir(eval_dir):
        return keys
    for root, _, files in os.walk(eval_dir):
        for fn in sorted(files):
            fp = os.path.join(root, fn)
            try:
                if fn.endswith(".raw_data.json"):
                    d = json.load(open(fp, encoding="utf-8"))
                    texts = [t for k in ("original", "sampled") for t in d.get(k, [])]
                elif fn.endswith(".jsonl"):
                    texts = []
                    for line in open(fp, encoding="utf-8"):
                        line = line.strip()
                        if line:
                            o = json.loads(line)
                            texts += [v for v in o.values() if isinstance(v, str) and words(v) > 20]
                else:
                    continue
            except (ValueError, OSError):
                continue
            keys.update(prefix_key(t) for t in texts if isinstance(t, str))
    return keys


def prefix_key(t, n=12):
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", t.lower()).split()[:n])


def finalise(rows, drops, evkeys=frozenset()):
    # texts that also sit in the shared evaluation sets are removed (with their L2R rewrites)
    if evkeys:
        bad_pairs = set()
        for r in rows:
            if prefix_key(r["text"]) in evkeys:
                r["_drop"] = True
                if r["_pair"]:
                    bad_pairs.add(r["_pair"])
        kept = []
        for r in rows:
            if r.get("_drop") or (r["_pair"] and r["_pair"] in bad_pairs):
                drops["in_shared_eval"] += 1
                continue
            kept.append(r)
        rows = kept
    # exact duplicates; texts seen with both labels are dropped everywhere
    labels_by_key = defaultdict(set)
    for r in rows:
        labels_by_key[dedup_key(r["text"])].add(r["label"])
    seen = set()
    cover_seen = set()
    out = []
    for r in rows:
        k = dedup_key(r["text"])
        if len(labels_by_key[k]) > 1:
            drops["label_conflict"] += 1
            continue
        if k in seen:
            drops["exact_duplicate"] += 1
            continue
        seen.add(k)
        if r["label"] == "human" and r["domain"] == "cover_letter":
            body = re.sub(r"^\s*(dear|to)\b[^\n]{0,80}?[:,]\s*", "", r["text"], flags=re.I)
            ck = " ".join(re.sub(r"[^a-z0-9 ]", " ", body.lower()).split()[:12])
            if ck in cover_seen:
                drops["near_duplicate_cover_letter"] += 1
                continue
            cover_seen.add(ck)
        r.pop("_pair", None)
        r.pop("_drop", None)
        out.append(r)
    return out


def length_bucket(n):
    for lim in (80, 150, 300, 600, 1000, 2000):
        if n < lim:
            return "<%d" % lim
    return ">=2000"


def summarise(rows, drops, drops_by_source, sources_used, elapsed):
    def cnt(f):
        c = Counter(f(r) for r in rows)
        return OrderedDict(sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    fam_dom = defaultdict(Counter)
    for r in rows:
        fam_dom[r["family"]][r["domain"]] += 1
    wl = sorted(r["words"] for r in rows)

    def pct(p):
        return wl[min(len(wl) - 1, int(p * len(wl)))] if wl else None
    return OrderedDict([
        ("records", len(rows)),
        ("by_label", cnt(lambda r: r["label"])),
        ("by_family", cnt(lambda r: r["family"])),
        ("by_domain", cnt(lambda r: r["domain"])),
        ("by_attack", cnt(lambda r: r["attack"])),
        ("family_x_domain", OrderedDict((f, OrderedDict(sorted(d.items()))) for f, d in sorted(fam_dom.items()))),
        ("by_source", cnt(lambda r: r["source"])),
        ("by_source_family", cnt(lambda r: "%s | %s" % (r["source"].split("@")[0], r["family"]))),
        ("by_generator", cnt(lambda r: "%s | %s" % (r["family"], r["generator"]))),
        ("by_licence", cnt(lambda r: r["licence"])),
        ("by_native", cnt(lambda r: str(r["native"]))),
        ("length_words", OrderedDict([("min", wl[0] if wl else None), ("p10", pct(0.1)), ("p25", pct(0.25)),
                                      ("median", pct(0.5)), ("p75", pct(0.75)), ("p90", pct(0.9)),
                                      ("max", wl[-1] if wl else None)])),
        ("length_bucket_by_label", OrderedDict(
            (lab, cnt_bucket([r for r in rows if r["label"] == lab])) for lab in ("human", "machine"))),
        ("wrapper_stripped_rows", sum(1 for r in rows if r["wrapper_stripped"])),
        ("markdown_rows_by_label", cnt(lambda r: "%s markdown=%s" % (r["label"], r["has_markdown"]))),
        ("drops", OrderedDict(sorted(drops.items()))),
        ("drops_by_source", OrderedDict((k, OrderedDict(sorted(v.items()))) for k, v in sorted(drops_by_source.items()))),
        ("sources", sources_used),
        ("seconds", round(elapsed, 1)),
    ])


def cnt_bucket(rows):
    c = Counter(length_bucket(r["words"]) for r in rows)
    order = ["<80", "<150", "<300", "<600", "<1000", "<2000", ">=2000"]
    return OrderedDict((k, c.get(k, 0)) for k in order)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshot", action="append", default=[],
                    help="OWNER/NAME=GITDIR (bare git directory of a fetched snapshot); repeatable")
    ap.add_argument("--mirror-root", help="look up OWNER+NAME/repo under this folder for every source")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  ".candor", "data", "text", "public", "records.jsonl"))
    ap.add_argument("--only", help="comma-separated source keys")
    ap.add_argument("--eval-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                                       "shared", "eval", "text"),
                    help="shared evaluation texts to exclude (default ../shared/eval/text; skipped if absent)")
    ap.add_argument("--no-eval-exclusion", action="store_true")
    ap.add_argument("--list", action="store_true", help="list the sources and exit")
    args = ap.parse_args()

    if args.list:
        for key, name, commit, _ in SOURCES:
            print("%-14s %s@%s" % (key, name, commit or ",".join(FASTCHAT_COMMITS)))
        return 0

    snaps = {}
    for s in args.snapshot:
        if "=" not in s:
            ap.error("--snapshot wants OWNER/NAME=GITDIR, got %r" % s)
        name, d = s.split("=", 1)
        snaps[name.strip().lower()] = os.path.abspath(d)
    if args.mirror_root:
        for _, name, _, _ in SOURCES:
            d = os.path.join(args.mirror_root, name.replace("/", "+"), "repo")
            if os.path.isdir(d):
                snaps.setdefault(name.lower(), d)
    for name in snaps:
        if name in RESERVED_REPOS:
            print("refusing reserved source %s (see ../shared/research/reserved.md)" % name, file=sys.stderr)
            return 2
    only = set(args.only.split(",")) if args.only else None

    t0 = time.time()
    c = Collector()
    used = []
    for key, name, commit, handler in SOURCES:
        if only and key not in only:
            continue
        gitdir = snaps.get(name.lower())
        if not gitdir:
            print("skip %-14s no snapshot given for %s" % (key, name), file=sys.stderr)
            continue
        repo = Repo(name, gitdir)
        commits = FASTCHAT_COMMITS if commit is None else (commit,)
        missing = [cm for cm in commits if not repo.has_commit(cm)]
        if missing:
            print("skip %-14s %s lacks pinned commit(s) %s" % (key, gitdir, ",".join(missing)), file=sys.stderr)
            continue
        n0 = len(c.rows)
        handler(c, repo, commit, key)
        print("%-14s %6d rows  (%s)" % (key, len(c.rows) - n0, name), file=sys.stderr)
        used.append(OrderedDict([("key", key), ("repo", name), ("commits", list(commits)), ("gitdir", gitdir),
                                 ("rows_before_dedup", len(c.rows) - n0)]))

    evkeys = set() if args.no_eval_exclusion else eval_keys(os.path.abspath(args.eval_dir))
    print("shared-eval exclusion keys: %d" % len(evkeys), file=sys.stderr)
    rows = finalise(c.rows, c.drops, evkeys)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    summary = summarise(rows, c.drops, c.drops_by_source, used, time.time() - t0)
    with open(out + ".manifest.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    print("wrote %d records to %s (%.1f s)" % (len(rows), out, time.time() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
