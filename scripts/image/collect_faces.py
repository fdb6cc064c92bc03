#!/usr/bin/env python3
"""Collects labelled face images (real photographs and generated/manipulated faces) from
public GitHub snapshots, for training and leave-one-family-out evaluation of Candor's image
detector. Needs Python 3, numpy and Pillow only (plus `git` on PATH).

It reads the files straight out of the bare git snapshots brought by the search tool's
`fetch` (e.g. /work/.mirror/<owner>+<repo>/repo), at the commits pinned below, and writes

    <out>/<source-slug>/...            the images
    <out>/manifest.jsonl               one JSON object per image, sorted by path:
        path (relative to <out>), label ("authentic" | "manipulated"),
        family (real | diffusion | stylegan | gan_other | swap | cgi | other),
        generator, source ("owner/repo@commit"), src_path (path in the repo; "#..." names a
        tile of a figure), licence, identity (or null), width, height, format, sha256
    <out>/collect_report.json          counts, dropped duplicates, per-figure checks

Single images keep their original bytes. Figure grids are cut into tiles (grid found from
the background profile; printed labels are left out of the crops) and saved as PNG, i.e.
the decoded pixels of the author's figure, without a further lossy step. Exact duplicates
(sha256 of the written bytes) are dropped, first occurrence wins in the fixed source order.
Tiles of SFHQ-T2I that show the same generated picture in several figures (the search
figures repeat images) are near-duplicates: they are also dropped, keeping the largest.

Usage (fetch the snapshots of the repositories in SOURCES first; a venv with numpy and
Pillow; the DejaVu Sans font of Debian's fonts-dejavu-core for the SFHQ-T2I labels):
    python3 scripts/image/collect_faces.py --mirror-root /work/.mirror
    python3 scripts/image/collect_faces.py \
        --snapshot exadel-inc/CompreFace=/work/.mirror/exadel-inc+CompreFace/repo \
        --snapshot SelfishGene/SFHQ-T2I-dataset=/work/.mirror/SelfishGene+SFHQ-T2I-dataset/repo \
        ... [--out .candor/data/image/faces] [--only lfw --only t2i ...]
    `--mirror-root` finds each snapshot at <root>/<owner>+<name>/repo (or repo/.git).
    Sources whose snapshot is not given are skipped (and listed in the report). A full
    run (all sources) also deletes files under <out> that the manifest no longer lists.
    Single process, about 10 minutes on 2 busy cores; output is deterministic.

Reserved sources (../shared/research/reserved.md) are never read:
  * exadel-inc/CompreFace: only `test_comp_models/lfw/` is read, and the 20 reserved LFW
    identities (RESERVED_LFW below) are never written; `embedding-calculator/sample_images/`
    and `load-tests/` are never listed. (A 24x24 signature of every LFW picture, reserved
    ones included, is kept in memory only to drop LFW-derived face swaps of reserved
    identities from Rees451/faces-fake-vs-real.)
  * SelfishGene/SFHQ-dataset: only the six usable `images/SFHQ_variability_*.jpg` figures
    and the three `images/bring_to_life_process_*.jpg` figures are read (never
    `SFHQ_sample_*` nor `SFHQ_variability_hair_color.jpg`).
  * sklinderton/vit-real-vs-fake-faces: only stylegan3_pool seeds 700020-700299.
  * SelfishGene/SFHQ-T2I-dataset is usable for training, but part of its figures is held
    out by the project; report results on it as in-source, never as held-out.
  * No file is read from clovaai/stargan-v2, NVlabs/{ffhq-dataset,stylegan,stylegan2,
    stylegan3}, PeterWang512/CNNDetection, iperov/DeepFaceLive, ageitgey/face_recognition,
    a312863063/*, XiaomingX/this-person-does-not-exist, alexkyllo/fake-faces,
    LucaCorvitto/RealFaces_w_StableDiffusion, tencent-ailab/IP-Adapter: RESERVED_REPOS
    below makes the script refuse them.

Sources (repo@commit, paths, licence, contribution) -- see SOURCES below for the code:
  exadel-inc/CompreFace@c2c15137 `test_comp_models/lfw/<Name>/*.jpg`: Labeled Faces in the
      Wild, 250x250 JPEG, real, identity = LFW name. Licence: none stated (LFW is offered
      for research). 13,233 files less the reserved identities.
  SelfishGene/SFHQ-T2I-dataset@a8064474 `figures/*.jpg`: figure grids of generated faces
      (MIT). textual_search_{1,2}_*: tiles labelled in print with the generating model's
      file name (FLUX1_pro/dev/schnell, SDXL, DALLE3). The label is read twice: by word
      shape (the printed line against the same text rendered in DejaVu Sans, matplotlib's
      default font) and by its width in em (LABEL_EM, em fitted per figure); the width
      decides FLUX1_dev vs FLUX1_pro, and tiles whose two reads disagree are dropped. The
      reader was checked on the overview figures, whose rows are labelled by model (0
      mismatches in 84 labels; see collect_report.json).
      Overview figures (all_model_images, good_model_images,
      flux_images, FLUX1_schnell_SDXL_images) have one model per row (table ROW_MODELS);
      *_images_with_prompts have one model per figure.
  SelfishGene/SFHQ-dataset@4c898bc7 `images/SFHQ_variability_{age,age_X_ethnicity_1,
      age_X_ethnicity_2,ethnicity,expression,hair_style}.jpg` (MIT): StyleGAN2 (SFHQ:
      e4e-inverted "inspiration" images regenerated by StyleGAN2-FFHQ) tiles, ~270-320 px.
      Also `images/bring_to_life_process_{stable_diffusion,3D_models,paintings}.jpg` (590 px
      tiles): row 0 is the inspiration image (Stable Diffusion v1.4/v2.1 -> diffusion; 3D
      renders -> cgi; paintings -> skipped), rows 1-2 the StyleGAN2 candidates.
  sklinderton/vit-real-vs-fake-faces@22d99a04 `dashboard/assets/stylegan3_pool/` seeds
      700020-700299: StyleGAN3 PNGs (no licence stated; NVIDIA generator weights are
      non-commercial).
  serengil/deepface@243209fd `tests/unit/dataset/*.jpg`: real celebrity/press photos and
      two group photos (repo MIT; photos are third-party, test use).
  vladmandic/human@151df64d `samples/in/`: person-*, stock-*, group-*, solvay1927 real
      (stock/press photos); cgi-model-*, cgi-multiangle-*, ai-* are 3D renders (family
      cgi). background.jpg skipped. Repo MIT; images third-party.
  Rithwikksvr/Super-Resolution (all commits) `**/image_NNNN.jpg`: Caltech Frontal Faces
      1999 (448x296, downscaled by the repo author), real. Licence: none stated.
  timesler/facenet-pytorch@787da06 `data/test_images/*/1.jpg`, `data/multiface.jpg`: real
      celebrity photos (repo MIT; photos third-party).
  TencentARC/GFPGAN@7552a77 `inputs/cropped_faces`, `inputs/whole_imgs`: real (old,
      low-quality) photos; Apache-2.0 repo, photos third-party.
  sczhou/CodeFormer@b33cc7d `inputs/cropped_faces`, `inputs/gray_faces`,
      `inputs/whole_imgs`: real photos; the numbered cropped_faces come from CelebA-HQ
      test synthetically degraded by the authors (doubtful as "camera" images). S-Lab
      licence 1.0 (non-commercial). masked_faces skipped (painted masks).
  neuralchen/SimSwap@bd7b768: `docs/img/total.PNG` (10 sources x 7 targets grid: 70 SimSwap
      face-swap results + 17 real source/target crops), `docs/img/results1.PNG` (4 results +
      8 real), `docs/img/result_whole_swap_multispecific_512.jpg`, `output/result.jpg`
      (swaps); `crop_224/*.jpg`, `docs/img/id/*`, `demo_file/*` real face crops. Licence:
      CC BY-NC 4.0 per the repo (non-commercial).
  chandrikadeb7/Face-Mask-Detection@7e50074 `dataset/without_mask/` (1,930 web face crops,
      real, many East/South Asian faces, 100-1000 px; MIT repo, photos third-party) and
      prajnasb/observations@cdcf450 `experiements/data/without_mask/` (686, mostly the same
      pictures: exact duplicates dropped; no licence stated). The with_mask folders are not
      used (many masks are pasted on artificially).
  justadudewhohacks/face-api.js@a86f011 `examples/images/**`, `test/images/*` (not the blank
      white.png): TV stills, stock and press photos (Big Bang Theory cast, identity =
      folder), MIT repo.
  InstantID/InstantID@2145b67 `examples/*_resize.*`, `examples/poses/pose{,2,3,4}.jpg` and
      TencentARC/PhotoMaker@060b4fc `examples/{yangmi,scarletthead,lenna}_woman/*`: real
      reference photos (Apache-2.0 repos, photos third-party); the generated figures in
      assets/ and the paintings (newton_man, MonaLisa) are not used.
  dinablachman/realorfake@e4a5b79 `data/fake/*.jpg`: 200 faces saved from
      thispersondoesnotexist.com (StyleGAN2 per the README; original 1024 px JPEG bytes)
      and `data/real/*.jpg`: 600 FFHQ photos (1024 px) that the author's script re-saved
      with PIL (JPEG quality 75), i.e. the two classes differ in JPEG history. No licence.
  s0md3v/roop@cf7ba1ca (an older commit; the files were removed later)
      `.github/preview/{target,output}.gif`: one 64-frame stock clip before and after an
      inswapper face swap; every 8th frame -> 8 real + 8 swap PNGs (GIF palette colours).
      GPL-3.0 repo. haofanwang/inswapper@d52c0d4 `result.png` (inswapper + CodeFormer swap of
      `data/mans1.jpeg`) and the real inputs `data/*.jpeg`; no licence stated.
  yunjey/stargan@94dd002 `jpg/result_celeba{1,2}.jpg`: StarGAN (2018) result grids, cut by a
      measured geometry table (STARGAN_FIGS): 14 real CelebA inputs and 119 GAN edits (hair
      colour, gender, age, expression), family gan_other. MIT repo; CelebA research use.
      result_rafd.jpg is not used (RaFD terms).
  ondyari/FaceForensics@b952e41 `images/ex_{original,deepfakes,neuraltextures}.png` (one FF++
      frame, 640x480: real, Deepfakes swap, NeuralTextures reenactment) and
      `images/ex_{original_actors,deepfakedetection}.png` (DFD, 1920x1080: real, swap).
      FaceForensics terms of use (research only).
  microsoft/FaceSynthetics@50797c9 `docs/img/dataset_samples.jpg` (12x4 renders),
      `dataset_samples_2.jpg` (the 35 render cells; segmentation cells skipped),
      `iccv21_process_render_6.png`; microsoft/DigiFace1M@1d173f3 `docs/img/{variety,
      accessories}_id{1,2}.jpg` (white-gap grids). Photoreal 3D face renders, family cgi.
      Both: non-commercial research licences.
  yang-song/score_sde_pytorch@cb1f359 `assets/{celebahq_256,ffhq_256}.jpg` (4x2) and
      `assets/{ffhq_1024,ffhq_samples}.jpeg|jpg` (2x1): NCSN++ score-based diffusion samples,
      cut into equal cells (table SCORE_SDE_FIGS). Apache-2.0.
  podgorskiy/ALAE@42bcf2e `dataset_samples/faces/realign1024x1024/*.png` (146 real celebrity
      photos aligned to 1024 px; some look upscaled) and `style_mixing/output/rec_*.jpg` (30
      ALAE style mixes, 256 px, gan_other, visibly broken: low realism). The dst_/source_
      images there look like the real inputs and are not used. Apache-2.0; photos third-party.
  Mohanish-5744/Major_Ensemble_Gender@2f8aa4a5 `crop_part1/*.jpg.chip.jpg`: 9,780 UTKFace
      aligned crops (200 px), real, ages 1-116, five ethnicity groups; age / gender / race
      from the file name go into `note`. UTKFace is non-commercial research only.
  andrew-valentin/HumanFaceImageGenerator (history) `celeba/*.jpg`: 64 CelebA aligned
      images (178x218), real; CelebA is non-commercial research only.
  iperov/DeepFaceLab@46fc239 `doc/{deage_0,head_replace_0,head_replace_1,head_replace_2}_{1,2}.jpg`
      (before / after pairs: 4 real frames, 4 DFL results) and `doc/political_speech{1,2,3}.jpg`
      (DFL deepfake video frames): family swap, generator deepfacelab. GPL-3.0 repo.
      (iperov/DeepFaceLive is reserved and not read.)
  Rees451/faces-fake-vs-real@69c112d3 `data/raw/real_and_fake_face/{real,fake}/`: the Yonsei
      "real and fake face detection" set, 1,081 real 600 px photos and 960 expert Photoshop
      composites (family other, generator photoshop-composite); `data/raw/LFW_faceswap/fake/`:
      face swaps between LFW pictures made with a modified MarekKowalski/FaceSwap (family
      swap, generator faceswap-3dmm). Its `LFW_faceswap/real` files are byte-identical LFW
      originals and are not read. Reserved LFW identities: every swap is matched to its
      nearest LFW picture (24x24 grey signature); swaps whose nearest picture is of a
      reserved identity, or that come within 0.8 of any reserved picture, are dropped (the
      reserved pictures are read only to build this exclusion index and are never written).
      No licence stated.
  necenzurat/ai-image-filter@0dcf589b `testIMG/dataset.zip` -> `human/*.jpg` (read from the
      zip in memory): 24 AI-generated Korean ID-photo headshots, 12 ChatGPT (generator
      gpt-image) and 12 Gemini (gemini-image), 600x800 JPEG, family "other" (closed
      generators of undisclosed architecture). MIT. The authors removed logos and re-saved.
  yangxy/GPEN@2c73670 `examples/ffhq-10/*.png` (10 real FFHQ photos, 1024 px),
      `examples/outs-seg2face/*_GPEN.jpg` (20 faces generated from segmentation maps,
      gan_other), `examples/outs-inpainting/*_GPEN.jpg` (10 GAN-inpainted faces, gan_other).
      No licence file in the repo.
  YadiraF/DECA@f5b6b42 `TestSamples/AFLW2000/` and YadiraF/PRNet@fc12fe5
      `TestImages/{AFLW2000/*,0,1,2,4,trump}.jpg`: real AFLW2000 (Flickr) and other test
      photos, ~450 px (3.jpg, a cut-out face, and 5.jpg, a cartoon, are not used). DECA:
      non-commercial research licence; PRNet: MIT; photos third-party.
  Professional portraits (version 5; v4 flagged such real photos far more than press ones):
  debruine/webmorphR.stim@fa8b78fd `inst/{neutral_front,smiling_front}/NNN_03.jpg` (Face
      Research Lab London Set: 102 sitters, neutral and smiling, 1350x1350 studio shots;
      identity = sitter) and `inst/canada/*.jpg` (40 frontal studio photos). CC BY 4.0
      (figshare 10.6084/m9.figshare.5047666; sitters consented). Not `composite/` (averaged
      faces) nor `3dsk/` (masked cut-outs).
  yiranran/APDrawingGAN@38f4319f `dataset/data/test_single/*` (39 stock, fashion and
      ID-style photos, 512x512 aligned), `imgs/samples/img_NNNN.png` (not *_fake_B, the
      drawings), `preprocess/example/img_1701.jpg`; and xuebinqin/U-2-Net@ac7e1c81
      `test_data/test_portrait_images/{your_portrait_im,portrait_im}/*`,
      `test_data/test_human_images/*` (stock and press photos). Apache-2.0 repos, photos
      third-party. APDrawing's img_NNNN appears in both: identity = the number.
  debruine/webmorph@f3a986c9 (history; not in HEAD) `demo/celebs/*.jpg` (not _avg_*):
      publicity headshots of actors, eye-aligned 300x400. MIT repo; photos third-party.
  Honlan/BeautyGAN@bca8aa43 `imgs/{makeup,no_makeup}/*.png`: MT makeup dataset beauty
      photos, 361x361. No licence stated.
  Strong expressions on real faces (in the other sources they are mostly on generated ones):
  lai-wei-cheng/b12207073@790c4498 `Taiwanese/faces_256x256/*.jpg`: the Taiwanese Facial
      Expression Image Database (Chen, Cho & Tseng 2013; 1,232 frontal 256x256 crops of 29
      performers, calm to surprised; name = performer, type, view, expression, serial;
      identity = performer). No licence in the repo; the database is for academic research.
  freelance-work/mit_psycology_dept@a5c5d4bc `assets/faces/*.jpg`: 131 studio photos of 30
      actors posing emotions (WSEFEP by every sign: naming, actors, navy shirts; identity =
      the initials). No licence in the repo; WSEFEP is non-commercial research only.
  minivision-ai/Silent-Face-Anti-Spoofing@b6d5f04 `images/sample/image_T1.jpg` (real
      webcam frame; the F* spoof photos and *_result files are skipped). Apache-2.0.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont, ImageDraw

Image.MAX_IMAGE_PIXELS = 200_000_000

RESERVED_REPOS = {
    "clovaai/stargan-v2", "NVlabs/ffhq-dataset", "NVlabs/stylegan", "NVlabs/stylegan2",
    "NVlabs/stylegan3", "PeterWang512/CNNDetection", "iperov/DeepFaceLive",
    "ageitgey/face_recognition", "XiaomingX/this-person-does-not-exist",
    "alexkyllo/fake-faces", "LucaCorvitto/RealFaces_w_StableDiffusion",
    "tencent-ailab/IP-Adapter",
}
RESERVED_OWNERS = {"a312863063"}

RESERVED_LFW = {
    "Aaron_Sorkin", "Andy_Wisecarver", "Bison_Dele", "Charles_Chandler_IV", "Daniell_Sunjata",
    "Dule_Hill", "Francisco_Maturana", "Hal_Gehman", "James_Baker", "Jim_Haslett",
    "Joshua_Harapko", "Laila_Ali", "Manuel_Llorente", "Michael_Bolton", "Natalie_Imbruglia",
    "Pedro_Velasquez", "Richard_Jefferson", "Sam_Torrance", "Steven_Van_Zandt", "Tony_Cummo",
}

IMG_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# ---------------------------------------------------------------------------------------
# git access


class Snapshot:
    def __init__(self, repo: str, gitdir: str):
        self.repo = repo
        self.gitdir = gitdir
        self._cat = None

    def git(self, *args: str) -> bytes:
        return subprocess.run(["git", "-C", self.gitdir, *args], check=True,
                              capture_output=True).stdout

    def resolve(self, rev: str) -> str:
        return self.git("rev-parse", rev + "^{commit}").decode().strip()

    def ls(self, commit: str, prefix: str = "") -> list[tuple[str, str]]:
        """(blob, path) of every file under prefix at commit."""
        args = ["ls-tree", "-r", "-z", "--full-tree", commit]
        if prefix:
            args += ["--", prefix]
        out = []
        for ent in self.git(*args).split(b"\0"):
            if not ent:
                continue
            meta, path = ent.split(b"\t", 1)
            mode, typ, blob = meta.split()
            if typ == b"blob":
                out.append((blob.decode(), path.decode()))
        return sorted(out, key=lambda t: t[1])

    def commits(self) -> list[str]:
        return self.git("rev-list", "--all", "--reverse", "--topo-order").decode().split()

    def blob(self, blob: str) -> bytes | None:
        if self._cat is None:
            self._cat = subprocess.Popen(["git", "-C", self.gitdir, "cat-file", "--batch"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._cat.stdin.write(blob.encode() + b"\n")
        self._cat.stdin.flush()
        header = self._cat.stdout.readline().split()
        if len(header) < 3 or header[1] == b"missing":
            return None  # e.g. a file over the snapshot's size limit
        n = int(header[2])
        data = self._cat.stdout.read(n)
        self._cat.stdout.read(1)
        return data

    def close(self):
        if self._cat is not None:
            self._cat.stdin.close()
            self._cat.wait()
            self._cat = None


# ---------------------------------------------------------------------------------------
# output


class Collector:
    def __init__(self, out: Path):
        self.out = out
        self.rows: list[dict] = []
        self.seen: dict[str, str] = {}
        self.dropped: list[dict] = []
        self.report: dict = {"sources": {}, "skipped_sources": [], "checks": {}}
        self.lfw_index = None  # (signatures, identities) of LFW, set by do_lfw

    def add(self, data: bytes, rel: str, *, label, family, generator, source, src_path,
            licence, identity=None, fmt=None, size=None, note=None) -> bool:
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.seen:
            self.dropped.append({"src_path": src_path, "source": source, "dup_of": self.seen[sha]})
            return False
        if size is None or fmt is None:
            im = Image.open(io.BytesIO(data))
            size = im.size
            fmt = (im.format or "").lower()
        fmt = {"jpeg": "jpeg", "mpo": "jpeg"}.get(fmt, fmt)
        p = self.out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_bytes() != data:
            p.write_bytes(data)
        self.seen[sha] = rel
        row = {"path": rel, "label": label, "family": family, "generator": generator,
               "source": source, "src_path": src_path, "licence": licence,
               "identity": identity, "width": size[0], "height": size[1], "format": fmt,
               "sha256": sha}
        if note:
            row["note"] = note
        self.rows.append(row)
        return True

    def add_array(self, arr: np.ndarray, rel: str, **kw) -> bool:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
        return self.add(buf.getvalue(), rel, fmt="png", size=(arr.shape[1], arr.shape[0]), **kw)


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


# ---------------------------------------------------------------------------------------
# grid geometry


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.where(d == 1)[0]
    ends = np.where(d == -1)[0]
    return list(zip(starts.tolist(), ends.tolist()))


def grid_runs(prof: np.ndarray, thr: float, minlen: int, tol: int = 4) -> list[tuple[int, int]]:
    """Runs where the background fraction is below thr, kept when about as long as the
    median long run (all tiles of a figure have one size)."""
    r = [x for x in runs(prof < thr) if x[1] - x[0] >= minlen]
    if not r:
        return []
    L = float(np.median([e - s for s, e in r]))
    return [x for x in r if abs((x[1] - x[0]) - L) <= tol]


def find_grid(a: np.ndarray, dark_thr=40, col_thr=0.97, row_thr=0.90, minlen=100):
    """Tiles of a figure drawn on a dark background: column runs and row runs."""
    g = a.max(axis=2)
    dark = g < dark_thr
    rows = grid_runs(dark.mean(axis=1), row_thr, minlen)
    # columns from the tile rows only, so that printed labels wider than a tile (they
    # spill into the gaps between columns) do not merge neighbouring columns
    sel = np.zeros(len(g), bool)
    for r0, r1 in rows:
        sel[r0:r1] = True
    cols = grid_runs(dark[sel].mean(axis=0) if sel.any() else dark.mean(axis=0), col_thr, minlen)
    return cols, rows


# ---------------------------------------------------------------------------------------
# reading the printed model name (SFHQ-T2I figures)

T2I_MODELS = {  # printed prefix -> (generator, family)
    "FLUX1_schnell": ("flux-schnell", "diffusion"),
    "FLUX1_dev": ("flux-dev", "diffusion"),
    "FLUX1_pro": ("flux-pro", "diffusion"),
    "SDXL": ("sdxl", "diffusion"),
    "DALLE3": ("dalle3", "diffusion"),
}


class LabelReader:
    """Classifies a printed 'PREFIX_image_NNNNNNN.jpg' line by matching the word shape of
    its prefix against DejaVu Sans renderings of each candidate prefix."""

    def __init__(self, font_path: str):
        self.font_path = font_path
        self.cache: dict = {}

    def render(self, text: str, size: float) -> np.ndarray:
        key = (text, round(size, 2))
        if key not in self.cache:
            f = ImageFont.truetype(self.font_path, size=size)
            l, t, r, b = f.getbbox(text)
            im = Image.new("L", (r - l + 4, b - t + 4), 0)
            ImageDraw.Draw(im).text((2 - l, 2 - t), text, font=f, fill=255)
            a = np.asarray(im, dtype=np.float32)
            ys, xs = np.where(a > 60)
            a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            self.cache[key] = a
        return self.cache[key]

    def classify(self, line: np.ndarray) -> tuple[str, float, float]:
        """line: grey crop tightly around the printed text. Returns (prefix, score,
        margin to the second best)."""
        h, w = line.shape
        obs = line.astype(np.float32)
        scores = {}
        for prefix in T2I_MODELS:
            full = prefix + "_image_0000000.jpg"
            ref100 = self.render(full, 100.0)
            size = 100.0 * w / ref100.shape[1]
            ref = self.render(full, size)
            pre = self.render(prefix + "_image_", size)
            refi = np.asarray(Image.fromarray(ref).resize((w, h), Image.BILINEAR), np.float32)
            cut = max(8, min(w, int(round(pre.shape[1] * w / ref.shape[1]))))
            x = obs[:, :cut].ravel() - obs[:, :cut].mean()
            y = refi[:, :cut].ravel() - refi[:, :cut].mean()
            s = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-6))
            scores[prefix] = s
        best = sorted(scores.items(), key=lambda kv: -kv[1])
        return best[0][0], best[0][1], best[0][1] - best[1][1]


def text_lines(region: np.ndarray, thr=110) -> list[tuple[int, int]]:
    """Row runs of printed text (bright on dark) in a grey region; small gaps are merged."""
    ink = (region > thr).any(axis=1)
    r = runs(ink)
    merged = []
    for s, e in r:
        if merged and s - merged[-1][1] <= 1:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return [x for x in merged if x[1] - x[0] >= 4]


def label_line_above(g: np.ndarray, top: int, bottom: int, x0: int, x1: int):
    """The lowest printed line in g[top:bottom, x0:x1], cropped to its ink."""
    reg = g[top:bottom, x0:x1]
    lines = text_lines(reg)
    if not lines:
        return None
    s, e = lines[-1]
    line = reg[s:e]
    cols = np.where((line > 110).any(axis=0))[0]
    if len(cols) == 0:
        return None
    return line[:, cols[0]:cols[-1] + 1]


# ---------------------------------------------------------------------------------------
# near-duplicate signature for figure tiles


NEAR_DUP = 0.97  # cosine of 24x24 grey signatures; repeated pictures measure >= 0.985


def signature(tile: np.ndarray) -> np.ndarray:
    im = Image.fromarray(tile).convert("L").resize((24, 24), Image.BOX)
    v = np.asarray(im, np.float32).ravel()
    v = v - v.mean()
    return v / (np.linalg.norm(v) + 1e-6)


# ---------------------------------------------------------------------------------------
# sources

LFW = ("exadel-inc/CompreFace", "c2c15137")
T2I = ("SelfishGene/SFHQ-T2I-dataset", "a8064474a09cbcec27a498f5bf51ad08298ba47c")
SFHQ = ("SelfishGene/SFHQ-dataset", "4c898bc7936c19c201a163c4d636943e80d7bc19")
SG3 = ("sklinderton/vit-real-vs-fake-faces", "22d99a04bf2599878981459a48b1cfbac1b8a527")


def src_id(snap: Snapshot, commit: str) -> str:
    return f"{snap.repo}@{commit}"


def do_lfw(c: Collector, snap: Snapshot, rev: str):
    commit = snap.resolve(rev)
    n = skipped = 0
    sigs, names = [], []
    for blob, path in snap.ls(commit, "test_comp_models/lfw/"):
        parts = path.split("/")
        if len(parts) != 4 or not path.lower().endswith(".jpg"):
            continue
        person = parts[2]
        data = snap.blob(blob)
        if data is None:
            continue
        # signature index of all LFW pictures, used only to recognise LFW-derived pictures
        # of other sources (face swaps made on LFW) and to keep the reserved identities out
        sigs.append(signature(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
        names.append(person)
        if person in RESERVED_LFW:
            skipped += 1
            continue  # reserved: never written, never used except to exclude derivatives
        n += c.add(data, f"lfw/{person}/{parts[3]}", label="authentic", family="real",
                   generator="lfw", source=src_id(snap, commit), src_path=path,
                   licence="none stated (LFW, research use)", identity=person)
    c.report["checks"]["lfw_reserved_files_skipped"] = skipped
    c.lfw_index = (np.stack(sigs), names)
    return n


# SFHQ-T2I figures. Overview figures: model per row (top to bottom), checked against the
# printed labels. *_with_prompts: one model per figure.
ROW_MODELS = {
    "figures/all_model_images.jpg": ["FLUX1_pro", "FLUX1_dev", "FLUX1_schnell", "SDXL", "DALLE3"],
    "figures/good_model_images.jpg": ["FLUX1_pro", "FLUX1_dev", "FLUX1_schnell", "SDXL"],
    "figures/flux_images.jpg": ["FLUX1_pro", "FLUX1_dev", "FLUX1_schnell"],
    "figures/FLUX1_schnell_SDXL_images.jpg": ["FLUX1_schnell", "SDXL"],
}
FIGURE_MODEL = {
    "figures/DALLE3_images_with_prompts.jpg": "DALLE3",
    "figures/FLUX1_dev_images_with_prompts.jpg": "FLUX1_dev",
    "figures/FLUX1_pro_images_with_prompts.jpg": "FLUX1_pro",
    "figures/FLUX1_schnell_images_with_prompts.jpg": "FLUX1_schnell",
    "figures/SDXL_images_with_prompts.jpg": "SDXL",
}
T2I_SKIP = {"figures/model_distribution.jpg", "figures/prompt_lengths_distribution.jpg"}
INSET = 2  # pixels cut from each tile side (resampled border blended with background)


# Printed-label widths, in em of DejaVu Sans, of "<PREFIX>_image_NNNNNNN.jpg" as measured on
# these figures (after fitting em and an offset per figure on the SDXL and FLUX1_schnell
# lines, whose shapes differ most). FLUX1_dev and FLUX1_pro differ by one glyph of nearly
# the same shape, so the width decides between them: on the overview figures, whose rows
# are labelled by model, dev lines measure 15.94-15.96 em and pro lines 15.72-15.75 em.
LABEL_EM = {"FLUX1_schnell": 17.628, "FLUX1_dev": 15.93, "FLUX1_pro": 15.73, "DALLE3": 14.269,
            "SDXL": 13.08}
LABEL_EM_TOL = 0.15


def width_read(width: float, em: float, off: float):
    k = (width - off) / em
    prefix = min(LABEL_EM, key=lambda p: abs(LABEL_EM[p] - k))
    return prefix, k, abs(LABEL_EM[prefix] - k) <= LABEL_EM_TOL


def do_t2i(c: Collector, snap: Snapshot, rev: str, reader: LabelReader):
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    tiles = []  # (area, order, figure, r, ci, prefix, note, arr)
    checks = {}
    for blob, path in snap.ls(commit, "figures/"):
        if not path.lower().endswith(".jpg") or path in T2I_SKIP:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(blob))).convert("RGB"))
        g = a.max(axis=2)
        cols, rows = find_grid(a)
        if path in FIGURE_MODEL and len(cols) < 2:
            # one dark-edged picture in these 1820 px wide two-picture figures: use the
            # layout measured on the other four (tiles at x=10..889 and 932..1811)
            cols = [(10, 889), (932, 1811)]
        cells = []  # (ri, ci, tile, ncc_prefix, ncc_margin, line_width)
        prev_bottom = 0
        for ri, (r0, r1) in enumerate(rows):
            for ci, (c0, c1) in enumerate(cols):
                tile = a[r0 + INSET:r1 - INSET, c0 + INSET:c1 - INSET]
                read = (None, None, None)
                lw = None
                if path not in FIGURE_MODEL:
                    half = max(4, (cols[1][0] - cols[0][1]) // 2) if len(cols) > 1 else 12
                    line = label_line_above(g, prev_bottom, r0 - 1, max(0, c0 - half),
                                            min(a.shape[1], c1 + half))
                    if line is not None:
                        read = reader.classify(line)
                        lw = line.shape[1]
                cells.append((ri, ci, tile, read[0], read[2], lw))
            prev_bottom = r1
        fig = {"grid": [len(rows), len(cols)],
               "tile_px": [rows[0][1] - rows[0][0], cols[0][1] - cols[0][0]] if rows and cols else None}
        if path in FIGURE_MODEL:
            for ri, ci, tile, *_ in cells:
                tiles.append((tile.shape[0] * tile.shape[1], len(tiles), path, ri, ci,
                              FIGURE_MODEL[path], "model from figure title", tile))
            fig["models"] = {FIGURE_MODEL[path]: len(cells)}
            checks[path] = fig
            continue
        # fit em and offset on the lines whose word shape reads SDXL / FLUX1_schnell
        anc = [(LABEL_EM[p], w) for *_, p, m, w in cells if p in ("SDXL", "FLUX1_schnell") and w]
        if len({k for k, _ in anc}) >= 2:
            X = np.array([[k, 1.0] for k, _ in anc])
            em, off = np.linalg.lstsq(X, np.array([w for _, w in anc], float), rcond=None)[0]
        else:
            em, off = float(np.median([w / k for k, w in anc])), 0.0
        fig["label_em_px"] = round(float(em), 3)
        fig["label_offset_px"] = round(float(off), 2)
        counts: dict = {}
        dropped = []
        mism = 0
        for ri, ci, tile, p_ncc, margin, lw in cells:
            if lw is None:
                dropped.append(f"r{ri}c{ci}: no label")
                continue
            p_w, k, ok = width_read(lw, em, off)
            same_group = (p_w == p_ncc) or ({p_w, p_ncc} <= {"FLUX1_dev", "FLUX1_pro"})
            if path in ROW_MODELS:
                truth = ROW_MODELS[path][ri]
                if p_w != truth:
                    mism += 1
                prefix, note = truth, f"model from row table (printed label reads {p_w}, {k:.3f} em)"
            else:
                if not ok or not same_group:
                    dropped.append(f"r{ri}c{ci}: width {k:.3f} em -> {p_w}, shape -> {p_ncc}")
                    continue
                prefix, note = p_w, f"model from printed label ({k:.3f} em; word shape {p_ncc}, margin {margin:.3f})"
            counts[prefix] = counts.get(prefix, 0) + 1
            tiles.append((tile.shape[0] * tile.shape[1], len(tiles), path, ri, ci, prefix, note, tile))
        fig["models"] = dict(sorted(counts.items()))
        fig["unreadable_dropped"] = dropped
        if path in ROW_MODELS:
            fig["row_table_label_mismatches"] = mism
        checks[path] = fig
    # near-duplicates: same picture shown in several figures -> keep the largest tile
    order = sorted(tiles, key=lambda t: (-t[0], t[1]))
    kept_sigs: list[np.ndarray] = []
    kept_meta: list = []
    n = 0
    neardup = []
    close_kept = []
    for area, _, path, ri, ci, prefix, note, tile in order:
        sig = signature(tile)
        if kept_sigs:
            sims = np.stack(kept_sigs) @ sig
            j = int(np.argmax(sims))
            if sims[j] > NEAR_DUP:
                neardup.append({"src_path": f"{path}#r{ri}c{ci}", "dup_of": kept_meta[j],
                                "sim": round(float(sims[j]), 4)})
                continue
            if sims[j] > 0.9:
                close_kept.append({"src_path": f"{path}#r{ri}c{ci}", "nearest": kept_meta[j],
                                   "sim": round(float(sims[j]), 4)})
        gen, fam = T2I_MODELS[prefix]
        stem = slug(Path(path).stem)
        rel = f"sfhq-t2i/{gen}/{stem}_r{ri:02d}c{ci:02d}.png"
        if c.add_array(tile, rel, label="manipulated", family=fam, generator=gen, source=source,
                       src_path=f"{path}#r{ri}c{ci}", licence="MIT", note=note):
            n += 1
            kept_sigs.append(sig)
            kept_meta.append(f"{path}#r{ri}c{ci}")
    c.report["checks"]["sfhq_t2i_figures"] = checks
    c.report["checks"]["sfhq_t2i_near_duplicates_dropped"] = neardup
    c.report["checks"]["sfhq_t2i_kept_tiles_with_similarity_over_0.9"] = close_kept
    return n


SFHQ_FIGS = ["age", "age_X_ethnicity_1", "age_X_ethnicity_2", "ethnicity", "expression",
             "hair_style"]  # NOT hair_color, NOT SFHQ_sample_* (reserved)


BTL_ROW0 = {
    "stable_diffusion": ("diffusion", "stable-diffusion-1.4/2.1",
                         "SFHQ inspiration image generated by Stable Diffusion (v1.4 for part 2, v2.1 for part 4)"),
    "3D_models": ("cgi", "3d-render",
                  "SFHQ inspiration image: 3D face render (Face Synthetics / Close-Up Humans / UIBVFED)"),
    "paintings": None,
}


def do_sfhq(c: Collector, snap: Snapshot, rev: str):
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    n = 0
    checks = {}
    sigs = []
    for name in SFHQ_FIGS:
        path = f"images/SFHQ_variability_{name}.jpg"
        ents = snap.ls(commit, path)
        if not ents:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(ents[0][0]))).convert("RGB"))
        cols, rows = find_grid(a)
        checks[path] = {"grid": [len(rows), len(cols)],
                        "tile_px": [rows[0][1] - rows[0][0], cols[0][1] - cols[0][0]]}
        for ri, (r0, r1) in enumerate(rows):
            for ci, (c0, c1) in enumerate(cols):
                tile = a[r0 + INSET:r1 - INSET, c0 + INSET:c1 - INSET]
                sig = signature(tile)
                if sigs and float(np.max(np.stack(sigs) @ sig)) > NEAR_DUP:
                    continue
                if c.add_array(tile, f"sfhq-stylegan2/{name}_r{ri:02d}c{ci:02d}.png",
                               label="manipulated", family="stylegan", generator="stylegan2",
                               source=source, src_path=f"{path}#r{ri}c{ci}", licence="MIT",
                               note="SFHQ: StyleGAN2-FFHQ regeneration of e4e-encoded inspiration images"):
                    n += 1
                    sigs.append(sig)
    # "bring to life" process figures: row 0 = the inspiration image, rows 1-2 = two
    # StyleGAN2 (e4e) photoreal candidates made from it.
    for name, row0 in BTL_ROW0.items():
        path = f"images/bring_to_life_process_{name}.jpg"
        ents = snap.ls(commit, path)
        if not ents:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(ents[0][0]))).convert("RGB"))
        cols, rows = find_grid(a)
        checks[path] = {"grid": [len(rows), len(cols)],
                        "tile_px": [rows[0][1] - rows[0][0], cols[0][1] - cols[0][0]]}
        for ri, (r0, r1) in enumerate(rows):
            for ci, (c0, c1) in enumerate(cols):
                tile = a[r0 + INSET:r1 - INSET, c0 + INSET:c1 - INSET]
                if ri == 0:
                    if row0 is None:
                        continue  # paintings: not photographs, not generated photos
                    fam, gen, note = row0
                else:
                    fam, gen, note = "stylegan", "stylegan2", f"SFHQ photoreal candidate {ri} made from the inspiration image above it"
                n += c.add_array(tile, f"sfhq-btl/{name}_r{ri}c{ci}.png", label="manipulated",
                                 family=fam, generator=gen, source=source,
                                 src_path=f"{path}#r{ri}c{ci}", licence="MIT", note=note)
    c.report["checks"]["sfhq_figures"] = checks
    return n


def do_sg3(c: Collector, snap: Snapshot, rev: str):
    commit = snap.resolve(rev)
    n = 0
    for blob, path in snap.ls(commit, "dashboard/assets/stylegan3_pool/"):
        m = re.search(r"seed(\d+)(?:_psi([\d.]+))?\.(png|jpe?g)$", path, re.I)
        if not m:
            continue
        seed = int(m.group(1))
        if not (700020 <= seed <= 700299):  # 700000-700019 are reserved
            continue
        data = snap.blob(blob)
        if data is None:
            continue
        n += c.add(data, f"sg3-pool/{Path(path).name}", label="manipulated", family="stylegan",
                   generator="stylegan3", source=src_id(snap, commit), src_path=path,
                   licence="none stated (StyleGAN3 weights: NVIDIA non-commercial)",
                   note=f"StyleGAN3 (FFHQ) seed {seed}" + (f", truncation psi {m.group(2).rstrip('.')}" if m.group(2) else ""))
    return n


def simple(prefix_filter, label, family, generator, licence, outdir, identity=None, note=None):
    """Handler for plain files: prefix_filter(path) -> bool."""
    def run(c: Collector, snap: Snapshot, rev: str):
        commit = snap.resolve(rev)
        n = 0
        for blob, path in snap.ls(commit):
            if not path.lower().endswith(IMG_EXT) or not prefix_filter(path):
                continue
            data = snap.blob(blob)
            if data is None:
                continue
            lab = label(path) if callable(label) else label
            fam = family(path) if callable(family) else family
            gen = generator(path) if callable(generator) else generator
            ident = identity(path) if callable(identity) else identity
            rel = f"{outdir}/{slug(path.replace('/', '__'))}"
            n += c.add(data, rel, label=lab, family=fam, generator=gen,
                       source=src_id(snap, commit), src_path=path, licence=licence,
                       identity=ident, note=note)
        return n
    return run


def human_kind(path):
    b = Path(path).name
    return "cgi" if b.startswith(("cgi-", "ai-")) else "real"


do_deepface = simple(lambda p: p.startswith("tests/unit/dataset/"), "authentic", "real",
                     "press-photo", "repo MIT; photos third-party (test use)", "deepface")
do_human = simple(
    lambda p: p.startswith("samples/in/") and Path(p).name != "background.jpg",
    lambda p: "manipulated" if human_kind(p) == "cgi" else "authentic",
    human_kind,
    lambda p: "3d-render" if human_kind(p) == "cgi" else "stock-photo",
    "repo MIT; images third-party (test use)", "human")
do_facenet = simple(lambda p: re.fullmatch(r"data/test_images/[^/]+/\d+\.jpg|data/multiface\.jpg", p) is not None,
                    "authentic", "real", "press-photo", "repo MIT; photos third-party", "facenet-pytorch",
                    identity=lambda p: p.split("/")[2] if p.startswith("data/test_images/") else None)
do_gfpgan = simple(lambda p: p.startswith(("inputs/cropped_faces/", "inputs/whole_imgs/")),
                   "authentic", "real", "old-photo", "Apache-2.0 (repo); photos third-party", "gfpgan",
                   note="restoration benchmark input: old or low-quality photograph")
do_codeformer = simple(lambda p: p.startswith(("inputs/cropped_faces/", "inputs/gray_faces/", "inputs/whole_imgs/")),
                       "authentic", "real", "degraded-photo",
                       "S-Lab License 1.0 (non-commercial); photos third-party", "codeformer",
                       note="restoration benchmark input: degraded photo (numbered CelebA-HQ crops were degraded synthetically by the authors)")
do_silent = simple(lambda p: p == "images/sample/image_T1.jpg", "authentic", "real", "webcam",
                   "Apache-2.0", "silent-face")


def gpen_kind(p):
    if p.startswith("examples/ffhq-10/"):
        return ("authentic", "real", "ffhq-photo")
    if p.startswith("examples/outs-seg2face/"):
        return ("manipulated", "gan_other", "gpen-seg2face")
    return ("manipulated", "gan_other", "gpen-inpainting")


do_gpen = simple(
    lambda p: p.startswith("examples/ffhq-10/") or re.fullmatch(
        r"examples/outs-(seg2face|inpainting)/\d+_GPEN\.jpg", p) is not None,
    lambda p: gpen_kind(p)[0], lambda p: gpen_kind(p)[1], lambda p: gpen_kind(p)[2],
    "none stated in the repo (GPEN code; FFHQ photos are Flickr, CC BY-NC-SA 4.0 as a dataset)",
    "gpen")
do_deca = simple(lambda p: p.startswith("TestSamples/AFLW2000/"), "authentic", "real", "aflw2000",
                 "DECA non-commercial research licence (repo); AFLW2000 photos third-party", "deca")
do_prnet = simple(lambda p: re.fullmatch(r"TestImages/(AFLW2000/[^/]+|[0124]|trump)\.jpg", p) is not None,
                  "authentic", "real", "aflw2000", "MIT (repo); photos third-party (AFLW2000)", "prnet")


def do_necz(c: Collector, snap: Snapshot, rev: str):
    """24 AI-generated ID-photo headshots (ChatGPT / Gemini) inside testIMG/dataset.zip,
    folder human/ only (view/ and dinoHash/ are not faces)."""
    import zipfile
    commit = snap.resolve(rev)
    ents = dict((p, b) for b, p in snap.ls(commit, "testIMG/dataset.zip"))
    if "testIMG/dataset.zip" not in ents:
        return 0
    z = zipfile.ZipFile(io.BytesIO(snap.blob(ents["testIMG/dataset.zip"])))
    n = 0
    for name in sorted(z.namelist()):
        m = re.fullmatch(r"human/(ChatGPT|Gemini)_(\d+)_(man|woman)\.jpg", name)
        if not m:
            continue
        gen = {"ChatGPT": "gpt-image", "Gemini": "gemini-image"}[m.group(1)]
        n += c.add(z.read(name), f"ai-image-filter/{Path(name).name}", label="manipulated",
                   family="other", generator=gen, source=src_id(snap, commit),
                   src_path=f"testIMG/dataset.zip!{name}", licence="MIT",
                   note="AI ID photo (Korean, age group in name); logo removed and re-saved as JPEG by the authors")
    return n


do_maskdet = simple(lambda p: p.startswith("dataset/without_mask/"), "authentic", "real",
                    "web-face-crop", "MIT (repo); photos third-party (Bing search, Kaggle, RMFD)",
                    "face-mask-detection",
                    note="face crop without mask from the web; some are low-resolution or upscaled")
do_observ = simple(lambda p: p.startswith("experiements/data/without_mask/"), "authentic", "real",
                   "web-face-crop", "none stated; photos third-party", "observations-mask",
                   note="face crop without mask from the web")
do_faceapi = simple(lambda p: p.startswith(("examples/images/", "test/images/"))
                    and "/examples-browser/" not in p and Path(p).name != "white.png", "authentic", "real", "press-photo",
                    "MIT (repo); photos third-party (TV stills, press photos)", "face-api-js",
                    identity=lambda p: p.split("/")[2] if p.count("/") == 3 and p.startswith("examples/images/") else None)
do_instantid = simple(lambda p: re.fullmatch(r"examples/[^/]+_resize\.(png|jpe?g)|examples/poses/pose\d?\.jpg", p) is not None,
                      "authentic", "real", "press-photo", "Apache-2.0 (repo); photos third-party",
                      "instantid", identity=lambda p: Path(p).stem.replace("_resize", "") if "_resize" in p else None)
do_photomaker = simple(lambda p: re.fullmatch(r"examples/(yangmi_woman|scarletthead_woman|lenna_woman)/[^/]+", p) is not None,
                       "authentic", "real", "press-photo", "Apache-2.0 (repo); photos third-party",
                       "photomaker", identity=lambda p: p.split("/")[1].split("_")[0])


def rof_kind(p):
    if p.startswith("data/fake/"):
        return ("manipulated", "stylegan", "stylegan2")
    return ("authentic", "real", "ffhq-photo")


do_realorfake = simple(
    lambda p: p.startswith(("data/fake/", "data/real/")),
    lambda p: rof_kind(p)[0], lambda p: rof_kind(p)[1], lambda p: rof_kind(p)[2],
    "none stated (fake: thispersondoesnotexist.com; real: FFHQ, Flickr photos, CC BY-NC-SA 4.0 as a dataset)",
    "realorfake",
    note=None)


def do_roop(c: Collector, snap: Snapshot, rev: str):
    """roop README preview: the same 64-frame clip before (target.gif, real) and after
    (output.gif, inswapper face swap). Every 8th frame of each, saved as PNG."""
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    files = {p: b for b, p in snap.ls(commit, ".github/preview/")}
    n = 0
    for p, swap in ((".github/preview/output.gif", True), (".github/preview/target.gif", False)):
        if p not in files:
            continue
        im = Image.open(io.BytesIO(snap.blob(files[p])))
        for k in range(0, getattr(im, "n_frames", 1), 8):
            im.seek(k)
            arr = np.asarray(im.convert("RGB"))
            n += c.add_array(arr, f"roop/{Path(p).stem}_f{k:03d}.png",
                             label="manipulated" if swap else "authentic",
                             family="swap" if swap else "real",
                             generator="inswapper" if swap else "stock-video", source=source,
                             src_path=f"{p}#frame{k}", licence="GPL-3.0 (repo); clip third-party (stock video)",
                             note="GIF frame (256-colour palette); the real and swapped clips are the same frames")
    return n


def inswapper_kind(p):
    if p == "result.png":
        return ("manipulated", "swap", "inswapper")
    return ("authentic", "real", "press-photo")


do_inswapper = simple(lambda p: p == "result.png" or p.startswith("data/"),
                      lambda p: inswapper_kind(p)[0], lambda p: inswapper_kind(p)[1],
                      lambda p: inswapper_kind(p)[2],
                      "none stated; photos third-party", "inswapper-demo",
                      note=None)


# StarGAN result figures: an input column (real CelebA) left of a panel of attribute /
# expression edits, all cells ~135-142 px. Geometry measured on the figures (black frame
# lines of the two panels).
STARGAN_FIGS = {
    "jpg/result_celeba1.jpg": {"inp": (12, 147), "panel": (181, 1402), "ncol": 9, "y": (28, 976), "nrow": 7},
    "jpg/result_celeba2.jpg": {"inp": (8, 150), "panel": (188, 1324), "ncol": 8, "y": (34, 1028), "nrow": 7},
}


def do_stargan(c: Collector, snap: Snapshot, rev: str):
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    files = {p: b for b, p in snap.ls(commit, "jpg/")}
    n = 0
    for p, geo in STARGAN_FIGS.items():
        if p not in files:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        rows = _cells_uniform(geo["y"][0], geo["y"][1], geo["nrow"])
        for ri, (y0, y1) in enumerate(rows):
            x0, x1 = geo["inp"]
            n += c.add_array(a[y0 + 3:y1 - 3, x0 + 3:x1 - 3], f"stargan/{Path(p).stem}_r{ri}_input.png",
                             label="authentic", family="real", generator="celeba", source=source,
                             src_path=f"{p}#r{ri}input", licence="MIT (repo); CelebA photos, research use",
                             note="StarGAN input (CelebA, 128 px upscaled in the figure)")
            for ci, (u0, u1) in enumerate(_cells_uniform(geo["panel"][0], geo["panel"][1], geo["ncol"])):
                n += c.add_array(a[y0 + 3:y1 - 3, u0 + 3:u1 - 3], f"stargan/{Path(p).stem}_r{ri}c{ci}.png",
                                 label="manipulated", family="gan_other", generator="stargan",
                                 source=source, src_path=f"{p}#r{ri}c{ci}", licence="MIT (repo); CelebA-derived",
                                 note="StarGAN attribute/expression edit of the input (128 px, upscaled in the figure)")
    return n


FFPP_FILES = {  # path -> (label, family, generator)
    "images/ex_original.png": ("authentic", "real", "tv-frame"),
    "images/ex_deepfakes.png": ("manipulated", "swap", "ffpp-deepfakes"),
    "images/ex_neuraltextures.png": ("manipulated", "swap", "ffpp-neuraltextures"),
    "images/ex_deepfakedetection.png": ("manipulated", "swap", "dfd-deepfake"),
    "images/ex_original_actors.png": ("authentic", "real", "dfd-actor-video"),
}
do_ffpp = simple(lambda p: p in FFPP_FILES, lambda p: FFPP_FILES[p][0], lambda p: FFPP_FILES[p][1],
                 lambda p: FFPP_FILES[p][2], "FaceForensics terms of use (research only)", "faceforensics",
                 note="FaceForensics++ / DeepFakeDetection example video frame (same source video for original and fakes); NeuralTextures is reenactment, grouped with swap")


def light_grid(a: np.ndarray, minlen=60):
    """Tiles separated by white gaps: column runs over the whole figure, then row runs
    inside each column run (a large tile beside a grid of small ones is allowed)."""
    white = a.min(axis=2) > 245
    out = []
    for c0, c1 in [r for r in runs(white.mean(axis=0) < 0.9) if r[1] - r[0] >= minlen]:
        for r0, r1 in [r for r in runs(white[:, c0:c1].mean(axis=1) < 0.9) if r[1] - r[0] >= minlen]:
            out.append((r0, r1, c0, c1))
    return out


def do_facesynth(c: Collector, snap: Snapshot, rev: str):
    """Microsoft Face Synthetics sample figures: 3D renders (cgi)."""
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    lic = "Face Synthetics licence (non-commercial research)"
    files = {p: b for b, p in snap.ls(commit, "docs/img/")}
    n = 0
    # dataset_samples.jpg: 12 x 4 renders filling 2048x883; dataset_samples_2.jpg: 14 x 5
    # cells of 96 px alternating render / segmentation map (renders in even columns).
    for p, ncol, nrow, keep in (("docs/img/dataset_samples.jpg", 12, 4, lambda ci: True),
                                ("docs/img/dataset_samples_2.jpg", 14, 5, lambda ci: ci % 2 == 0)):
        if p not in files:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        for ri, (y0, y1) in enumerate(_cells_uniform(0, a.shape[0], nrow)):
            for ci, (x0, x1) in enumerate(_cells_uniform(0, a.shape[1], ncol)):
                if keep(ci):
                    n += c.add_array(a[y0 + 2:y1 - 2, x0 + 2:x1 - 2],
                                     f"face-synthetics/{Path(p).stem}_r{ri}c{ci:02d}.png",
                                     label="manipulated", family="cgi", generator="face-synthetics-render",
                                     source=source, src_path=f"{p}#r{ri}c{ci}", licence=lic)
    p = "docs/img/iccv21_process_render_6.png"
    if p in files:
        n += c.add(snap.blob(files[p]), "face-synthetics/iccv21_process_render_6.png", label="manipulated",
                   family="cgi", generator="face-synthetics-render", source=source, src_path=p, licence=lic)
    return n


def do_digiface(c: Collector, snap: Snapshot, rev: str):
    """Microsoft DigiFace-1M sample figures (renders of one identity in varied scenes)."""
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    files = {p: b for b, p in snap.ls(commit, "docs/img/")}
    n = 0
    for p in ("docs/img/variety_id1.jpg", "docs/img/variety_id2.jpg",
              "docs/img/accessories_id1.jpg", "docs/img/accessories_id2.jpg"):
        if p not in files:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        for k, (r0, r1, c0, c1) in enumerate(light_grid(a)):
            n += c.add_array(a[r0 + 2:r1 - 2, c0 + 2:c1 - 2], f"digiface/{Path(p).stem}_t{k:02d}.png",
                             label="manipulated", family="cgi", generator="digiface-render", source=source,
                             src_path=f"{p}#t{k}", licence="DigiFace-1M R-UDA (non-commercial research)")
    return n


SCORE_SDE_FIGS = {  # path -> (cols, rows) of equal cells
    "assets/celebahq_256.jpg": (4, 2), "assets/ffhq_256.jpg": (4, 2),
    "assets/ffhq_1024.jpeg": (2, 1), "assets/ffhq_samples.jpg": (2, 1),
}


def do_score_sde(c: Collector, snap: Snapshot, rev: str):
    """Score-SDE (NCSN++) sample figures: uncurated-looking grids of 256 / 1024 px samples."""
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    files = {p: b for b, p in snap.ls(commit, "assets/")}
    n = 0
    for p, (ncol, nrow) in SCORE_SDE_FIGS.items():
        if p not in files:
            continue
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        for ri, (y0, y1) in enumerate(_cells_uniform(0, a.shape[0], nrow)):
            for ci, (x0, x1) in enumerate(_cells_uniform(0, a.shape[1], ncol)):
                n += c.add_array(a[y0:y1, x0:x1], f"score-sde/{Path(p).stem}_r{ri}c{ci}.png",
                                 label="manipulated", family="diffusion", generator="ncsnpp-score-sde",
                                 source=source, src_path=f"{p}#r{ri}c{ci}", licence="Apache-2.0",
                                 note="score-based diffusion (NCSN++) sample; tiles abut, no inset")
    return n


def alae_kind(p):
    if p.startswith("style_mixing/output/"):
        return ("manipulated", "gan_other", "alae")
    return ("authentic", "real", "celebrity-photo-aligned")


do_alae = simple(lambda p: p.startswith(("dataset_samples/faces/realign1024x1024/", "style_mixing/output/rec_")),
                 lambda p: alae_kind(p)[0], lambda p: alae_kind(p)[1], lambda p: alae_kind(p)[2],
                 "Apache-2.0 (repo); photos third-party", "alae",
                 note=None)


UTK_RACE = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


def do_utkface(c: Collector, snap: Snapshot, rev: str):
    """UTKFace aligned-and-cropped faces (crop_part1), age_gender_race_date in the name."""
    commit = snap.resolve(rev)
    n = 0
    for blob, path in snap.ls(commit, "crop_part1/"):
        m = re.fullmatch(r"crop_part1/(\d+)_(\d)_(\d)_\d+\.jpg\.chip\.jpg", path)
        note = "UTKFace crop (200 px, aligned)"
        if m:
            note += f"; age {m.group(1)}, gender {'male' if m.group(2) == '0' else 'female'}, race {UTK_RACE.get(m.group(3), '?')}"
        elif not path.endswith(".jpg"):
            continue
        data = snap.blob(blob)
        if data is None:
            continue
        n += c.add(data, f"utkface/{Path(path).name}", label="authentic", family="real",
                   generator="utkface", source=src_id(snap, commit), src_path=path,
                   licence="UTKFace: non-commercial research only (repo: none stated)", note=note)
    return n


def do_celeba64(c: Collector, snap: Snapshot, rev: str):
    """64 CelebA aligned images committed once (celeba/*.jpg) and deleted later."""
    seen = {}
    for commit in snap.commits():
        for blob, path in snap.ls(commit, "celeba/"):
            if path.lower().endswith(".jpg") and path not in seen:
                seen[path] = (blob, commit)
    n = 0
    for path in sorted(seen):
        blob, commit = seen[path]
        data = snap.blob(blob)
        if data is None:
            continue
        n += c.add(data, f"celeba-sample/{Path(path).name}", label="authentic", family="real",
                   generator="celeba", source=src_id(snap, commit), src_path=path,
                   licence="CelebA: non-commercial research only (repo: none stated)")
    return n


def dfl_kind(p):
    n = Path(p).name
    if n.startswith("political_speech") or n.endswith("_2.jpg"):
        return ("manipulated", "swap", "deepfacelab")
    return ("authentic", "real", "video-frame")


do_dfl = simple(lambda p: re.fullmatch(r"doc/(deage_0_[12]|head_replace_\d_[12]|political_speech\d)\.jpg", p) is not None,
                lambda p: dfl_kind(p)[0], lambda p: dfl_kind(p)[1], lambda p: dfl_kind(p)[2],
                "GPL-3.0 (repo); frames third-party", "deepfacelab",
                note="DeepFaceLab README example: *_1 original frame, *_2 DFL result (de-age / head replacement); political_speech* are DFL deepfake frames with burnt-in subtitles")


def do_rees(c: Collector, snap: Snapshot, rev: str):
    """Rees451/faces-fake-vs-real: (a) the Yonsei 'real and fake face detection' set (600 px
    real photos and expert Photoshop composites of eyes / nose / mouth regions); (b) face
    swaps made on LFW with MarekKowalski/FaceSwap (3D-model fitting + blending). The LFW
    originals in data/raw/LFW_faceswap/real are byte-identical to LFW and not used again.
    A swap is dropped when its nearest LFW picture (the swap target keeps its background and
    pose) belongs to a reserved identity or is too close to any reserved picture."""
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    n = 0
    lic_rff = "none stated in repo (Kaggle ciplab 'real and fake face detection', Yonsei; non-commercial per the dataset page, unverified)"
    for blob, path in snap.ls(commit, "data/raw/real_and_fake_face/"):
        m = re.fullmatch(r"data/raw/real_and_fake_face/(real|fake)/((easy|mid|hard)_\d+_(\d{4})|real_\d+)\.jpg", path)
        if not m:
            continue
        data = snap.blob(blob)
        if data is None:
            continue
        if m.group(1) == "real":
            n += c.add(data, f"real-and-fake-face/real/{Path(path).name}", label="authentic", family="real",
                       generator="rff-photo", source=source, src_path=path, licence=lic_rff)
        else:
            n += c.add(data, f"real-and-fake-face/fake/{Path(path).name}", label="manipulated", family="other",
                       generator="photoshop-composite", source=source, src_path=path, licence=lic_rff,
                       note=f"expert Photoshop composite ({m.group(3)}); replaced regions flag {m.group(4)} (left eye, right eye, nose, mouth)")
    checks = {"lfw_swaps_dropped_reserved": 0, "lfw_swaps_no_index": 0}
    if c.lfw_index is None:
        checks["lfw_swaps_no_index"] = 1  # without the LFW index the reserved check is impossible: skip all swaps
    else:
        S, names = c.lfw_index
        reserved_rows = np.array([nm in RESERVED_LFW for nm in names])
        best_hist = {}
        for blob, path in snap.ls(commit, "data/raw/LFW_faceswap/fake/"):
            if not path.endswith(".jpg"):
                continue
            data = snap.blob(blob)
            if data is None:
                continue
            sig = signature(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            sims = S @ sig
            j = int(np.argmax(sims))
            if names[j] in RESERVED_LFW or float(sims[reserved_rows].max()) >= 0.8:
                checks["lfw_swaps_dropped_reserved"] += 1
                continue
            b = f"{float(sims[j]):.1f}"
            best_hist[b] = best_hist.get(b, 0) + 1
            note = "3D-model face swap between LFW pictures (MarekKowalski/FaceSwap, modified)"
            if sims[j] >= 0.9:
                note += f"; target picture ~ LFW {names[j]} (signature {float(sims[j]):.3f})"
            n += c.add(data, f"lfw-faceswap/{Path(path).name}", label="manipulated", family="swap",
                       generator="faceswap-3dmm", source=source, src_path=path,
                       licence="none stated (LFW-derived, research use)", note=note)
        checks["lfw_swaps_nearest_lfw_similarity_histogram"] = dict(sorted(best_hist.items()))
    c.report["checks"]["rees451"] = checks
    return n


def do_caltech(c: Collector, snap: Snapshot, rev: str):
    """Caltech frontal faces 1999 (downscaled), every image_NNNN.jpg in any commit."""
    seen = {}
    for commit in snap.commits():
        for blob, path in snap.ls(commit):
            m = re.search(r"(^|/)image_(\d{4})\.jpg$", path)
            if m and m.group(2) not in seen:
                seen[m.group(2)] = (blob, path, commit)
    n = 0
    for num in sorted(seen):
        blob, path, commit = seen[num]
        data = snap.blob(blob)
        if data is None:
            continue
        n += c.add(data, f"caltech-faces-1999/image_{num}.jpg", label="authentic", family="real",
                   generator="caltech-faces-1999", source=src_id(snap, commit), src_path=path,
                   licence="none stated (Caltech Faces 1999, research use)")
    return n


def _cells_uniform(x0, x1, n):
    e = np.linspace(x0, x1, n + 1)
    return [(int(round(e[i])), int(round(e[i + 1]))) for i in range(n)]


def do_simswap(c: Collector, snap: Snapshot, rev: str):
    commit = snap.resolve(rev)
    source = src_id(snap, commit)
    lic = "CC BY-NC 4.0 (repo); faces third-party"
    files = {p: b for b, p in snap.ls(commit)}
    n = 0
    # total.PNG: row 0 = 10 source faces, column 0 = 7 target frames, 7x10 swap results.
    # Geometry measured on the figure (white separators at x=120..123 and y=116..120).
    p = "docs/img/total.PNG"
    if p in files:
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        colsx = [(3, 120)] + _cells_uniform(124, 1276, 10)
        rowsy = [(0, 116)] + _cells_uniform(121, 930, 7)
        for ri, (y0, y1) in enumerate(rowsy):
            for ci, (x0, x1) in enumerate(colsx):
                if ri == 0 and ci == 0:
                    continue  # legend cell
                tile = a[y0 + 3:y1 - 3, x0 + 3:x1 - 3]
                swap = ri > 0 and ci > 0
                n += c.add_array(tile, f"simswap/total_r{ri}c{ci:02d}.png",
                                 label="manipulated" if swap else "authentic",
                                 family="swap" if swap else "real",
                                 generator="simswap" if swap else "press-photo", source=source,
                                 src_path=f"{p}#r{ri}c{ci}", licence=lic,
                                 note=None if swap else ("swap source face" if ri == 0 else "swap target frame"))
    # results1.PNG: two rows x two groups of (Source, Target, Result).
    p = "docs/img/results1.PNG"
    if p in files:
        a = np.asarray(Image.open(io.BytesIO(snap.blob(files[p]))).convert("RGB"))
        for ri, (y0, y1) in enumerate([(4, 233), (274, 503)]):
            for gi, (x0, x1) in enumerate([(3, 686), (699, 1382)]):
                for k, (u0, u1) in enumerate(_cells_uniform(x0, x1, 3)):
                    tile = a[y0 + 3:y1 - 3, u0 + 3:u1 - 3]
                    swap = k == 2
                    n += c.add_array(tile, f"simswap/results1_r{ri}g{gi}{'STR'[k]}.png",
                                     label="manipulated" if swap else "authentic",
                                     family="swap" if swap else "real",
                                     generator="simswap" if swap else "press-photo", source=source,
                                     src_path=f"{p}#r{ri}g{gi}{['source', 'target', 'result'][k]}",
                                     licence=lic)
    for p in ["docs/img/result_whole_swap_multispecific_512.jpg", "output/result.jpg"]:
        if p in files:
            data = snap.blob(files[p])
            if data is not None:
                n += c.add(data, f"simswap/{slug(p.replace('/', '__'))}", label="manipulated",
                           family="swap", generator="simswap", source=source, src_path=p,
                           licence=lic, note="whole-image face swap (video frame / photo)")
    for p, b in sorted(files.items()):
        if (p.startswith(("crop_224/", "docs/img/id/", "demo_file/"))) and p.lower().endswith(IMG_EXT):
            data = snap.blob(b)
            if data is None:
                continue
            n += c.add(data, f"simswap/real__{slug(p.replace('/', '__'))}", label="authentic",
                       family="real", generator="press-photo", source=source, src_path=p,
                       licence=lic, note="face-swap input (real photo or film still)")
    return n



# Version 5: professional portraits of real people (studio, stock, beauty). Version 4 flagged
# such photographs far more often than press photos: its real class was mostly LFW, video
# frames and old photos, so "sharp, evenly lit, smooth skin" leaned towards generated.
def _apd_identity(p):
    """APDrawing photos (img_NNNN) sit in two repos under different crops: one person."""
    m = re.search(r"img_(\d+)", Path(p).name)
    return f"apdrawing:{m.group(1)}" if m else Path(p).stem


def _stim_identity(p):
    b = Path(p).stem
    if p.startswith("inst/canada/"):
        return "canada:" + b
    return "london:" + b.split("_")[0]  # 001_03: neutral and smiling shots of one sitter


do_stim = simple(lambda p: re.fullmatch(r"inst/(neutral_front|smiling_front|canada)/[0-9][^/]*\.jpg", p) is not None,
                 "authentic", "real", "studio-portrait",
                 "CC BY 4.0 (repo; Face Research Lab London Set, figshare 10.6084/m9.figshare.5047666, sitters consented)",
                 "webmorphr-stim", identity=_stim_identity,
                 note="studio headshot, plain background (London 2012 / Canada sets)")
do_apdrawing = simple(lambda p: (p.startswith("dataset/data/test_single/")
                                 or re.fullmatch(r"imgs/samples/img_\d+\.png", p) is not None
                                 or p == "preprocess/example/img_1701.jpg"),
                      "authentic", "real", "stock-portrait",
                      "Apache-2.0 (repo); photos third-party (Pixabay, Shutterstock previews, WeChat)",
                      "apdrawing", identity=_apd_identity,
                      note="portrait-drawing input: stock, fashion or ID-style photo")
do_u2net = simple(lambda p: (p.startswith("test_data/test_portrait_images/your_portrait_im/")
                             or p.startswith("test_data/test_portrait_images/portrait_im/")
                             or p.startswith("test_data/test_human_images/")),
                  "authentic", "real", "stock-portrait",
                  "Apache-2.0 (repo); photos third-party (stock, press)", "u2net",
                  identity=_apd_identity, note="portrait / human segmentation test input")
do_webmorph = simple(lambda p: re.fullmatch(r"demo/celebs/[^_/][^/]*\.jpg", p) is not None,
                     "authentic", "real", "press-headshot",
                     "MIT (repo); photos third-party (publicity and red-carpet photos)",
                     "webmorph-celebs", note="eye-aligned publicity headshot, 300x400")
do_beautygan = simple(lambda p: p.startswith(("imgs/makeup/", "imgs/no_makeup/")),
                      "authentic", "real", "beauty-photo",
                      "none stated (repo); photos third-party (MT makeup dataset)", "beautygan",
                      note="beauty photo (makeup transfer input)")


# Real faces with strong expressions (posed by actors and performers, studio light): in the
# other sources strong expressions are mostly on generated faces (SFHQ's expression figures).
do_twexpr = simple(lambda p: re.fullmatch(r"Taiwanese/faces_256x256/\d{4}[a-g0]\d+\.jpg", p) is not None,
                   "authentic", "real", "expression-photo",
                   "none stated in the repo; Taiwanese Facial Expression Image Database (Chen, Cho & Tseng 2013): academic research only",
                   "tw-expression", identity=lambda p: "twexpr:" + Path(p).name[:2],
                   note="performer's posed or recalled expression, frontal, 256x256 crop")
do_wsefep = simple(lambda p: re.fullmatch(r"assets/faces/[A-Za-z]+\d*_\d+\.jpg", p) is not None,
                   "authentic", "real", "expression-photo",
                   "none stated in the repo; WSEFEP (Warsaw Set of Emotional Facial Expression Pictures): non-commercial research only",
                   "wsefep", identity=lambda p: "wsefep:" + Path(p).name.split("_")[0],
                   note="actor's posed emotional expression, studio, white background")

# repo -> (pinned commit, handler). The order is the dedupe priority.
SOURCES = [
    (LFW[0], LFW[1], "lfw"),
    (T2I[0], T2I[1], "t2i"),
    (SFHQ[0], SFHQ[1], "sfhq"),
    (SG3[0], SG3[1], "sg3"),
    ("serengil/deepface", "243209fd7b46ecdecf72665cc25219f6e8181f25", "deepface"),
    ("vladmandic/human", "151df64d6143db8d0cf14df39e69be2f655f9f34", "human"),
    ("Rithwikksvr/Super-Resolution", "HEAD", "caltech"),
    ("timesler/facenet-pytorch", "787da06", "facenet"),
    ("TencentARC/GFPGAN", "7552a77", "gfpgan"),
    ("sczhou/CodeFormer", "b33cc7d", "codeformer"),
    ("neuralchen/SimSwap", "bd7b768", "simswap"),
    ("minivision-ai/Silent-Face-Anti-Spoofing", "b6d5f04", "silent"),
    ("necenzurat/ai-image-filter", "0dcf589bc08585949f45c0e3dde61413a6ed5cd5", "necz"),
    ("chandrikadeb7/Face-Mask-Detection", "7e50074", "maskdet"),
    ("prajnasb/observations", "cdcf450", "observ"),
    ("justadudewhohacks/face-api.js", "a86f011", "faceapi"),
    ("InstantID/InstantID", "2145b67", "instantid"),
    ("TencentARC/PhotoMaker", "060b4fc", "photomaker"),
    ("dinablachman/realorfake", "e4a5b79", "realorfake"),
    ("s0md3v/roop", "cf7ba1caf932e8c9f39d972100f74022e7372c27", "roop"),
    ("haofanwang/inswapper", "d52c0d4", "inswapper"),
    ("yunjey/stargan", "94dd002", "stargan"),
    ("ondyari/FaceForensics", "b952e41", "ffpp"),
    ("microsoft/FaceSynthetics", "50797c9", "facesynth"),
    ("microsoft/DigiFace1M", "1d173f3", "digiface"),
    ("yang-song/score_sde_pytorch", "cb1f359", "scoresde"),
    ("podgorskiy/ALAE", "42bcf2e", "alae"),
    ("Mohanish-5744/Major_Ensemble_Gender", "2f8aa4a5", "utkface"),
    ("andrew-valentin/HumanFaceImageGenerator", "HEAD", "celeba64"),
    ("iperov/DeepFaceLab", "46fc239", "dfl"),
    ("Rees451/faces-fake-vs-real", "69c112d3151fec0b47e3b883f0a27c730dfca2e5", "rees"),
    ("yangxy/GPEN", "2c73670", "gpen"),
    ("YadiraF/DECA", "f5b6b42", "deca"),
    ("YadiraF/PRNet", "fc12fe5", "prnet"),
    ("debruine/webmorphR.stim", "fa8b78fd", "stim"),
    ("yiranran/APDrawingGAN", "38f4319f", "apdrawing"),
    ("xuebinqin/U-2-Net", "ac7e1c81", "u2net"),
    ("debruine/webmorph", "f3a986c93d454187cbf9632438032ba61efce172", "webmorph"),
    ("Honlan/BeautyGAN", "bca8aa43", "beautygan"),
    ("lai-wei-cheng/b12207073", "790c44989ebf3b9835806512ce2f929fe441244f", "twexpr"),
    ("freelance-work/mit_psycology_dept", "a5c5d4bc62a22136f53c7597074172788079a6bc", "wsefep"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshot", action="append", default=[], metavar="OWNER/REPO=GITDIR")
    ap.add_argument("--mirror-root", help="find snapshots at ROOT/<owner>+<name>/repo")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / ".candor/data/image/faces"))
    ap.add_argument("--font", default="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                    help="DejaVu Sans (Debian fonts-dejavu-core), to read SFHQ-T2I labels")
    ap.add_argument("--only", action="append", help="handler names to run (default all)")
    args = ap.parse_args()

    snaps: dict[str, str] = {}
    if args.mirror_root:
        for repo, _, _ in SOURCES:
            d = Path(args.mirror_root) / repo.replace("/", "+") / "repo"
            for cand in (d, d / ".git"):
                if (cand / "HEAD").exists() and (cand / "objects").exists():
                    snaps[repo] = str(cand)
                    break
    for s in args.snapshot:
        repo, _, d = s.partition("=")
        snaps[repo] = d
    for repo in snaps:
        if repo in RESERVED_REPOS or repo.split("/")[0] in RESERVED_OWNERS:
            sys.exit(f"refusing reserved source {repo}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    c = Collector(out)
    reader = LabelReader(args.font)
    handlers = {"lfw": do_lfw, "t2i": lambda c, s, r: do_t2i(c, s, r, reader), "sfhq": do_sfhq,
                "sg3": do_sg3, "deepface": do_deepface, "human": do_human, "caltech": do_caltech,
                "facenet": do_facenet, "gfpgan": do_gfpgan, "codeformer": do_codeformer,
                "simswap": do_simswap, "silent": do_silent, "gpen": do_gpen, "deca": do_deca,
                "prnet": do_prnet, "stim": do_stim, "apdrawing": do_apdrawing,
                "u2net": do_u2net, "webmorph": do_webmorph, "beautygan": do_beautygan, "twexpr": do_twexpr,
                "wsefep": do_wsefep, "necz": do_necz, "maskdet": do_maskdet, "observ": do_observ,
                "faceapi": do_faceapi, "instantid": do_instantid, "photomaker": do_photomaker, "realorfake": do_realorfake, "roop": do_roop, "inswapper": do_inswapper, "stargan": do_stargan, "ffpp": do_ffpp, "facesynth": do_facesynth, "digiface": do_digiface, "scoresde": do_score_sde,
                "alae": do_alae, "utkface": do_utkface, "celeba64": do_celeba64, "dfl": do_dfl, "rees": do_rees}
    for repo, rev, h in SOURCES:
        if args.only and h not in args.only:
            continue
        if repo not in snaps:
            c.report["skipped_sources"].append(repo)
            print(f"skip {repo}: no snapshot given", file=sys.stderr)
            continue
        snap = Snapshot(repo, snaps[repo])
        try:
            n = handlers[h](c, snap, rev)
        finally:
            snap.close()
        c.report["sources"][repo] = n
        print(f"{repo}: {n} images", file=sys.stderr)

    # remove stale files from earlier runs of the same handlers
    keep = {r["path"] for r in c.rows}
    rows = sorted(c.rows, key=lambda r: r["path"])
    if not args.only:
        for p in sorted(out.rglob("*")):
            if p.is_file() and p.name not in ("manifest.jsonl", "collect_report.json") \
                    and str(p.relative_to(out)) not in keep:
                p.unlink()
    with open(out / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    by = {}
    for r in rows:
        k = f'{r["label"]}/{r["family"]}/{r["generator"]}'
        by[k] = by.get(k, 0) + 1
    c.report["totals"] = dict(sorted(by.items()))
    c.report["total"] = len(rows)
    c.report["exact_duplicates_dropped"] = c.dropped
    with open(out / "collect_report.json", "w") as f:
        json.dump(c.report, f, indent=1, sort_keys=True)
    print(json.dumps(c.report["totals"], indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
